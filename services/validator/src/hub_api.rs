//! What the node reads from the hub's public REST API: its own id and proof, eons,
//! the public record of rounds and the network's terms.

use chrono::{DateTime, Utc};
use overlaps_shared::canary::{self, CanaryMode};
use overlaps_shared::eth::U256;
use overlaps_shared::selection::RecordedCandidate;
use overlaps_shared::signing::{ResultFields, ResultRecord};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::claim::Proof;

/// Why a call to the hub's API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The hub could not be reached or its answer not read.
    #[error("GET {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The hub answered with an error status.
    #[error("GET {url}: {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error body.
        body: String,
    },
    /// The answer is not what the API documents.
    #[error("GET {url}: unexpected answer: {reason}")]
    Malformed {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

impl ApiError {
    /// The hub answered 404 (`not_found`, `no_leaf`, …).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { status: 404, .. })
    }

    /// Worth asking again later: the hub was unreachable or failed (5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Unreachable { .. })
            || matches!(self, ApiError::Status { status, .. } if *status >= 500)
    }
}

/// The hub's API at one base URL.
#[derive(Debug, Clone)]
pub struct HubApi {
    client: reqwest::Client,
    base: String,
}

/// `GET /api/v1/network`.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkTerms {
    /// The hub id signed payloads cover.
    pub hub_id: String,
    /// Reward per agreeing result, decimal string.
    pub reward_per_check: String,
}

/// The part of `GET /api/v1/validators/{id}` the node uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ValidatorRecord {
    /// The validator id.
    pub id: i64,
    /// Its Ed25519 public key, hex.
    pub public_key: String,
    /// When the hub first saw this key.
    pub first_seen_at: DateTime<Utc>,
}

/// The part of `GET /api/v1/eons/{n}` the node uses.
#[derive(Debug, Clone, Deserialize)]
pub struct EonRecord {
    /// Its first round.
    pub first_round: i64,
    /// Its last round: the eon counts every round up to it.
    pub last_round: i64,
}

/// The part of a round's public record canaries are derived from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoundRecord {
    /// Validators online at opening and admitted, `[[validator_id, weight,
    /// network], ...]` (older rounds: `[[validator_id, weight], ...]`).
    pub candidates: serde_json::Value,
}

impl RoundRecord {
    /// The candidates' ids, in the order recorded; an error names a malformed record.
    pub fn candidate_ids(&self) -> Result<Vec<i64>, String> {
        RecordedCandidate::parse_all(&self.candidates)
            .map(|all| all.iter().map(|c| c.validator_id).collect())
            .ok_or_else(|| "the round's candidates are not [[id, weight, network?], …]".to_owned())
    }
}

/// A closed round's revealed canary key and canary assignments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoundCanaries {
    /// The round's canary key, hex (revealed at the close).
    pub canary_key: Option<String>,
    /// The canary rate its chain committed to, basis points.
    pub canary_rate_bp: Option<u32>,
    /// Its canary assignments.
    pub items: Vec<PublicCanary>,
}

impl RoundCanaries {
    /// The canary the round's key gives validator `own_id` among `candidates`:
    /// re-derived here, never taken from the hub's list.
    pub fn canary_of(&self, own_id: i64, candidates: &[i64]) -> Result<Option<CanaryMode>, String> {
        let (Some(key), Some(rate)) = (&self.canary_key, self.canary_rate_bp) else {
            return Ok(None);
        };
        let key: [u8; 32] = hex::decode(key.trim_start_matches("0x"))
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| format!("canary key {key:?} is not 32 bytes of hex"))?;
        Ok(canary::plan_round(&key, candidates, rate)
            .into_iter()
            .find(|p| p.validator_id == own_id)
            .map(|p| p.mode))
    }
}

/// A canary assignment as published once its round closed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublicCanary {
    /// The assignment.
    pub assignment_id: i64,
    /// Who was sent it.
    pub validator_id: i64,
    /// Its mode.
    pub mode: String,
    /// The right answer.
    pub expected_status: String,
}

/// A signed result in a round's public record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublicResult {
    /// `up`, `down` or `degraded`.
    pub status: String,
    /// HTTP status, if any.
    pub http_status: Option<i16>,
    /// Latency, ms.
    pub latency_ms: i32,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// When the validator checked.
    pub checked_at: DateTime<Utc>,
    /// TLS certificate expiry, if seen.
    pub tls_expires_at: Option<DateTime<Utc>>,
    /// The validator's signature, hex.
    pub signature: String,
    /// The layout signed (1 for records published before `overlaps/v2`).
    #[serde(default = "v1")]
    pub protocol_version: i16,
    /// The spec hash of a v2 result, hex.
    #[serde(default)]
    pub spec_hash: Option<String>,
}

fn v1() -> i16 {
    1
}

impl PublicResult {
    /// The fields its validator signed for assignment `assignment_id`.
    pub fn signed_fields(&self, assignment_id: i64) -> ResultFields {
        let spec_hash = self
            .spec_hash
            .as_deref()
            .and_then(|h| hex::decode(h.trim_start_matches("0x")).ok());
        ResultFields::from_record(ResultRecord {
            assignment_id,
            status: &self.status,
            http_status: self.http_status,
            latency_ms: self.latency_ms,
            failure: self.failure.as_deref(),
            tls_expires_at: self.tls_expires_at,
            checked_at: self.checked_at,
            protocol_version: self.protocol_version,
            spec_hash: spec_hash.as_deref(),
        })
    }
}

/// One assignment in a round's public record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublicAssignment {
    /// Assignment id.
    pub id: i64,
    /// The site.
    pub website_id: i64,
    /// The validator asked.
    pub validator_id: i64,
    /// Its result, if stored.
    pub result: Option<PublicResult>,
    /// Set (by the node, from the round's canaries) when the assignment was a canary.
    #[serde(default, skip)]
    pub canary: Option<PublicCanary>,
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

impl HubApi {
    /// The API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &url::Url) -> Self {
        HubApi {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: base.as_str().trim_end_matches('/').to_owned(),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: reqwest::Error| ApiError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        let response = self.client.get(&url).send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(ApiError::Status {
                url,
                status: status.as_u16(),
                body,
            });
        }
        serde_json::from_str(&body).map_err(|e| ApiError::Malformed {
            url,
            reason: e.to_string(),
        })
    }

    /// The id the hub gave the validator with `public_key` (hex).
    pub async fn validator_id(&self, public_key: &str) -> Result<i64, ApiError> {
        let path = format!("/api/v1/validators?public_key={public_key}");
        let page: Page<ValidatorRecord> = self.get(&path).await?;
        page.items
            .first()
            .map(|v| v.id)
            .ok_or_else(|| ApiError::Status {
                url: format!("{}{path}", self.base),
                status: 404,
                body: format!("the hub does not know validator {public_key}"),
            })
    }

    /// The validator's public record.
    pub async fn validator(&self, id: i64) -> Result<ValidatorRecord, ApiError> {
        self.get(&format!("/api/v1/validators/{id}")).await
    }

    /// The validator's proof against eon `eon`'s root (the latest with a leaf if `None`).
    pub async fn proof(&self, id: i64, eon: Option<u64>) -> Result<Proof, ApiError> {
        let path = match eon {
            Some(eon) => format!("/api/v1/validators/{id}/proof?eon={eon}"),
            None => format!("/api/v1/validators/{id}/proof"),
        };
        let json: serde_json::Value = self.get(&path).await?;
        Proof::from_json(&json).map_err(|e| ApiError::Malformed {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    /// Eon `number`.
    pub async fn eon(&self, number: u64) -> Result<EonRecord, ApiError> {
        self.get(&format!("/api/v1/eons/{number}")).await
    }

    /// Round `round`'s public record.
    pub async fn round(&self, round: i64) -> Result<RoundRecord, ApiError> {
        self.get(&format!("/api/v1/rounds/{round}")).await
    }

    /// Round `round`'s canaries (none while it is open).
    pub async fn round_canaries(&self, round: i64) -> Result<RoundCanaries, ApiError> {
        self.get(&format!("/api/v1/rounds/{round}/canaries")).await
    }

    /// Every assignment of round `round`, all pages.
    pub async fn round_assignments(&self, round: i64) -> Result<Vec<PublicAssignment>, ApiError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/rounds/{round}/assignments?limit=200&cursor={c}"),
                None => format!("/api/v1/rounds/{round}/assignments?limit=200"),
            };
            let page: Page<PublicAssignment> = self.get(&path).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// The network's terms; the reward per check parsed.
    pub async fn network(&self) -> Result<(NetworkTerms, U256), ApiError> {
        let path = "/api/v1/network";
        let terms: NetworkTerms = self.get(path).await?;
        let reward =
            U256::from_dec_str(&terms.reward_per_check).map_err(|e| ApiError::Malformed {
                url: format!("{}{path}", self.base),
                reason: format!("reward_per_check: {e}"),
            })?;
        Ok((terms, reward))
    }
}
