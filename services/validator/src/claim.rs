//! `validator claim`: fetches this node's latest proof from the hub's API, checks
//! it against the root the contract holds (trusting neither the hub's root nor its
//! arithmetic), and claims the unclaimed part from the payout key.

use std::sync::Arc;

use overlaps_shared::eth::{self, Address, EthError, PrivateKey, U256};
use overlaps_shared::merkle::{Hash, leaf_hash, verify_proof};
use serde_json::Value;

/// Why a claim did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The hub's API could not be reached or answered an error.
    #[error("hub API: {0}")]
    Api(String),
    /// The hub's answer is not what it must be.
    #[error("the hub's proof is unusable: {0}")]
    BadProof(String),
    /// The proof does not lead to the root the contract holds.
    #[error("the proof does not match the on-chain root (eon {onchain_eon}): {reason}")]
    NotOnChain {
        /// The contract's latest eon.
        onchain_eon: u64,
        /// What differs.
        reason: String,
    },
    /// The chain.
    #[error(transparent)]
    Eth(#[from] EthError),
}

/// The proof the hub serves at `GET /api/v1/validators/{id}/proof`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The eon of the root it proves against.
    pub eon: u64,
    /// The payout address in the leaf.
    pub payout: Address,
    /// The cumulative reward in the leaf.
    pub cumulative: U256,
    /// The leaf hash.
    pub leaf: Hash,
    /// Sibling hashes from leaf to root.
    pub proof: Vec<Hash>,
    /// The root the hub says it committed.
    pub root: Hash,
}

fn hash32(value: &Value, field: &str) -> Result<Hash, ClaimError> {
    let text = value
        .as_str()
        .ok_or_else(|| ClaimError::BadProof(format!("{field} is not a string")))?;
    let bytes = hex::decode(text.trim_start_matches("0x"))
        .map_err(|e| ClaimError::BadProof(format!("{field}: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| ClaimError::BadProof(format!("{field} is not 32 bytes")))
}

impl Proof {
    /// Parses the API's JSON.
    pub fn from_json(json: &Value) -> Result<Self, ClaimError> {
        let field = |name: &str| {
            json.get(name)
                .ok_or_else(|| ClaimError::BadProof(format!("{name} is missing")))
        };
        let payout = field("payout_address")?
            .as_str()
            .ok_or_else(|| ClaimError::BadProof("payout_address is not a string".into()))?;
        let cumulative = field("cumulative")?;
        let cumulative = match cumulative {
            Value::String(s) => U256::from_dec_str(s).ok(),
            Value::Number(n) => n.as_u64().map(U256::from),
            _ => None,
        }
        .ok_or_else(|| ClaimError::BadProof("cumulative is not an integer".into()))?;
        Ok(Proof {
            eon: field("eon")?
                .as_u64()
                .ok_or_else(|| ClaimError::BadProof("eon is not a number".into()))?,
            payout: eth::parse_address(payout)
                .map_err(|e| ClaimError::BadProof(format!("payout_address: {e}")))?,
            cumulative,
            leaf: hash32(field("leaf")?, "leaf")?,
            proof: field("proof")?
                .as_array()
                .ok_or_else(|| ClaimError::BadProof("proof is not a list".into()))?
                .iter()
                .map(|h| hash32(h, "proof"))
                .collect::<Result<_, _>>()?,
            root: hash32(field("root")?, "root")?,
        })
    }

    /// Checks the leaf's encoding and that the proof leads to `root`.
    pub fn verify_against(&self, root: Hash) -> Result<(), String> {
        if leaf_hash(self.payout, self.cumulative) != self.leaf {
            return Err("the leaf is not the hash of its address and amount".into());
        }
        if !verify_proof(root, self.leaf, &self.proof) {
            return Err("the proof does not lead to the root".into());
        }
        Ok(())
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, ClaimError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| ClaimError::Api(format!("GET {url}: {e}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| ClaimError::Api(format!("GET {url}: {e}")))?;
    if !status.is_success() {
        return Err(ClaimError::Api(format!("GET {url}: {status}: {body}")));
    }
    serde_json::from_str(&body).map_err(|e| ClaimError::Api(format!("GET {url}: {e}")))
}

/// The validator id in the answer to `GET /api/v1/validators?public_key=…`: an
/// object with `id`, a list of them, or a page whose `items` is such a list.
fn validator_id(json: &Value) -> Option<i64> {
    match json {
        Value::Array(items) => items.first().and_then(validator_id),
        Value::Object(map) => map.get("id").and_then(Value::as_i64).or_else(|| {
            ["items", "data", "validators"]
                .iter()
                .find_map(|key| map.get(*key).and_then(validator_id))
        }),
        _ => None,
    }
}

/// Fetches this node's latest proof from the hub at `api`.
pub async fn fetch_proof(api: &url::Url, public_key: &str) -> Result<Proof, ClaimError> {
    let client = reqwest::Client::new();
    let base = api.as_str().trim_end_matches('/');
    let found = get_json(
        &client,
        &format!("{base}/api/v1/validators?public_key={public_key}"),
    )
    .await?;
    let id = validator_id(&found)
        .ok_or_else(|| ClaimError::Api(format!("the hub does not know validator {public_key}")))?;
    let json = get_json(&client, &format!("{base}/api/v1/validators/{id}/proof")).await?;
    Proof::from_json(&json)
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// Paid `amount` to the payout address.
    Paid {
        /// Wei paid by this claim.
        amount: U256,
        /// The claim transaction.
        tx_hash: String,
    },
    /// Everything in the proof was already claimed.
    NothingToClaim,
}

/// Checks `proof` against the contract's root and claims from `payout_key`.
pub async fn claim(
    rpc_url: &str,
    contract: Address,
    payout_key: &PrivateKey,
    proof: &Proof,
) -> Result<Claimed, ClaimError> {
    let client = eth::signer_client(rpc_url, payout_key).await?;
    let rewards = eth::rewards(contract, Arc::clone(&client));
    let onchain_root = rewards.root().call().await.map_err(EthError::from)?;
    let onchain_eon = rewards.eon().call().await.map_err(EthError::from)?;
    proof
        .verify_against(onchain_root)
        .map_err(|reason| ClaimError::NotOnChain {
            onchain_eon,
            reason: format!("hub eon {}: {reason}", proof.eon),
        })?;
    if payout_key.address() != proof.payout {
        tracing::warn!(payout = ?proof.payout, sender = ?payout_key.address(),
            "the claim is sent from another account; the reward still goes to the payout address");
    }
    let already = rewards
        .claimed(proof.payout)
        .call()
        .await
        .map_err(EthError::from)?;
    if already >= proof.cumulative {
        return Ok(Claimed::NothingToClaim);
    }
    let receipt =
        eth::send_call(rewards.claim(proof.payout, proof.cumulative, proof.proof.clone())).await?;
    Ok(Claimed::Paid {
        amount: proof.cumulative - already,
        tx_hash: format!("{:?}", receipt.transaction_hash),
    })
}

/// What one look at the on-chain root found about this node's leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafCheck {
    /// No root committed yet.
    NoRoot,
    /// The leaf is in the on-chain root, paying `cumulative` to the expected address.
    Included {
        /// The contract's latest eon.
        eon: u64,
        /// The cumulative reward in the leaf.
        cumulative: U256,
    },
    /// The hub left this node out, paid another address, or its proof does not lead
    /// to the on-chain root.
    Problem {
        /// The contract's latest eon.
        eon: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Checks this node's leaf (from the API) against the contract's latest root.
pub async fn check_leaf(
    api: &url::Url,
    public_key: &str,
    payout: Address,
    rpc_url: &str,
    contract: Address,
) -> Result<LeafCheck, ClaimError> {
    let client = Arc::new(eth::read_client(rpc_url)?);
    let rewards = eth::rewards(contract, client);
    let eon = rewards.eon().call().await.map_err(EthError::from)?;
    if eon == 0 {
        return Ok(LeafCheck::NoRoot);
    }
    let root = rewards.root().call().await.map_err(EthError::from)?;
    let proof = match fetch_proof(api, public_key).await {
        Ok(proof) => proof,
        Err(ClaimError::Api(reason)) => {
            return Ok(LeafCheck::Problem {
                eon,
                reason: format!("the hub serves no proof for this node: {reason}"),
            });
        }
        Err(err) => return Err(err),
    };
    if proof.payout != payout {
        return Ok(LeafCheck::Problem {
            eon,
            reason: format!(
                "the leaf pays {:?}, not this node's {payout:?}",
                proof.payout
            ),
        });
    }
    Ok(match proof.verify_against(root) {
        Ok(()) => LeafCheck::Included {
            eon,
            cumulative: proof.cumulative,
        },
        Err(reason) => LeafCheck::Problem {
            eon,
            reason: format!("hub eon {}: {reason}", proof.eon),
        },
    })
}

/// Checks the leaf every `every` until `stop`: once per new on-chain eon it logs the
/// cumulative reward, and warns loudly when the leaf is missing, pays another
/// address, or shrank since the last eon (cumulative rewards never decrease).
pub async fn watch_leaf(
    api: url::Url,
    public_key: String,
    payout: Address,
    rpc_url: String,
    contract: Address,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (mut seen_eon, mut last) = (0u64, U256::zero());
    loop {
        match check_leaf(&api, &public_key, payout, &rpc_url, contract).await {
            Ok(LeafCheck::Included { eon, cumulative }) if eon > seen_eon => {
                if cumulative < last {
                    tracing::error!(eon, %cumulative, previous = %last,
                        "REWARD SHRANK: the hub's leaf for this node is lower than in an earlier eon");
                } else {
                    tracing::info!(eon, %cumulative, "own leaf is in the on-chain root");
                }
                (seen_eon, last) = (eon, cumulative.max(last));
            }
            Ok(LeafCheck::Problem { eon, reason }) if eon > seen_eon => {
                tracing::error!(eon, %reason, "OWN LEAF NOT IN THE ON-CHAIN ROOT: the hub may have left this node out");
                seen_eon = eon;
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "could not check the own leaf against the chain")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_id_is_found_in_any_reasonable_shape() {
        for json in [
            serde_json::json!({"id": 7, "public_key": "ab"}),
            serde_json::json!([{"id": 7}]),
            serde_json::json!({"items": [{"id": 7}], "total": 1}),
        ] {
            assert_eq!(validator_id(&json), Some(7), "{json}");
        }
        assert_eq!(validator_id(&serde_json::json!([])), None);
    }
}
