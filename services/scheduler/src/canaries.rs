//! Canaries of the round being opened: the canary-key chains committed ahead, the
//! known-answer checks the round's key gives, and where they are recorded.
//!
//! The key of round *r* is a value of the chain of *r*'s epoch; whenever a round
//! of epoch *e* opens, the chain of epoch *e + 1* is committed (its tip stored and
//! published), so every key is fixed a whole epoch before its first round. The
//! key is revealed when the round closes (accounting); until then only the hub
//! knows which assignments are canaries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Int4, Nullable, Text, Timestamptz};
use overlaps_shared::canary::{self, CanaryEndpoints, CanaryMode, CanarySecret};
use overlaps_shared::hash_chain;
use overlaps_shared::site_check::SiteCheck;

/// How the scheduler mixes canaries into rounds.
#[derive(Debug, Clone)]
pub struct CanaryPolicy {
    /// Basis points of online validators given a canary in each round.
    pub rate_bp: u32,
    /// Rounds per chain (epoch).
    pub chain_rounds: u32,
    /// Where canaries are served; `None` runs none (rate 0 is committed).
    pub serving: Option<CanaryServing>,
}

impl CanaryPolicy {
    /// No canaries at all (tests of other rules, private networks).
    pub fn none() -> Self {
        CanaryPolicy {
            rate_bp: 0,
            chain_rounds: 1024,
            serving: None,
        }
    }

    /// The rate a new chain commits to.
    fn committed_rate(&self) -> u32 {
        if self.serving.is_some() {
            self.rate_bp
        } else {
            0
        }
    }
}

/// The canary endpoints and the secret that seals each canary's mode in its URL.
#[derive(Debug, Clone)]
pub struct CanaryServing {
    /// Shared with the canary endpoints, never revealed.
    pub secret: CanarySecret,
    /// Their base URLs.
    pub endpoints: CanaryEndpoints,
    /// The time limit canaries carry (make it what real sites usually carry).
    pub timeout_ms: u32,
}

/// A canary assignment to write with the round.
#[derive(Debug, Clone)]
pub struct PlannedCanary {
    /// Who checks it.
    pub validator_id: i64,
    /// When it is sent: the due time of one of the round's real checks.
    pub due_at: DateTime<Utc>,
    /// How its endpoint behaves.
    pub mode: CanaryMode,
    /// The URL sent.
    pub url: String,
    /// The keyword asked for.
    pub keyword: Option<String>,
    /// The time limit sent.
    pub timeout_ms: u32,
}

impl PlannedCanary {
    /// The check sent, as dispatch builds it from `canary_assignments` and the
    /// canary site (`method`): default assertions.
    pub fn check(&self, method: &str) -> SiteCheck {
        SiteCheck {
            url: self.url.clone(),
            method: method.to_owned(),
            timeout_ms: i32::try_from(self.timeout_ms).unwrap_or(i32::MAX),
            keyword: self.keyword.clone(),
            assertions: serde_json::json!({}),
        }
    }
}

#[derive(QueryableByName)]
struct Chain {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = BigInt)]
    first_round: i64,
    #[diesel(sql_type = Int4)]
    rounds: i32,
    #[diesel(sql_type = Int4)]
    rate_bp: i32,
    #[diesel(sql_type = Bytea)]
    anchor: Vec<u8>,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn chain_at(conn: &mut PgConnection, round: i64) -> QueryResult<Option<Chain>> {
    diesel::sql_query(
        "SELECT epoch, first_round, rounds, rate_bp, anchor FROM canary_chains \
         WHERE first_round <= $1 AND first_round + rounds > $1",
    )
    .bind::<BigInt, _>(round)
    .get_result(conn)
    .optional()
}

fn commit_chain(
    conn: &mut PgConnection,
    epoch: i64,
    first_round: i64,
    policy: &CanaryPolicy,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let anchor = hash_chain::new_anchor();
    let rounds = policy.chain_rounds.max(1);
    diesel::sql_query(
        "INSERT INTO canary_chains (epoch, first_round, rounds, rate_bp, tip, anchor, committed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (epoch) DO NOTHING",
    )
    .bind::<BigInt, _>(epoch)
    .bind::<BigInt, _>(first_round)
    .bind::<Int4, _>(i32::try_from(rounds).unwrap_or(i32::MAX))
    .bind::<Int4, _>(i32::try_from(policy.committed_rate()).unwrap_or(0))
    .bind::<Bytea, _>(hash_chain::tip(canary::CANARY_CHAIN_DOMAIN, &anchor, rounds).to_vec())
    .bind::<Bytea, _>(anchor.to_vec())
    // The rounds' clock, so the audit compares the commitment with their openings.
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(())
}

/// Makes sure the chains of `round`'s epoch and the next one are committed, and
/// returns the round's canary key and the committed rate.
pub fn round_key(
    conn: &mut PgConnection,
    round: i64,
    policy: &CanaryPolicy,
    now: DateTime<Utc>,
) -> QueryResult<([u8; 32], u32)> {
    let chain = match chain_at(conn, round)? {
        Some(chain) => chain,
        None => {
            // A new hub (or the first round after upgrading): its first chain starts
            // here, committed with the round itself.
            let next_epoch =
                diesel::sql_query("SELECT COALESCE(max(epoch), 0) + 1 AS id FROM canary_chains")
                    .get_result::<Id>(conn)?
                    .id;
            commit_chain(conn, next_epoch, round, policy, now)?;
            chain_at(conn, round)?.ok_or(diesel::result::Error::NotFound)?
        }
    };
    let exists = diesel::sql_query("SELECT epoch AS id FROM canary_chains WHERE epoch = $1")
        .bind::<BigInt, _>(chain.epoch + 1)
        .get_result::<Id>(conn)
        .optional()?;
    if exists.is_none() {
        commit_chain(
            conn,
            chain.epoch + 1,
            chain.first_round + i64::from(chain.rounds),
            policy,
            now,
        )?;
    }
    let anchor: [u8; 32] = chain.anchor.as_slice().try_into().map_err(|_| {
        diesel::result::Error::DeserializationError("a canary anchor is not 32 bytes".into())
    })?;
    let index = u32::try_from(round - chain.first_round).unwrap_or(u32::MAX);
    let length = u32::try_from(chain.rounds).unwrap_or(0);
    let key = canary::round_key(&anchor, length, index).ok_or_else(|| {
        diesel::result::Error::DeserializationError("a round outside its canary chain".into())
    })?;
    Ok((key, u32::try_from(chain.rate_bp).unwrap_or(0)))
}

/// The canaries of round `round` among `candidates`; each is sent at the due time
/// of one of the round's real checks (`real_due`), so its timing gives it away no
/// more than its URL does.
pub fn plan(
    conn: &mut PgConnection,
    round: i64,
    opened_at: DateTime<Utc>,
    candidates: &[i64],
    real_due: &[DateTime<Utc>],
    policy: &CanaryPolicy,
) -> QueryResult<Vec<PlannedCanary>> {
    let (key, rate_bp) = round_key(conn, round, policy, opened_at)?;
    let Some(serving) = &policy.serving else {
        return Ok(Vec::new());
    };
    let mut due_times = real_due.to_vec();
    due_times.sort_unstable();
    due_times.dedup();
    Ok(canary::plan_round(&key, candidates, rate_bp)
        .into_iter()
        .map(|plan| {
            let due_at = match due_times.len() {
                0 => opened_at,
                n => due_times[usize::try_from(plan.due_draw % n as u64).unwrap_or(0)],
            };
            PlannedCanary {
                validator_id: plan.validator_id,
                due_at,
                mode: plan.mode,
                url: serving.endpoints.url_for(&serving.secret, &plan),
                keyword: plan.keyword.map(str::to_owned),
                timeout_ms: serving.timeout_ms,
            }
        })
        .collect())
}

/// The website row canary assignments point at (created on first use), with the
/// method its checks are sent with.
pub fn canary_site(conn: &mut PgConnection) -> QueryResult<(i64, String)> {
    if let Some(site) = diesel::sql_query("SELECT id, method FROM websites WHERE canary")
        .get_result::<CanarySite>(conn)
        .optional()?
    {
        return Ok((site.id, site.method));
    }
    diesel::sql_query(
        "INSERT INTO users (email, name) VALUES ('canaries@overlaps.invalid', 'Overlaps canaries') \
         ON CONFLICT (email) DO NOTHING",
    )
    .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum, enabled, canary) \
         SELECT id, 'canaries', 'http://canary.invalid/', 2147483647, 10000, 1, FALSE, TRUE \
         FROM users WHERE email = 'canaries@overlaps.invalid' \
         ON CONFLICT (canary) WHERE canary DO NOTHING",
    )
    .execute(conn)?;
    let site = diesel::sql_query("SELECT id, method FROM websites WHERE canary")
        .get_result::<CanarySite>(conn)?;
    Ok((site.id, site.method))
}

#[derive(QueryableByName)]
struct CanarySite {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    method: String,
}

/// Records what was sent for each canary assignment (`assigned`: assignment id
/// and validator, in the order of `planned`).
pub fn record(
    conn: &mut PgConnection,
    round: i64,
    assigned: &[(i64, i64)],
    planned: &[PlannedCanary],
) -> QueryResult<()> {
    if assigned.is_empty() {
        return Ok(());
    }
    let by_validator: std::collections::HashMap<i64, &PlannedCanary> =
        planned.iter().map(|p| (p.validator_id, p)).collect();
    let (mut ids, mut validators, mut modes, mut urls, mut keywords, mut timeouts) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for &(assignment_id, validator_id) in assigned {
        let Some(plan) = by_validator.get(&validator_id) else {
            continue;
        };
        ids.push(assignment_id);
        validators.push(validator_id);
        modes.push(plan.mode.as_str().to_owned());
        urls.push(plan.url.clone());
        keywords.push(plan.keyword.clone());
        timeouts.push(i32::try_from(plan.timeout_ms).unwrap_or(i32::MAX));
    }
    diesel::sql_query(
        "INSERT INTO canary_assignments (assignment_id, round_number, validator_id, mode, url, keyword, timeout_ms) \
         SELECT a, $1, v, m, u, k, t FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::int[]) \
           AS x(a, v, m, u, k, t)",
    )
    .bind::<BigInt, _>(round)
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<BigInt>, _>(&validators)
    .bind::<Array<Text>, _>(&modes)
    .bind::<Array<Text>, _>(&urls)
    .bind::<Array<Nullable<Text>>, _>(&keywords)
    .bind::<Array<Int4>, _>(&timeouts)
    .execute(conn)?;
    Ok(())
}
