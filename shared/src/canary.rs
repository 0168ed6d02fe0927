//! Known-answer checks (canaries): which validators get one in a round, in which
//! failure mode, and the right answer — all derived from the round's canary key,
//! a value of a hash chain the hub committed to a whole epoch before (see
//! [`crate::hash_chain`]) and reveals when the round closes. Until then nobody but
//! the hub can tell a canary from a real site; afterwards anyone re-derives every
//! canary and its verdict from public data.
//!
//! The URL a validator is sent does not carry the mode in the clear: its path is a
//! token only the hub and its canary endpoints can read (a long-term
//! [`CanarySecret`], never revealed), so the endpoint knows how to fail, and the
//! validator has to try it to find out.

use sha3::{Digest, Keccak256};

use crate::hash_chain;

/// Domain tag of canary-key chains.
pub const CANARY_CHAIN_DOMAIN: &[u8] = b"overlaps/v1/canary-chain";

/// Words the ok pages carry; a canary's keyword (when it has one) is one of them.
pub const KEYWORDS: [&str; 5] = ["Welcome", "Sign in", "Status", "Contact", "Home"];

/// Path prefixes, so canary URLs read like ordinary pages.
const PATH_WORDS: [&str; 8] = [
    "status", "shop", "blog", "app", "docs", "news", "account", "pricing",
];

/// How a canary endpoint behaves, and so what an honest check must report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CanaryMode {
    /// 200 with every keyword in the body: `up`.
    Ok,
    /// 503: `down` (`http_status`).
    ServerError,
    /// 200 without the keyword asked for: `down` (`keyword_missing`).
    KeywordMissing,
    /// Accepts and never answers: `down` (`timeout`).
    Timeout,
    /// Nothing listens: `down` (`connect`).
    Refused,
    /// A certificate no client trusts: `down` (`tls`).
    BadTls,
}

impl CanaryMode {
    /// Every mode, in code order.
    pub const ALL: [CanaryMode; 6] = [
        CanaryMode::Ok,
        CanaryMode::ServerError,
        CanaryMode::KeywordMissing,
        CanaryMode::Timeout,
        CanaryMode::Refused,
        CanaryMode::BadTls,
    ];

    /// The stored and published name.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryMode::Ok => "ok",
            CanaryMode::ServerError => "server_error",
            CanaryMode::KeywordMissing => "keyword_missing",
            CanaryMode::Timeout => "timeout",
            CanaryMode::Refused => "refused",
            CanaryMode::BadTls => "bad_tls",
        }
    }

    /// The mode named `name`.
    pub fn parse(name: &str) -> Option<CanaryMode> {
        CanaryMode::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The status an honest check reports.
    pub fn expected_status(self) -> &'static str {
        match self {
            CanaryMode::Ok => "up",
            _ => "down",
        }
    }

    fn code(self) -> u8 {
        match self {
            CanaryMode::Ok => 0,
            CanaryMode::ServerError => 1,
            CanaryMode::KeywordMissing => 2,
            CanaryMode::Timeout => 3,
            CanaryMode::Refused => 4,
            CanaryMode::BadTls => 5,
        }
    }

    fn from_code(code: u8) -> Option<CanaryMode> {
        CanaryMode::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// One canary of a round, derived from the round's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryPlan {
    /// Who gets it.
    pub validator_id: i64,
    /// How its endpoint behaves.
    pub mode: CanaryMode,
    /// The keyword asked for, if any.
    pub keyword: Option<&'static str>,
    /// Makes its URL unique.
    pub nonce: [u8; 8],
    /// Picks which real check of the round it is sent beside (same due time).
    pub due_draw: u64,
}

impl CanaryPlan {
    /// The status an honest check reports.
    pub fn expected_status(&self) -> &'static str {
        self.mode.expected_status()
    }
}

/// `keccak256("overlaps/v1/canary-draw" || round key || label || validator id)`.
fn draw(round_key: &[u8; 32], label: &[u8], validator_id: i64) -> [u8; 32] {
    Keccak256::new()
        .chain_update(b"overlaps/v1/canary-draw")
        .chain_update(round_key)
        .chain_update(label)
        .chain_update(validator_id.to_be_bytes())
        .finalize()
        .into()
}

fn draw_u64(round_key: &[u8; 32], label: &[u8], validator_id: i64) -> u64 {
    let digest = draw(round_key, label, validator_id);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The canaries of a round with `round_key` among `candidates` (the validators
/// online at its opening): each gets one with probability `rate_bp`/10,000; half
/// of them are `ok`, the other half spread evenly over the five failure modes.
pub fn plan_round(round_key: &[u8; 32], candidates: &[i64], rate_bp: u32) -> Vec<CanaryPlan> {
    let mut ids = candidates.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .filter(|&v| draw_u64(round_key, b"pick", v) % 10_000 < u64::from(rate_bp))
        .map(|validator_id| {
            let mode = match draw_u64(round_key, b"mode", validator_id) % 100 {
                0..50 => CanaryMode::Ok,
                50..60 => CanaryMode::ServerError,
                60..70 => CanaryMode::KeywordMissing,
                70..80 => CanaryMode::Timeout,
                80..90 => CanaryMode::Refused,
                _ => CanaryMode::BadTls,
            };
            let keyword_draw = draw_u64(round_key, b"keyword", validator_id);
            // A missing keyword needs one asked for; otherwise half the canaries ask.
            let keyword = (mode == CanaryMode::KeywordMissing || keyword_draw.is_multiple_of(2))
                .then(|| KEYWORDS[((keyword_draw >> 1) % KEYWORDS.len() as u64) as usize]);
            let mut nonce = [0u8; 8];
            nonce.copy_from_slice(&draw(round_key, b"nonce", validator_id)[..8]);
            CanaryPlan {
                validator_id,
                mode,
                keyword,
                nonce,
                due_draw: draw_u64(round_key, b"due", validator_id),
            }
        })
        .collect()
}

/// What a canary's answer earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryOutcome {
    /// The right answer: credited like an agreeing check.
    Passed,
    /// The wrong answer: the eon's credits so far are forfeited.
    Failed,
    /// No answer: counted as missed.
    Missed,
}

impl CanaryOutcome {
    /// The stored and published name.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryOutcome::Passed => "passed",
            CanaryOutcome::Failed => "failed",
            CanaryOutcome::Missed => "missed",
        }
    }
}

/// The outcome of answering `answered` (`up`/`down`, `None` when missed) to a
/// canary in `mode`.
pub fn judge(mode: CanaryMode, answered: Option<&str>) -> CanaryOutcome {
    match answered {
        None => CanaryOutcome::Missed,
        Some(status) if status == mode.expected_status() => CanaryOutcome::Passed,
        Some(_) => CanaryOutcome::Failed,
    }
}

/// The canary key of the `index`-th round of a chain (0-based).
pub fn round_key(anchor: &[u8; 32], length: u32, index: u32) -> Option<[u8; 32]> {
    hash_chain::reveal(CANARY_CHAIN_DOMAIN, anchor, length, index)
}

/// The long-term secret shared by the hub and its canary endpoints: it hides each
/// canary's mode inside its URL. Never revealed (the round keys are).
#[derive(Clone, PartialEq, Eq)]
pub struct CanarySecret([u8; 32]);

impl std::fmt::Debug for CanarySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CanarySecret(..)")
    }
}

impl std::str::FromStr for CanarySecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s.trim_start_matches("0x"))
            .map_err(|_| "expected 32 bytes in hex".to_owned())?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "expected 32 bytes in hex".to_owned())?;
        if bytes == [0u8; 32] {
            return Err("must not be all zeros".to_owned());
        }
        Ok(CanarySecret(bytes))
    }
}

impl CanarySecret {
    /// A secret from its bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        CanarySecret(bytes)
    }

    fn prf(&self, label: &[u8], data: &[&[u8]]) -> [u8; 32] {
        let mut hasher = Keccak256::new();
        hasher.update(b"overlaps/v1/canary-path");
        hasher.update(self.0);
        hasher.update(label);
        for part in data {
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    /// The URL path of a canary: `/{word}/{32 hex}`, the mode sealed inside.
    pub fn path_for(&self, nonce: &[u8; 8], mode: CanaryMode) -> String {
        let pad = self.prf(b"pad", &[nonce])[0];
        let tag = self.prf(b"tag", &[nonce, &[mode.code()]]);
        let mut token = Vec::with_capacity(16);
        token.extend_from_slice(nonce);
        token.push(mode.code() ^ pad);
        token.extend_from_slice(&tag[..7]);
        let word = PATH_WORDS[usize::from(nonce[0]) % PATH_WORDS.len()];
        format!("/{word}/{}", hex::encode(token))
    }

    /// The mode sealed in `path` (as [`Self::path_for`] made it); `None` for any
    /// other path, so a forged or altered path is never served as a canary.
    pub fn mode_of_path(&self, path: &str) -> Option<CanaryMode> {
        let token = path.rsplit('/').next()?;
        let bytes = hex::decode(token).ok()?;
        if bytes.len() != 16 {
            return None;
        }
        let nonce: [u8; 8] = bytes[..8].try_into().ok()?;
        let mode = CanaryMode::from_code(bytes[8] ^ self.prf(b"pad", &[&nonce])[0])?;
        let tag = self.prf(b"tag", &[&nonce, &[mode.code()]]);
        (bytes[9..] == tag[..7] && path == self.path_for(&nonce, mode)).then_some(mode)
    }
}

/// Where canaries are served: a plain HTTP endpoint (ok, 5xx, missing keyword,
/// timeout by path), a TLS endpoint with an untrusted certificate, and an address
/// where nothing listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryEndpoints {
    /// `http://…` base of the canary server.
    pub http: url::Url,
    /// `https://…` base whose certificate validators must refuse.
    pub tls: url::Url,
    /// `http://…` base where connections are refused.
    pub refused: url::Url,
}

impl CanaryEndpoints {
    /// The URL a validator is sent for `plan`.
    pub fn url_for(&self, secret: &CanarySecret, plan: &CanaryPlan) -> String {
        let base = match plan.mode {
            CanaryMode::BadTls => &self.tls,
            CanaryMode::Refused => &self.refused,
            _ => &self.http,
        };
        let path = secret.path_for(&plan.nonce, plan.mode);
        format!("{}{}", base.as_str().trim_end_matches('/'), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 32] {
        hash_chain::step(b"test", &[n; 32])
    }

    #[test]
    fn a_plan_is_fixed_by_the_round_key_and_the_candidates_alone() {
        let candidates: Vec<i64> = (1..=40).collect();
        let plan = plan_round(&key(1), &candidates, 2_500);
        let mut reversed = candidates.clone();
        reversed.reverse();
        assert_eq!(plan, plan_round(&key(1), &reversed, 2_500));
        assert_ne!(plan, plan_round(&key(2), &candidates, 2_500));
        assert!(plan_round(&key(1), &candidates, 0).is_empty());
        assert_eq!(plan_round(&key(1), &candidates, 10_000).len(), 40);
        // Roughly a quarter of 40 validators, over many rounds.
        let total: usize = (0..100u8)
            .map(|n| plan_round(&key(n), &candidates, 2_500).len())
            .sum();
        assert!((800..1_200).contains(&total), "{total}");
    }

    #[test]
    fn half_the_canaries_are_up_and_every_failure_mode_occurs() {
        let candidates: Vec<i64> = (1..=100).collect();
        let mut counts = std::collections::HashMap::new();
        for n in 0..50u8 {
            for plan in plan_round(&key(n), &candidates, 10_000) {
                *counts.entry(plan.mode).or_insert(0usize) += 1;
                if plan.mode == CanaryMode::KeywordMissing {
                    assert!(plan.keyword.is_some());
                }
            }
        }
        let ok = counts.get(&CanaryMode::Ok).copied().unwrap_or(0);
        assert!((2_300..2_700).contains(&ok), "{counts:?}");
        for mode in &CanaryMode::ALL[1..] {
            let n = counts.get(mode).copied().unwrap_or(0);
            assert!((350..650).contains(&n), "{mode:?}: {counts:?}");
        }
    }

    #[test]
    fn the_path_hides_the_mode_from_anyone_without_the_secret() {
        let secret = CanarySecret::new([9; 32]);
        let other = CanarySecret::new([8; 32]);
        for mode in CanaryMode::ALL {
            let path = secret.path_for(&[1, 2, 3, 4, 5, 6, 7, 8], mode);
            assert_eq!(secret.mode_of_path(&path), Some(mode));
            assert_eq!(other.mode_of_path(&path), None);
            // Flipping the sealed byte does not give another valid mode.
            let mut forged = path.clone().into_bytes();
            let at = forged.len() - 15;
            forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
            assert_eq!(secret.mode_of_path(&String::from_utf8_lossy(&forged)), None);
        }
        // The same nonce in two modes gives unrelated-looking paths.
        let up = secret.path_for(&[1; 8], CanaryMode::Ok);
        let down = secret.path_for(&[1; 8], CanaryMode::ServerError);
        assert_ne!(up, down);
        assert_eq!(secret.mode_of_path("/status/zz"), None);
        assert!(format!("{secret:?}").contains(".."));
        assert!("00".repeat(32).parse::<CanarySecret>().is_err());
    }

    #[test]
    fn answers_are_judged_against_the_mode() {
        assert_eq!(judge(CanaryMode::Ok, Some("up")), CanaryOutcome::Passed);
        assert_eq!(judge(CanaryMode::Ok, Some("down")), CanaryOutcome::Failed);
        assert_eq!(
            judge(CanaryMode::Timeout, Some("up")),
            CanaryOutcome::Failed
        );
        assert_eq!(
            judge(CanaryMode::BadTls, Some("down")),
            CanaryOutcome::Passed
        );
        assert_eq!(judge(CanaryMode::Refused, None), CanaryOutcome::Missed);
        for mode in CanaryMode::ALL {
            assert_eq!(CanaryMode::parse(mode.as_str()), Some(mode));
        }
    }
}
