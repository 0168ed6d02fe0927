//! Chain settings read by every binary that talks to the rewards contract.

use crate::config::{AppEnv, ConfigError, Env, invalid};

use super::{Address, parse_address};
use crate::redact::redact_url;

/// The dev chain's RPC URL (anvil, started by `./run.sh`).
pub const DEV_RPC_URL: &str = "http://127.0.0.1:8545";

/// Where the chain and the contract are.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainSettings {
    /// `CHAIN_RPC_URL`: the JSON-RPC endpoint.
    pub rpc_url: String,
    /// `CONTRACT_ADDRESS`: the deployed `OverlapsRewards`.
    pub contract: Address,
    /// `CONFIRMATIONS`: a block is final once `head - block + 1 >= CONFIRMATIONS`.
    pub confirmations: u64,
}

impl ChainSettings {
    /// Reads and validates the chain settings (the RPC URL has a default in dev only).
    pub fn from_env(env: &Env, app_env: AppEnv) -> Result<Self, ConfigError> {
        let rpc_url: String = match app_env {
            AppEnv::Dev => env.optional("CHAIN_RPC_URL", DEV_RPC_URL.to_owned())?,
            AppEnv::Prod => env.required("CHAIN_RPC_URL")?,
        };
        match url::Url::parse(&rpc_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(_) => {
                return Err(invalid(
                    "CHAIN_RPC_URL",
                    redact_url(&rpc_url),
                    "expected http(s)://",
                ));
            }
            // Not a URL: nothing of it is shown, it may hold an API key.
            Err(err) => return Err(invalid("CHAIN_RPC_URL", "(hidden)", err)),
        }
        let contract: String = env.required("CONTRACT_ADDRESS")?;
        let contract =
            parse_address(&contract).map_err(|err| invalid("CONTRACT_ADDRESS", &contract, err))?;
        if contract.is_zero() {
            return Err(invalid("CONTRACT_ADDRESS", contract, "the zero address"));
        }
        Ok(ChainSettings {
            rpc_url,
            contract,
            confirmations: env.ranged("CONFIRMATIONS", 2, 1..=1000)?,
        })
    }
}

impl std::fmt::Debug for ChainSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // RPC URLs often carry an API key in their path or query.
        f.debug_struct("ChainSettings")
            .field("rpc_url", &redact_url(&self.rpc_url))
            .field("contract", &self.contract)
            .field("confirmations", &self.confirmations)
            .finish()
    }
}

/// Whether a transaction or event mined in `mined_block` is final at `head`:
/// the block itself counts as the first confirmation.
pub fn is_final(head: u64, mined_block: u64, confirmations: u64) -> bool {
    head >= mined_block && head - mined_block + 1 >= confirmations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)], app_env: AppEnv) -> Result<ChainSettings, ConfigError> {
        ChainSettings::from_env(&Env::from_pairs(pairs.iter().copied()), app_env)
    }

    const ADDRESS: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

    #[test]
    fn dev_defaults_the_rpc_url_but_prod_requires_it() -> Result<(), ConfigError> {
        let dev = read(&[("CONTRACT_ADDRESS", ADDRESS)], AppEnv::Dev)?;
        assert_eq!(dev.rpc_url, DEV_RPC_URL);
        assert_eq!(dev.confirmations, 2);
        let prod = read(&[("CONTRACT_ADDRESS", ADDRESS)], AppEnv::Prod);
        assert_eq!(
            prod.err().map(|e| e.var().to_owned()),
            Some("CHAIN_RPC_URL".into())
        );
        Ok(())
    }

    #[test]
    fn each_bad_value_is_named() {
        let cases = [
            ("CHAIN_RPC_URL", "ws://127.0.0.1:8545"),
            ("CHAIN_RPC_URL", "not a url"),
            ("CONTRACT_ADDRESS", "0x1234"),
            (
                "CONTRACT_ADDRESS",
                "0x0000000000000000000000000000000000000000",
            ),
            ("CONFIRMATIONS", "0"),
        ];
        for (var, value) in cases {
            let mut pairs = vec![("CONTRACT_ADDRESS", ADDRESS)];
            pairs.retain(|(k, _)| *k != var);
            pairs.push((var, value));
            let err = read(&pairs, AppEnv::Dev).err();
            assert_eq!(
                err.as_ref().map(|e| e.var()),
                Some(var),
                "{var}={value}: {err:?}"
            );
        }
        let missing = read(&[], AppEnv::Dev).err();
        assert_eq!(
            missing.map(|e| e.var().to_owned()),
            Some("CONTRACT_ADDRESS".into())
        );
    }

    #[test]
    fn finality_counts_the_mined_block_as_the_first_confirmation() {
        // Mined in 10 with 3 confirmations: final at 12 (blocks 10, 11, 12), not at 11.
        assert!(!is_final(11, 10, 3));
        assert!(is_final(12, 10, 3));
        assert!(is_final(100, 10, 3));
        assert!(is_final(10, 10, 1));
        // A head behind the block (a reorg shortened the chain) is never final.
        assert!(!is_final(9, 10, 1));
    }
}
