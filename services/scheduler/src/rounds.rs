//! Opening rounds and handing closed ones over to accounting.
//!
//! A round's seed is `round_seed(previous seed, reveal)` (round 1's previous seed
//! is the genesis seed), where the reveal is the round's link of its epoch's seed
//! chain (`shared::selection`). Whenever a round of epoch `e` opens, chain `e + 1`
//! is made sure of in the same transaction, so every chain's tip is public a whole
//! epoch before its first round. The round stores its reveal and the candidates it
//! drew from — each admitted validator with its weight and network — so anyone can
//! check the seed against the published tips and re-derive every assignment from
//! public data alone.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Bytea, Int2, Int4, Jsonb, Nullable, Text, Timestamptz,
};
use overlaps_shared::admission::AdmissionPolicy;
use overlaps_shared::jobs::Dispatch;
use overlaps_shared::operator_alert;
use overlaps_shared::presence::OnlineValidator;
use overlaps_shared::selection::{self, Candidate, RecordedCandidate};
use overlaps_shared::site_check::{RecordedSpec, SiteCheck};
use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::canaries::{self, CanaryPolicy};
use crate::host_cap::{self, DueCheck};

/// What every round is opened with.
#[derive(Debug, Clone)]
pub struct RoundRules {
    /// `ROUND_SECONDS`: results are due by the round's end.
    pub length: Duration,
    /// `HUB_ID`: names the hub in the first round's seed.
    pub hub_id: String,
    /// `SEED_CHAIN_ROUNDS`: rounds per seed epoch.
    pub seed_chain_rounds: u32,
    /// The known-answer checks mixed in.
    pub canaries: CanaryPolicy,
    /// `TARGET_HOST_MAX_CHECKS_PER_MINUTE`: checks one target host receives per
    /// minute across every account.
    pub host_checks_per_minute: u32,
    /// Who may be selected, and with what weight.
    pub admission: AdmissionPolicy,
}

/// A round just opened.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedRound {
    /// Its number.
    pub number: i64,
    /// Its public seed.
    pub seed: [u8; 32],
    /// The seed-chain link it revealed (public from now on).
    pub seed_reveal: [u8; 32],
    /// Results after this are late.
    pub deadline_at: DateTime<Utc>,
    /// Some due site got fewer validators than its quorum.
    pub degraded: bool,
    /// Sites assigned.
    pub sites: usize,
    /// Due sites put off to a later round by the per-host cap.
    pub deferred: usize,
    /// One job per server instance holding chosen validators.
    pub dispatches: Vec<Dispatch>,
}

#[derive(QueryableByName)]
struct LastRound {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = Bytea)]
    seed: Vec<u8>,
}

/// A seed chain with its secret anchor: deliberately not `Debug`, so it cannot
/// end up in a log line.
#[derive(QueryableByName)]
struct ChainRow {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = BigInt)]
    first_round: i64,
    #[diesel(sql_type = Int4)]
    rounds: i32,
    #[diesel(sql_type = Bytea)]
    anchor: Vec<u8>,
}

#[derive(QueryableByName)]
struct DueSite {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Int2)]
    quorum: i16,
    /// What its assignments ask for.
    #[diesel(embed)]
    check: SiteCheck,
}

#[derive(QueryableByName)]
struct Assigned {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    server_instance: String,
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
}

#[derive(QueryableByName)]
struct Opening {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    opened_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    number: i64,
}

fn seed32(bytes: &[u8]) -> overlaps_shared::Result<[u8; 32]> {
    bytes.try_into().map_err(|_| {
        overlaps_shared::Error::Database(diesel::result::Error::DeserializationError(
            "a stored seed or hash is not 32 bytes".into(),
        ))
    })
}

/// When the next round opens: one round length after the last opening (now if none).
pub fn next_opening(
    conn: &mut PgConnection,
    round_length: Duration,
) -> overlaps_shared::Result<Option<DateTime<Utc>>> {
    let last = diesel::sql_query("SELECT max(opened_at) AS opened_at FROM rounds")
        .get_result::<Opening>(conn)?;
    let length = chrono::Duration::from_std(round_length).unwrap_or(chrono::Duration::MAX);
    Ok(last.opened_at.map(|at| at + length))
}

/// The number of the round to open, its seed and its reveal; makes sure the seed
/// chain of the next epoch is committed.
fn seed_for(
    conn: &mut PgConnection,
    hub_id: &str,
    chain_rounds: u32,
    now: DateTime<Utc>,
) -> overlaps_shared::Result<(i64, [u8; 32], [u8; 32])> {
    let last = diesel::sql_query("SELECT number, seed FROM rounds ORDER BY number DESC LIMIT 1")
        .get_result::<LastRound>(conn)
        .optional()?;
    let (number, previous_seed) = match last {
        Some(last) => (last.number + 1, seed32(&last.seed)?),
        None => (1, selection::genesis_seed(hub_id)),
    };
    let reveal = seed_reveal(conn, number, chain_rounds, now)?;
    Ok((
        number,
        selection::round_seed(&previous_seed, &reveal),
        reveal,
    ))
}

/// The reveal of round `number` from the chain of its epoch. The first round ever
/// (or the first after seed chains were introduced) commits epochs 1 and 2; every
/// round of epoch `e` makes sure epoch `e + 1` is committed, so a chain is never
/// made for a round about to open (the hub could then pick its seed).
fn seed_reveal(
    conn: &mut PgConnection,
    number: i64,
    chain_rounds: u32,
    now: DateTime<Utc>,
) -> overlaps_shared::Result<[u8; 32]> {
    let chain = diesel::sql_query(
        "SELECT epoch, first_round, rounds, anchor FROM seed_chains \
         WHERE first_round <= $1 ORDER BY first_round DESC LIMIT 1",
    )
    .bind::<BigInt, _>(number)
    .get_result::<ChainRow>(conn)
    .optional()?;
    let chain = match chain {
        Some(chain) => chain,
        None => {
            let any: Option<i64> =
                diesel::sql_query("SELECT epoch AS number FROM seed_chains LIMIT 1")
                    .get_result::<Number>(conn)
                    .optional()?
                    .map(|n| n.number);
            if any.is_some() {
                return Err(chain_error(format!("no seed chain covers round {number}")));
            }
            let first = commit_chain(conn, 1, number, chain_rounds, now)?;
            commit_chain(conn, 2, number + i64::from(chain_rounds), chain_rounds, now)?;
            first
        }
    };
    let index = number - chain.first_round;
    if index >= i64::from(chain.rounds) {
        return Err(chain_error(format!(
            "round {number} is past the end of seed epoch {}",
            chain.epoch
        )));
    }
    let next_first = chain.first_round + i64::from(chain.rounds);
    let next = diesel::sql_query("SELECT epoch AS number FROM seed_chains WHERE epoch = $1")
        .bind::<BigInt, _>(chain.epoch + 1)
        .get_result::<Number>(conn)
        .optional()?;
    if next.is_none() {
        commit_chain(conn, chain.epoch + 1, next_first, chain_rounds, now)?;
    }
    let anchor = seed32(&chain.anchor)?;
    let rounds =
        u32::try_from(chain.rounds).map_err(|_| chain_error("negative epoch length".into()))?;
    let index = u32::try_from(index).map_err(|_| chain_error("round before its epoch".into()))?;
    selection::seed_chain_reveal(&anchor, rounds, index)
        .ok_or_else(|| chain_error(format!("round {number} is past the end of its seed epoch")))
}

/// Draws a fresh anchor from the operating system and stores the chain of
/// `rounds` links from it, its tip public from `now` on.
fn commit_chain(
    conn: &mut PgConnection,
    epoch: i64,
    first_round: i64,
    rounds: u32,
    now: DateTime<Utc>,
) -> overlaps_shared::Result<ChainRow> {
    let mut anchor = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut anchor)
        .map_err(|e| chain_error(format!("no randomness from the operating system: {e}")))?;
    let tip = selection::seed_chain_tip(&anchor, rounds);
    let length = i32::try_from(rounds).map_err(|_| chain_error("epoch too long".into()))?;
    // committed_at comes from the same clock as the rounds' opened_at, so the audit
    // compares like with like.
    diesel::sql_query(
        "INSERT INTO seed_chains (epoch, first_round, rounds, tip, anchor, committed_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind::<BigInt, _>(epoch)
    .bind::<BigInt, _>(first_round)
    .bind::<Int4, _>(length)
    .bind::<Bytea, _>(tip.to_vec())
    .bind::<Bytea, _>(anchor.to_vec())
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(ChainRow {
        epoch,
        first_round,
        rounds: length,
        anchor: anchor.to_vec(),
    })
}

fn chain_error(message: String) -> overlaps_shared::Error {
    overlaps_shared::Error::SeedChain(message)
}

/// The sites due at a round's opening.
struct DueSites {
    /// Checked this round.
    admitted: Vec<DueCheck>,
    /// Put off by the per-host cap.
    deferred: Vec<DueCheck>,
    /// What each due site's assignments record.
    specs: HashMap<i64, RecordedSpec>,
}

/// The sites due at `now`, longest-waiting first, split by the per-host cap into
/// those checked this round and those put off; with the spec each due site's
/// assignments record.
fn due_sites(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    cap_per_minute: u32,
) -> overlaps_shared::Result<DueSites> {
    let due: Vec<DueSite> = diesel::sql_query(
        "SELECT id, quorum, url, method, timeout_ms, keyword, assertions FROM websites WHERE enabled \
         AND (last_scheduled_at IS NULL OR last_scheduled_at + make_interval(secs => interval_seconds) <= $1) \
         ORDER BY last_scheduled_at NULLS FIRST, id",
    )
    .bind::<Timestamptz, _>(now)
    .load(conn)?;
    let specs: HashMap<i64, RecordedSpec> = due
        .iter()
        .map(|site| (site.id, site.check.recorded()))
        .collect();
    let due: Vec<DueCheck> = due
        .into_iter()
        .map(|site| DueCheck {
            website_id: site.id,
            // The API stores only URLs with a host; one without counts as its own.
            host: host_cap::target_host(&site.check.url).unwrap_or(site.check.url),
            checks: i64::from(site.quorum),
        })
        .collect();
    let mut hosts: Vec<String> = due.iter().map(|d| d.host.clone()).collect();
    hosts.sort();
    hosts.dedup();
    let used = host_cap::used_in_window(conn, now, &hosts)?;
    let (mut admitted, deferred) = host_cap::admit(due, &used, cap_per_minute);
    admitted.sort_by_key(|d| d.website_id);
    Ok(DueSites {
        admitted,
        deferred,
        specs,
    })
}

/// The online validators admitted at `now`, by id, each with its selection weight
/// and the network it connects from: what the round records and draws from.
pub fn admitted_candidates(
    conn: &mut PgConnection,
    admission: &AdmissionPolicy,
    online: &[OnlineValidator],
    now: DateTime<Utc>,
) -> overlaps_shared::Result<Vec<RecordedCandidate>> {
    let ids: Vec<i64> = online.iter().map(|v| v.validator_id).collect();
    let network_of: HashMap<i64, Option<&str>> = online
        .iter()
        .map(|v| (v.validator_id, v.network.as_deref()))
        .collect();
    Ok(admission
        .standings(conn, &ids, now)?
        .into_iter()
        .filter(|standing| standing.admitted)
        .map(|standing| RecordedCandidate {
            validator_id: standing.validator_id,
            weight: standing.weight,
            network: network_of
                .get(&standing.validator_id)
                .copied()
                .flatten()
                .map(str::to_owned),
        })
        .collect())
}

/// Opens the next round at `now`: its seed (committing the next epoch's seed chain
/// when due), due sites within the per-host cap, chosen validators, assignments.
pub fn open_round(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    rules: &RoundRules,
    online: &[OnlineValidator],
) -> overlaps_shared::Result<OpenedRound> {
    let round_length = rules.length;
    let canary_policy = &rules.canaries;
    conn.transaction(|conn| {
        let (number, seed, reveal) = seed_for(conn, &rules.hub_id, rules.seed_chain_rounds, now)?;
        let admitted = admitted_candidates(conn, &rules.admission, online, now)?;
        let candidates: Vec<Candidate<'_>> = admitted.iter().map(RecordedCandidate::as_candidate).collect();
        let instance_of: HashMap<i64, &str> =
            online.iter().map(|v| (v.validator_id, v.server_instance.as_str())).collect();
        let DueSites { admitted: due, deferred, specs } =
            due_sites(conn, now, rules.host_checks_per_minute)?;

        let length = chrono::Duration::from_std(round_length).unwrap_or(chrono::Duration::MAX);
        let deadline_at = now + length;
        // Checks start in the first half of the round, leaving the second for answers.
        let spread = round_length / 2;
        let mut degraded = false;
        let (mut sites, mut validators, mut instances, mut due_ats) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // Recorded now, so dispatch only sends (it rewrites them for a site edited since).
        let (mut spec_hashes, mut limits) = (Vec::new(), Vec::new());
        for site in &due {
            let spec = specs.get(&site.website_id);
            let quorum = usize::try_from(site.checks).unwrap_or(1);
            let chosen = selection::choose_validators(&seed, site.website_id, &candidates, quorum);
            degraded |= chosen.len() < quorum;
            let offset = selection::due_offset(&seed, site.website_id, spread);
            let due_at = now + chrono::Duration::from_std(offset).unwrap_or_default();
            for validator_id in chosen {
                sites.push(site.website_id);
                validators.push(validator_id);
                instances.push(instance_of.get(&validator_id).copied().unwrap_or_default().to_owned());
                due_ats.push(due_at);
                // (Always found; a row without one is recorded by dispatch.)
                spec_hashes.push(spec.map(|s| s.hash.to_vec()));
                limits.push(spec.and_then(|s| s.max_response_ms));
            }
        }
        // Canaries go in beside the real checks, indistinguishable in the messages.
        let candidate_ids: Vec<i64> = candidates.iter().map(|c| c.validator_id).collect();
        let planned = canaries::plan(conn, number, now, &candidate_ids, &due_ats, canary_policy)?;
        let canary_site = if planned.is_empty() { None } else { Some(canaries::canary_site(conn)?) };
        if let Some((canary_site, method)) = &canary_site {
            let canary_site = *canary_site;
            for canary in &planned {
                let spec = canary.check(method).recorded();
                spec_hashes.push(Some(spec.hash.to_vec()));
                limits.push(spec.max_response_ms);
                sites.push(canary_site);
                validators.push(canary.validator_id);
                instances.push(instance_of.get(&canary.validator_id).copied().unwrap_or_default().to_owned());
                due_ats.push(canary.due_at);
            }
        }
        let candidates_json =
            serde_json::Value::from(admitted.iter().map(RecordedCandidate::to_json).collect::<Vec<_>>());
        diesel::sql_query(
            "INSERT INTO rounds (number, seed, seed_reveal, opened_at, deadline_at, degraded, candidates) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind::<BigInt, _>(number)
        .bind::<Bytea, _>(seed.to_vec())
        .bind::<Bytea, _>(reveal.to_vec())
        .bind::<Timestamptz, _>(now)
        .bind::<Timestamptz, _>(deadline_at)
        .bind::<Bool, _>(degraded)
        .bind::<Jsonb, _>(candidates_json)
        .execute(conn)?;
        let assigned: Vec<Assigned> = diesel::sql_query(
            "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at, spec_hash, max_response_ms) \
             SELECT $1, s, v, i, d, $2, h, m FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::timestamptz[], $7::bytea[], $8::int[]) AS t(s, v, i, d, h, m) \
             RETURNING id, server_instance, website_id, validator_id",
        )
        .bind::<BigInt, _>(number)
        .bind::<Timestamptz, _>(deadline_at)
        .bind::<Array<BigInt>, _>(&sites)
        .bind::<Array<BigInt>, _>(&validators)
        .bind::<Array<Text>, _>(&instances)
        .bind::<Array<Timestamptz>, _>(&due_ats)
        .bind::<Array<Nullable<Bytea>>, _>(&spec_hashes)
        .bind::<Array<Nullable<Int4>>, _>(&limits)
        .load(conn)?;
        let canary_rows: Vec<(i64, i64)> = assigned
            .iter()
            .filter(|a| canary_site.as_ref().map(|(site, _)| *site) == Some(a.website_id))
            .map(|a| (a.id, a.validator_id))
            .collect();
        canaries::record(conn, number, &canary_rows, &planned)?;
        host_cap::record(conn, number, now, &due)?;
        let due_ids: Vec<i64> = due.iter().map(|s| s.website_id).collect();
        diesel::sql_query("UPDATE websites SET last_scheduled_at = $1 WHERE id = ANY($2)")
            .bind::<Timestamptz, _>(now)
            .bind::<Array<BigInt>, _>(&due_ids)
            .execute(conn)?;

        alert_operator_on_change(conn, number, degraded, candidates.is_empty(), due.len())?;

        let mut by_instance: HashMap<String, Vec<i64>> = HashMap::new();
        for a in assigned {
            by_instance.entry(a.server_instance).or_default().push(a.id);
        }
        let mut dispatches: Vec<Dispatch> = by_instance
            .into_iter()
            .map(|(server_instance, assignment_ids)| Dispatch { round: number, server_instance, assignment_ids })
            .collect();
        dispatches.sort_by(|a, b| a.server_instance.cmp(&b.server_instance));
        Ok(OpenedRound {
            number,
            seed,
            seed_reveal: reveal,
            deadline_at,
            degraded,
            sites: due.len(),
            deferred: deferred.len(),
            dispatches,
        })
    })
}

/// Rounds past their deadline whose `close_round` job is not enqueued yet.
pub fn rounds_to_close(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> overlaps_shared::Result<Vec<i64>> {
    Ok(diesel::sql_query(
        "SELECT number FROM rounds WHERE closed_at IS NULL AND close_enqueued_at IS NULL \
         AND deadline_at <= $1 ORDER BY number",
    )
    .bind::<Timestamptz, _>(now)
    .load::<Number>(conn)?
    .into_iter()
    .map(|r| r.number)
    .collect())
}

/// Records that the `close_round` job of `round` is enqueued.
pub fn mark_close_enqueued(conn: &mut PgConnection, round: i64) -> overlaps_shared::Result<()> {
    diesel::sql_query("UPDATE rounds SET close_enqueued_at = now() WHERE number = $1")
        .bind::<BigInt, _>(round)
        .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct PreviousHealth {
    #[diesel(sql_type = Bool)]
    degraded: bool,
    #[diesel(sql_type = Bool)]
    had_candidates: bool,
}

/// Writes an operator alert to the outbox when rounds become degraded or no
/// validator is online any more — on the change, not every round.
fn alert_operator_on_change(
    conn: &mut PgConnection,
    number: i64,
    degraded: bool,
    nobody_online: bool,
    due_sites: usize,
) -> overlaps_shared::Result<()> {
    let previous = diesel::sql_query(
        "SELECT degraded, jsonb_array_length(candidates) > 0 AS had_candidates FROM rounds WHERE number = $1",
    )
    .bind::<BigInt, _>(number - 1)
    .get_result::<PreviousHealth>(conn)
    .optional()?;
    let was_degraded = previous.as_ref().is_some_and(|p| p.degraded);
    let had_validators = previous.as_ref().is_none_or(|p| p.had_candidates);
    let mut alerts = Vec::new();
    if nobody_online && had_validators {
        alerts.push((
            format!("no_validators:{number}"),
            format!("no validator is online (round {number})"),
        ));
    } else if degraded && !was_degraded && due_sites > 0 {
        alerts.push((
            format!("degraded:{number}"),
            format!("round {number} is degraded: fewer validators online than a site's quorum"),
        ));
    }
    for (dedup_key, cause) in alerts {
        operator_alert::raise(conn, &dedup_key, &cause)?;
    }
    Ok(())
}
