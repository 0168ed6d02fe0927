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

/// `CHALLENGE_BLOCKS`' default: 150 blocks (30 minutes at 12 s a block), within the
/// default eon (`EON_SECONDS=3600`).
pub const DEFAULT_CHALLENGE_BLOCKS: u64 = 150;

/// The contract's bound on `challengeBlocks` (its constructor refuses more).
pub const MAX_CHALLENGE_BLOCKS: u64 = u32::MAX as u64;

/// `UNBONDING_SECONDS`' default: a week between an unstake request and its payout.
pub const DEFAULT_UNBONDING_SECONDS: u64 = 604_800;

/// The contract's bound on `unbondingSeconds` (its constructor refuses more).
pub const MAX_UNBONDING_SECONDS: u64 = u32::MAX as u64;

/// Who guards a contract about to be deployed, how long each root waits, and how
/// long stakes unbond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustodySettings {
    /// `GUARDIAN_ADDRESS`: may cancel a pending root and rotate the operator. Its
    /// key belongs off the hub.
    pub guardian: Address,
    /// `CHALLENGE_BLOCKS`: blocks between a root's commit and its being claimable.
    pub challenge_blocks: u64,
    /// `UNBONDING_SECONDS`: seconds between an unstake request and its payout.
    pub unbonding_seconds: u64,
}

impl CustodySettings {
    /// Reads and validates the deployment's custody settings; anvil's accounts are
    /// refused as guardian in prod (their keys are public).
    pub fn from_env(env: &Env, app_env: AppEnv) -> Result<Self, ConfigError> {
        crate::dev_values::refuse_in_prod(
            env,
            app_env,
            &[crate::dev_values::DevValue::GuardianAddress],
        )?;
        // Dev defaults to anvil's last account (the dev guardian of `.env.example`);
        // production must name its own.
        let guardian: String = match app_env {
            AppEnv::Dev => env.optional(
                "GUARDIAN_ADDRESS",
                crate::dev_values::ANVIL_ADDRESSES[9].to_owned(),
            )?,
            AppEnv::Prod => env.required("GUARDIAN_ADDRESS")?,
        };
        let guardian =
            parse_address(&guardian).map_err(|err| invalid("GUARDIAN_ADDRESS", &guardian, err))?;
        if guardian.is_zero() {
            return Err(invalid("GUARDIAN_ADDRESS", guardian, "the zero address"));
        }
        Ok(CustodySettings {
            guardian,
            challenge_blocks: env.ranged(
                "CHALLENGE_BLOCKS",
                DEFAULT_CHALLENGE_BLOCKS,
                1..=MAX_CHALLENGE_BLOCKS,
            )?,
            unbonding_seconds: env.ranged(
                "UNBONDING_SECONDS",
                DEFAULT_UNBONDING_SECONDS,
                1..=MAX_UNBONDING_SECONDS,
            )?,
        })
    }
}

/// How long an eon lasts at the shortest and how long a block takes: a root
/// becomes claimable only if its challenge window ends before the next eon's root
/// replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EonClock {
    /// `CHAIN_BLOCK_SECONDS`: the chain's block time (overstating it only makes the
    /// check stricter).
    pub block_seconds: u64,
    /// `EON_ROUNDS`: closed rounds per eon.
    pub eon_rounds: u64,
    /// `ROUND_SECONDS`: seconds per round.
    pub round_seconds: u64,
    /// `EON_SECONDS`: an eon closes after this long at the latest.
    pub eon_seconds: u64,
}

/// A challenge window that does not fit in an eon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the challenge window ({challenge_blocks} blocks x CHAIN_BLOCK_SECONDS={block_seconds} = \
     {window_seconds} s) is not shorter than an eon ({eon_seconds} s: EON_ROUNDS x ROUND_SECONDS \
     or EON_SECONDS, whichever is shorter): each root would be replaced by the next before \
     it matured, and nothing would ever become claimable"
)]
pub struct WindowTooLong {
    /// The contract's (or `CHALLENGE_BLOCKS`') window in blocks.
    pub challenge_blocks: u64,
    /// The block time assumed.
    pub block_seconds: u64,
    /// The window in seconds.
    pub window_seconds: u64,
    /// The shortest eon in seconds.
    pub eon_seconds: u64,
}

impl EonClock {
    /// Reads the block time (dev: 1 s, the anvil `./run.sh` starts; otherwise
    /// 12 s, Ethereum's) and the eon settings (same defaults and bounds as the
    /// scheduler and accounting use).
    pub fn from_env(env: &Env, app_env: AppEnv) -> Result<Self, ConfigError> {
        let block_default = match app_env {
            AppEnv::Dev => 1,
            AppEnv::Prod => 12,
        };
        Ok(EonClock {
            block_seconds: env.ranged("CHAIN_BLOCK_SECONDS", block_default, 1..=3600)?,
            eon_rounds: env.ranged("EON_ROUNDS", 120, 1..=1_000_000)?,
            round_seconds: env.ranged("ROUND_SECONDS", 30, 2..=3600)?,
            eon_seconds: env.ranged("EON_SECONDS", 3600, 10..=31_536_000)?,
        })
    }

    /// The shortest an eon can be: it closes after `EON_ROUNDS` rounds or
    /// `EON_SECONDS`, whichever comes first.
    pub fn shortest_eon_seconds(&self) -> u64 {
        self.eon_rounds
            .saturating_mul(self.round_seconds)
            .min(self.eon_seconds)
    }

    /// Refuses a window of `challenge_blocks` that is not shorter than an eon.
    pub fn check(&self, challenge_blocks: u64) -> Result<(), WindowTooLong> {
        let window_seconds = challenge_blocks.saturating_mul(self.block_seconds);
        let eon_seconds = self.shortest_eon_seconds();
        if window_seconds < eon_seconds {
            return Ok(());
        }
        Err(WindowTooLong {
            challenge_blocks,
            block_seconds: self.block_seconds,
            window_seconds,
            eon_seconds,
        })
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
    fn custody_needs_a_guardian_and_a_window_and_refuses_anvil_in_prod() {
        let guardian = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
        let custody = CustodySettings::from_env(
            &Env::from_pairs([("GUARDIAN_ADDRESS", guardian)]),
            AppEnv::Prod,
        );
        assert_eq!(
            custody.map(|c| (c.challenge_blocks, c.unbonding_seconds)),
            Ok((DEFAULT_CHALLENGE_BLOCKS, DEFAULT_UNBONDING_SECONDS))
        );
        let cases = [
            ("GUARDIAN_ADDRESS", "", AppEnv::Prod),
            ("GUARDIAN_ADDRESS", "0x12", AppEnv::Dev),
            (
                "GUARDIAN_ADDRESS",
                "0x0000000000000000000000000000000000000000",
                AppEnv::Dev,
            ),
            (
                "GUARDIAN_ADDRESS",
                "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
                AppEnv::Prod,
            ),
            ("CHALLENGE_BLOCKS", "0", AppEnv::Dev),
            ("CHALLENGE_BLOCKS", "4294967296", AppEnv::Dev),
            ("UNBONDING_SECONDS", "0", AppEnv::Dev),
            ("UNBONDING_SECONDS", "4294967296", AppEnv::Dev),
        ];
        for (var, value, app_env) in cases {
            let mut pairs = vec![("GUARDIAN_ADDRESS", guardian)];
            pairs.retain(|(k, _)| *k != var);
            if !value.is_empty() {
                pairs.push((var, value));
            }
            let err = CustodySettings::from_env(&Env::from_pairs(pairs), app_env).err();
            assert_eq!(err.as_ref().map(|e| e.var()), Some(var), "{var}={value}");
        }
        // Dev accepts anvil's accounts (the dev guardian is one).
        let dev = CustodySettings::from_env(
            &Env::from_pairs([
                (
                    "GUARDIAN_ADDRESS",
                    "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
                ),
                ("CHALLENGE_BLOCKS", "20"),
                ("UNBONDING_SECONDS", "60"),
            ]),
            AppEnv::Dev,
        );
        assert_eq!(
            dev.map(|c| (c.challenge_blocks, c.unbonding_seconds)),
            Ok((20, 60))
        );
    }

    #[test]
    fn a_challenge_window_must_be_shorter_than_the_shortest_eon() -> Result<(), ConfigError> {
        // Prod defaults: 12 s blocks, eons of min(120 x 30 s, 3600 s) = 3600 s.
        let clock = EonClock::from_env(&Env::from_pairs::<&str, &str>([]), AppEnv::Prod)?;
        assert_eq!(clock.shortest_eon_seconds(), 3600);
        assert!(clock.check(DEFAULT_CHALLENGE_BLOCKS).is_ok());
        assert!(clock.check(299).is_ok());
        let err = clock.check(300).err();
        assert_eq!(err.as_ref().map(|e| e.window_seconds), Some(3600));
        // The dev network: 1 s blocks, 6 rounds of 10 s: 20 blocks fit, 60 do not.
        let dev = EonClock::from_env(
            &Env::from_pairs([("EON_ROUNDS", "6"), ("ROUND_SECONDS", "10")]),
            AppEnv::Dev,
        )?;
        assert_eq!(dev.shortest_eon_seconds(), 60);
        assert!(dev.check(20).is_ok());
        let shown = dev
            .check(60)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            shown.contains("nothing would ever become claimable"),
            "{shown}"
        );
        Ok(())
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
