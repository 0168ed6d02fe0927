//! The public dev values (`.env.example`, anvil's default accounts) that no
//! production hub may run with: each binary refuses them when `APP_ENV=prod`.

use crate::config::{AppEnv, ConfigError, Env, invalid};

/// `OPERATOR_API_KEY` of `.env.example`.
pub const DEV_OPERATOR_API_KEY: &str = "ovl_dev_operator_key_change_me_00000000000000000";

/// `HUB_ID`'s default and `.env.example` value.
pub const DEV_HUB_ID: &str = "overlaps-dev";

/// `PAYOUT_ADDRESS` of `.env.example` (and the EIP-55 reference vector).
pub const EXAMPLE_PAYOUT_ADDRESS: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

/// `CANARY_SECRET` of `.env.example`.
pub const DEV_CANARY_SECRET: &str =
    "6f7665726c6170732d6465762d63616e6172792d7365637265742d2d2d2d2d21";

/// The ten private keys anvil derives from its default mnemonic ("test test … junk"):
/// public knowledge, so anyone could take funds sent to their accounts.
pub const ANVIL_PRIVATE_KEYS: [&str; 10] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// The addresses of [`ANVIL_PRIVATE_KEYS`], in order (lowercase hex).
pub const ANVIL_ADDRESSES: [&str; 10] = [
    "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
    "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
    "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
    "0x90f79bf6eb2c4f870365e785982e1f101e93b906",
    "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65",
    "0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc",
    "0x976ea74026e726554db657fa54763abd0c3a0aa9",
    "0x14dc79964da2c08b23698b3d3cc7ca32193d9955",
    "0x23618e81e3f5cdf7f54c3d65f7fbc0abf5b21e8f",
    "0xa0ee7a142d267c1f36714e4a8f75612f20a79720",
];

/// A setting that must not hold a dev value in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevValue {
    /// `OPERATOR_API_KEY` (secret).
    OperatorApiKey,
    /// `OPERATOR_PRIVATE_KEY` (secret): any anvil key.
    OperatorPrivateKey,
    /// `PAYOUT_PRIVATE_KEY` (secret): any anvil key.
    PayoutPrivateKey,
    /// `HUB_ID`.
    HubId,
    /// `PAYOUT_ADDRESS`.
    PayoutAddress,
    /// `CANARY_SECRET` (secret).
    CanarySecret,
    /// `GUARDIAN_ADDRESS`: any anvil account (its key is public, so anyone could
    /// cancel roots and take over the operator role).
    GuardianAddress,
    /// `GUARDIAN_PRIVATE_KEY` (secret): any anvil key.
    GuardianPrivateKey,
}

impl DevValue {
    /// The settings the hub's services share (every hub binary checks them).
    pub const HUB: [DevValue; 6] = [
        DevValue::OperatorApiKey,
        DevValue::OperatorPrivateKey,
        DevValue::HubId,
        DevValue::CanarySecret,
        DevValue::GuardianAddress,
        DevValue::GuardianPrivateKey,
    ];

    /// The variable's name.
    pub fn var(self) -> &'static str {
        match self {
            DevValue::OperatorApiKey => "OPERATOR_API_KEY",
            DevValue::OperatorPrivateKey => "OPERATOR_PRIVATE_KEY",
            DevValue::PayoutPrivateKey => "PAYOUT_PRIVATE_KEY",
            DevValue::HubId => "HUB_ID",
            DevValue::PayoutAddress => "PAYOUT_ADDRESS",
            DevValue::CanarySecret => "CANARY_SECRET",
            DevValue::GuardianAddress => "GUARDIAN_ADDRESS",
            DevValue::GuardianPrivateKey => "GUARDIAN_PRIVATE_KEY",
        }
    }

    fn is_secret(self) -> bool {
        !matches!(
            self,
            DevValue::HubId | DevValue::PayoutAddress | DevValue::GuardianAddress
        )
    }

    /// Whether `value` is this setting's public dev value.
    pub fn is_dev(self, value: &str) -> bool {
        let value = value.trim();
        match self {
            DevValue::OperatorApiKey => value == DEV_OPERATOR_API_KEY,
            DevValue::OperatorPrivateKey
            | DevValue::PayoutPrivateKey
            | DevValue::GuardianPrivateKey => is_anvil_key(value),
            DevValue::GuardianAddress => is_anvil_address(value),
            DevValue::HubId => value == DEV_HUB_ID,
            DevValue::PayoutAddress => value.eq_ignore_ascii_case(EXAMPLE_PAYOUT_ADDRESS),
            DevValue::CanarySecret => value.eq_ignore_ascii_case(DEV_CANARY_SECRET),
        }
    }
}

/// Whether `key` (hex, with or without `0x`) is one of anvil's default keys.
pub fn is_anvil_key(key: &str) -> bool {
    let hex = key.trim().trim_start_matches("0x");
    ANVIL_PRIVATE_KEYS
        .iter()
        .any(|dev| dev.trim_start_matches("0x").eq_ignore_ascii_case(hex))
}

/// Whether `address` (hex, any case) is one of anvil's default accounts.
pub fn is_anvil_address(address: &str) -> bool {
    let address = address.trim();
    ANVIL_ADDRESSES
        .iter()
        .any(|dev| dev.eq_ignore_ascii_case(address))
}

/// With `APP_ENV=prod`, refuses any of `checks` set to its dev value, naming the
/// variable and never printing a secret.
pub fn refuse_in_prod(env: &Env, app_env: AppEnv, checks: &[DevValue]) -> Result<(), ConfigError> {
    if app_env != AppEnv::Prod {
        return Ok(());
    }
    for &check in checks {
        if let Some(value) = env.raw(check.var())
            && check.is_dev(value)
        {
            let shown = if check.is_secret() { "(hidden)" } else { value };
            return Err(invalid(
                check.var(),
                shown,
                "a public dev value (.env.example or anvil) cannot be used with APP_ENV=prod",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(pairs: &[(&str, &str)], checks: &[DevValue]) -> Option<ConfigError> {
        refuse_in_prod(
            &Env::from_pairs(pairs.iter().copied()),
            AppEnv::Prod,
            checks,
        )
        .err()
    }

    #[test]
    fn each_dev_value_is_refused_in_prod_naming_its_variable() {
        let anvil_last = ANVIL_PRIVATE_KEYS[9];
        let cases = [
            (DevValue::OperatorApiKey, DEV_OPERATOR_API_KEY),
            (DevValue::OperatorPrivateKey, ANVIL_PRIVATE_KEYS[0]),
            (
                DevValue::OperatorPrivateKey,
                anvil_last.trim_start_matches("0x"),
            ),
            (DevValue::PayoutPrivateKey, ANVIL_PRIVATE_KEYS[1]),
            (DevValue::HubId, DEV_HUB_ID),
            (DevValue::PayoutAddress, EXAMPLE_PAYOUT_ADDRESS),
            (
                DevValue::PayoutAddress,
                "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            ),
            (DevValue::CanarySecret, DEV_CANARY_SECRET),
            (DevValue::GuardianPrivateKey, ANVIL_PRIVATE_KEYS[9]),
            (
                DevValue::GuardianAddress,
                "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
            ),
            (DevValue::GuardianAddress, ANVIL_ADDRESSES[0]),
        ];
        for (check, value) in cases {
            let err = refused(&[(check.var(), value)], &[check]).expect("refused");
            assert_eq!(err.var(), check.var());
            let shown = err.to_string();
            if check.is_secret() {
                assert!(!shown.contains(value.trim_start_matches("0x")), "{shown}");
                assert!(shown.contains("(hidden)"), "{shown}");
            }
            // Dev allows them all.
            let dev = Env::from_pairs([(check.var(), value)]);
            assert!(refuse_in_prod(&dev, AppEnv::Dev, &[check]).is_ok());
        }
    }

    #[test]
    fn other_values_and_unset_variables_pass_in_prod() {
        let pairs = [
            (
                "OPERATOR_API_KEY",
                "ovl_0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            (
                "OPERATOR_PRIVATE_KEY",
                "0x1111111111111111111111111111111111111111111111111111111111111111",
            ),
            ("HUB_ID", "overlaps-eu-1"),
            (
                "PAYOUT_ADDRESS",
                "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            ),
            (
                "GUARDIAN_ADDRESS",
                "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            ),
            (
                "GUARDIAN_PRIVATE_KEY",
                "0x2222222222222222222222222222222222222222222222222222222222222222",
            ),
        ];
        let all = [
            DevValue::OperatorApiKey,
            DevValue::OperatorPrivateKey,
            DevValue::PayoutPrivateKey,
            DevValue::HubId,
            DevValue::PayoutAddress,
            DevValue::CanarySecret,
            DevValue::GuardianAddress,
            DevValue::GuardianPrivateKey,
        ];
        assert!(refused(&pairs, &all).is_none());
        assert!(refused(&[], &all).is_none());
    }

    #[test]
    fn the_anvil_keys_are_the_ten_default_accounts() {
        // Their well-known addresses: a typo in a key would change its address.
        for (key, address) in ANVIL_PRIVATE_KEYS.iter().zip(ANVIL_ADDRESSES) {
            let key: crate::eth::PrivateKey = key.parse().expect("a key");
            assert_eq!(format!("{:?}", key.address()), address);
        }
    }
}
