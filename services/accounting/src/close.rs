//! Closing a round: each site's result by majority, status changes confirmed over
//! consecutive rounds (opening or resolving incidents, with alerts in the outbox),
//! credits and reputation for validators, hourly rollups, and the hash chain.
//!
//! Everything happens in one transaction, under a row lock on the round, and a
//! round already closed is left alone: closing twice changes nothing.
//!
//! A site whose maintenance window covers the round's opening is settled all the
//! same (results stored, status moved, incidents opened or resolved) but no alert
//! is queued for it and its results stay out of uptime (see [`crate::rollups`]);
//! an incident it opens is marked `opened_in_maintenance`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Int4, Jsonb, Nullable, Numeric, Text, Timestamptz};
use serde_json::json;

use overlaps_shared::ledger::{self, RoundAnswer};
pub use overlaps_shared::ledger::{Verdict, majority};

use crate::alerts::incidents::{self as incident_alerts, IncidentAlert};
use crate::config::ClosePolicy;
use crate::rollups::{self, RoundCounts};
use crate::{canaries, maintenance};

/// Why a round cannot be closed (yet).
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// No such round.
    #[error("round {0} does not exist")]
    UnknownRound(i64),
    /// Its deadline has not passed: results may still arrive.
    #[error("round {0} is still open until its deadline")]
    NotDue(i64),
    /// The round before it is not closed: the hash chain is built in order.
    #[error("round {0} waits for round {1} to close first")]
    PreviousOpen(i64, i64),
    /// A query failed.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// What closing a round did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloseSummary {
    /// Sites decided up, down, unknown.
    pub up: usize,
    /// Sites decided down.
    pub down: usize,
    /// Sites decided degraded.
    pub degraded: usize,
    /// Sites with no majority.
    pub unknown: usize,
    /// Incidents opened.
    pub incidents_opened: Vec<i64>,
    /// Incidents resolved.
    pub incidents_resolved: Vec<i64>,
    /// Alert outbox rows written.
    pub alerts: Vec<i64>,
    /// Sites settled inside a maintenance window (no alert queued for them).
    pub in_maintenance: usize,
    /// Validators credited.
    pub credited: usize,
    /// Canaries answered rightly.
    pub canaries_passed: usize,
    /// Validators that answered a canary wrongly (and forfeited).
    pub canaries_failed: usize,
}

#[derive(QueryableByName)]
struct RoundRow {
    #[diesel(sql_type = Timestamptz)]
    opened_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    closed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    past_deadline: bool,
}

#[derive(QueryableByName)]
struct Previous {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = Nullable<Bytea>)]
    chain_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    closed_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName, Clone)]
struct Answer {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    failure: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Int2>)]
    http_status: Option<i16>,
    #[diesel(sql_type = Nullable<Int4>)]
    latency_ms: Option<i32>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    tls_expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Int4>)]
    max_response_ms: Option<i32>,
}

#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<Text>)]
    pending_state: Option<String>,
    #[diesel(sql_type = Int4)]
    pending_count: i32,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Closes `round` as of `now`; `Ok(None)` when it was already closed.
pub fn close_round(
    conn: &mut PgConnection,
    round: i64,
    now: DateTime<Utc>,
    policy: &ClosePolicy,
) -> Result<Option<CloseSummary>, CloseError> {
    conn.transaction(|conn| {
        let row = diesel::sql_query(
            "SELECT opened_at, closed_at, deadline_at <= $2 AS past_deadline \
             FROM rounds WHERE number = $1 FOR UPDATE",
        )
        .bind::<BigInt, _>(round)
        .bind::<Timestamptz, _>(now)
        .get_result::<RoundRow>(conn)
        .optional()?
        .ok_or(CloseError::UnknownRound(round))?;
        if row.closed_at.is_some() {
            return Ok(None);
        }
        if !row.past_deadline {
            return Err(CloseError::NotDue(round));
        }
        let previous = diesel::sql_query(
            "SELECT number, chain_hash, closed_at FROM rounds WHERE number < $1 ORDER BY number DESC LIMIT 1",
        )
        .bind::<BigInt, _>(round)
        .get_result::<Previous>(conn)
        .optional()?;
        if let Some(prev) = &previous
            && prev.closed_at.is_none()
        {
            return Err(CloseError::PreviousOpen(round, prev.number));
        }

        // Nothing can be answered after the deadline: what is still pending is missed.
        diesel::sql_query("UPDATE check_assignments SET state = 'missed' WHERE round_number = $1 AND state = 'pending'")
            .bind::<BigInt, _>(round)
            .execute(conn)?;
        let answers: Vec<Answer> = diesel::sql_query(
            "SELECT a.id, a.website_id, a.validator_id, a.state, t.status, t.failure, t.http_status, t.latency_ms, \
                    t.tls_expires_at, a.max_response_ms \
             FROM check_assignments a LEFT JOIN ticks t ON t.assignment_id = a.id \
             WHERE a.round_number = $1 ORDER BY a.website_id, a.id",
        )
        .bind::<BigInt, _>(round)
        .load(conn)?;
        // Canaries are judged against their known answers, never by majority, and
        // never move a site, alert anyone or count in any uptime.
        let canary_site = canaries::canary_site(conn)?;
        let canary_tally = canaries::reveal_and_judge(conn, round)?;
        let mut by_site: BTreeMap<i64, Vec<Answer>> = BTreeMap::new();
        for answer in answers.into_iter().filter(|a| Some(a.website_id) != canary_site) {
            by_site.entry(answer.website_id).or_default().push(answer);
        }

        let outcome = ledger::settle_round(
            round,
            &by_site
                .values()
                .flatten()
                .map(|a| RoundAnswer {
                    assignment_id: a.id,
                    website_id: a.website_id,
                    validator_id: a.validator_id,
                    status: a.status.clone(),
                })
                .collect::<Vec<_>>(),
        );
        // Decided at the round's opening, a fixed instant: closing again or later
        // gives the same answer.
        let sites: Vec<i64> = by_site.keys().copied().collect();
        let in_window = maintenance::sites_in_maintenance(conn, &sites, row.opened_at)?;
        let mut summary = CloseSummary::default();
        for (&site, answers) in &by_site {
            let in_maintenance = in_window.contains(&site);
            summary.in_maintenance += usize::from(in_maintenance);
            let verdict = outcome.verdicts.get(&site).copied().unwrap_or(Verdict::Unknown);
            match verdict {
                Verdict::Up => summary.up += 1,
                Verdict::Down => summary.down += 1,
                Verdict::Degraded => summary.degraded += 1,
                Verdict::Unknown => summary.unknown += 1,
            }
            let settled = Settled { site, round, now, verdict, in_maintenance };
            apply_verdict(conn, &settled, answers, policy, &mut summary)?;
            // Outside a window, an outage confirmed inside one that outlasts it is
            // announced now (once: the dedup key).
            if !in_maintenance {
                summary
                    .alerts
                    .extend(incident_alerts::announce_after_window(conn, site, now)?);
            }
            warn_of_tls_expiry(conn, &settled, answers, policy, &mut summary)?;
            let counts = RoundCounts {
                up: answers.iter().filter(|a| a.status.as_deref() == Some("up")).count(),
                down: answers.iter().filter(|a| a.status.as_deref() == Some("down")).count(),
                degraded: answers.iter().filter(|a| a.status.as_deref() == Some("degraded")).count(),
                unknown: verdict == Verdict::Unknown,
                maintenance: in_maintenance,
                has_latency: answers.iter().any(|a| a.latency_ms.is_some()),
            };
            rollups::add_round(conn, site, row.opened_at, counts)?;
        }

        let validators: BTreeSet<i64> = outcome
            .tallies
            .keys()
            .chain(canary_tally.by_validator.keys())
            .copied()
            .collect();
        for validator_id in validators {
            let ledger::Tally { answered, agreed, missed } =
                outcome.tallies.get(&validator_id).copied().unwrap_or_default();
            let passed = canary_tally.passed(validator_id);
            let failed = canary_tally.failed(validator_id);
            let canaries_missed = canary_tally.missed(validator_id);
            // A passed canary earns what an agreeing check does.
            let earned_checks = agreed + passed;
            let amount = &policy.reward_per_check * BigDecimal::from(earned_checks);
            if earned_checks > 0 {
                diesel::sql_query(
                    "INSERT INTO validator_credits (round_number, validator_id, checks, amount) VALUES ($1, $2, $3, $4)",
                )
                .bind::<BigInt, _>(round)
                .bind::<BigInt, _>(validator_id)
                .bind::<Int4, _>(i32::try_from(earned_checks).unwrap_or(i32::MAX))
                .bind::<Numeric, _>(&amount)
                .execute(conn)?;
                summary.credited += 1;
            }
            // Agreeing earns reputation; disagreeing or missing costs more.
            let change = earned_checks * i64::from(policy.reputation_gain)
                - (answered - agreed + missed + canaries_missed) * i64::from(policy.reputation_loss);
            diesel::sql_query(
                "UPDATE validators SET checks_done = checks_done + $2, checks_agreed = checks_agreed + $3, \
                 checks_missed = checks_missed + $4, credited = credited + $5, \
                 reputation = LEAST(10000, GREATEST(0, reputation + $6)) WHERE id = $1",
            )
            .bind::<BigInt, _>(validator_id)
            .bind::<BigInt, _>(answered + passed + failed)
            .bind::<BigInt, _>(earned_checks)
            .bind::<BigInt, _>(missed + canaries_missed)
            .bind::<Numeric, _>(&amount)
            .bind::<Int4, _>(i32::try_from(change).unwrap_or(0))
            .execute(conn)?;
            if failed > 0 {
                // A wrong known answer: the eon's credits so far and a large share
                // of the reputation are gone.
                canaries::forfeit(conn, round, validator_id)?;
                diesel::sql_query(
                    "UPDATE validators SET reputation = reputation * (10000 - $2) / 10000 WHERE id = $1",
                )
                .bind::<BigInt, _>(validator_id)
                .bind::<Int4, _>(policy.canary_penalty_bp)
                .execute(conn)?;
                summary.canaries_failed += 1;
            }
            summary.canaries_passed += usize::try_from(passed).unwrap_or(0);
        }

        let results_hash = outcome.results_hash;
        let chain_hash =
            ledger::chain_hash(previous.and_then(|p| p.chain_hash).as_deref(), &results_hash);
        diesel::sql_query("UPDATE rounds SET closed_at = $2, results_hash = $3, chain_hash = $4 WHERE number = $1")
            .bind::<BigInt, _>(round)
            .bind::<Timestamptz, _>(now)
            .bind::<Bytea, _>(results_hash.to_vec())
            .bind::<Bytea, _>(chain_hash.to_vec())
            .execute(conn)?;
        Ok(Some(summary))
    })
}

/// One site's verdict in the round being closed.
struct Settled {
    site: i64,
    round: i64,
    now: DateTime<Utc>,
    verdict: Verdict,
    /// A maintenance window covers the round's opening: no alerts.
    in_maintenance: bool,
}

/// Moves a site's status by one round's verdict; a change holds only after the
/// configured number of consecutive rounds, and then opens or resolves an incident
/// (alerting the owner's channels unless the site is in maintenance).
fn apply_verdict(
    conn: &mut PgConnection,
    settled: &Settled,
    answers: &[Answer],
    policy: &ClosePolicy,
    summary: &mut CloseSummary,
) -> Result<(), CloseError> {
    let &Settled {
        site,
        round,
        now,
        verdict,
        in_maintenance,
    } = settled;
    let status = diesel::sql_query("SELECT state, pending_state, pending_count FROM website_status WHERE website_id = $1 FOR UPDATE")
        .bind::<BigInt, _>(site)
        .get_result::<Status>(conn)
        .optional()?
        .unwrap_or(Status { state: "unknown".into(), pending_state: None, pending_count: 0 });
    let observed = verdict.as_str();
    let (mut state, mut pending, mut count) = (
        status.state.clone(),
        status.pending_state.clone(),
        status.pending_count,
    );
    let mut changed = false;
    // Unknown never moves a site: lack of validators is not an outage.
    if verdict != Verdict::Unknown {
        if observed == state {
            pending = None;
            count = 0;
        } else {
            count = if pending.as_deref() == Some(observed) {
                count + 1
            } else {
                1
            };
            pending = Some(observed.to_owned());
            // Degraded is confirmed like down: both alert.
            let needed = if matches!(verdict, Verdict::Down | Verdict::Degraded) {
                policy.confirmations_down
            } else {
                policy.confirmations_up
            };
            if count >= needed {
                state = observed.to_owned();
                pending = None;
                count = 0;
                changed = true;
            }
        }
    }
    diesel::sql_query(
        "INSERT INTO website_status (website_id, state, since, last_round, pending_state, pending_count, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $3) \
         ON CONFLICT (website_id) DO UPDATE SET state = EXCLUDED.state, \
           since = CASE WHEN website_status.state = EXCLUDED.state THEN website_status.since ELSE EXCLUDED.since END, \
           last_round = EXCLUDED.last_round, pending_state = EXCLUDED.pending_state, \
           pending_count = EXCLUDED.pending_count, updated_at = EXCLUDED.updated_at",
    )
    .bind::<BigInt, _>(site)
    .bind::<Text, _>(&state)
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(round)
    .bind::<Nullable<Text>, _>(pending.as_deref())
    .bind::<Int4, _>(count)
    .execute(conn)?;
    if !changed {
        return Ok(());
    }
    let evidence = serde_json::Value::from(
        answers
            .iter()
            .map(|a| {
                json!({
                    "assignment_id": a.id, "validator_id": a.validator_id, "state": a.state,
                    "status": a.status, "failure": a.failure, "http_status": a.http_status,
                    "latency_ms": a.latency_ms, "max_response_ms": a.max_response_ms,
                })
            })
            .collect::<Vec<_>>(),
    );
    match verdict {
        Verdict::Down | Verdict::Degraded => {
            // A degraded site's incident has the cause `degraded`; from degraded to
            // down (or back) the open incident carries on (one per outage).
            let cause = if verdict == Verdict::Degraded {
                "degraded".to_owned()
            } else {
                most_common_failure(answers)
            };
            let incident = diesel::sql_query(
                "INSERT INTO incidents (website_id, opened_at, opened_round, cause, evidence, opened_in_maintenance) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind::<BigInt, _>(site)
            .bind::<Timestamptz, _>(now)
            .bind::<BigInt, _>(round)
            .bind::<Text, _>(&cause)
            .bind::<Jsonb, _>(&evidence)
            .bind::<Bool, _>(in_maintenance)
            .get_result::<Id>(conn)
            .optional()?;
            if let Some(incident) = incident {
                summary.incidents_opened.push(incident.id);
                if in_maintenance {
                    return Ok(());
                }
                summary.alerts.extend(incident_alerts::queue(
                    conn,
                    site,
                    incident.id,
                    IncidentAlert::Opened { cause: &cause },
                    now,
                )?);
            }
        }
        Verdict::Up => {
            let resolved = diesel::sql_query(
                "UPDATE incidents SET resolved_at = $2, resolved_round = $3, \
                 evidence = evidence || jsonb_build_array(jsonb_build_object('resolved_by', $4::jsonb)) \
                 WHERE website_id = $1 AND resolved_at IS NULL RETURNING id",
            )
            .bind::<BigInt, _>(site)
            .bind::<Timestamptz, _>(now)
            .bind::<BigInt, _>(round)
            .bind::<Jsonb, _>(&evidence)
            .get_result::<Id>(conn)
            .optional()?;
            if let Some(incident) = resolved {
                summary.incidents_resolved.push(incident.id);
                // A recovery is told only where the outage was (one confirmed
                // inside a window and over before it ended was never announced).
                if in_maintenance || !incident_alerts::announced(conn, incident.id)? {
                    return Ok(());
                }
                summary.alerts.extend(incident_alerts::queue(
                    conn,
                    site,
                    incident.id,
                    IncidentAlert::Resolved,
                    now,
                )?);
            }
        }
        Verdict::Unknown => {}
    }
    Ok(())
}

/// Records the certificate expiry the validators saw and, when it falls within
/// `TLS_EXPIRY_WARNING_DAYS`, alerts once per certificate and channel (outside
/// maintenance windows: one withheld inside is queued by the first round after).
fn warn_of_tls_expiry(
    conn: &mut PgConnection,
    settled: &Settled,
    answers: &[Answer],
    policy: &ClosePolicy,
    summary: &mut CloseSummary,
) -> Result<(), CloseError> {
    let &Settled { site, now, .. } = settled;
    // The expiry a majority of the site's results agree on: one validator alone
    // can neither raise an alert nor hide one.
    let Some(expires) = majority_expiry(answers) else {
        return Ok(());
    };
    diesel::sql_query("UPDATE website_status SET tls_expires_at = $2 WHERE website_id = $1")
        .bind::<BigInt, _>(site)
        .bind::<Timestamptz, _>(expires)
        .execute(conn)?;
    if settled.in_maintenance
        || expires > now + chrono::Duration::days(i64::from(policy.tls_warning_days))
    {
        return Ok(());
    }
    let days_left = (expires - now).num_days();
    let ids: Vec<Id> = diesel::sql_query(
        "INSERT INTO alert_outbox (channel_id, kind, dedup_key, payload) \
         SELECT c.id, 'tls_expiring', 'tls_expiring:' || w.id || ':' || $2::date || ':' || c.id, \
                jsonb_build_object('website_id', w.id, 'url', w.url, 'name', w.name, \
                                   'cause', 'certificate expires ' || $2::text || ' (' || $3::text || ' days)', \
                                   'at', $2::timestamptz) \
         FROM websites w JOIN alert_channels c ON c.owner_id = w.owner_id \
         WHERE w.id = $1 AND c.enabled AND c.confirmed_at IS NOT NULL \
           AND (c.website_id IS NULL OR c.website_id = w.id) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind::<BigInt, _>(site)
    .bind::<Timestamptz, _>(expires)
    .bind::<Text, _>(days_left.to_string())
    .load(conn)?;
    summary.alerts.extend(ids.into_iter().map(|i| i.id));
    Ok(())
}

/// The certificate expiry reported by more than half of the results received.
fn majority_expiry(answers: &[Answer]) -> Option<DateTime<Utc>> {
    let received = answers.iter().filter(|a| a.status.is_some()).count();
    let mut counts: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
    for expiry in answers
        .iter()
        .filter(|a| a.status.is_some())
        .filter_map(|a| a.tls_expires_at)
    {
        *counts.entry(expiry).or_default() += 1;
    }
    counts
        .into_iter()
        .find(|&(_, n)| n * 2 > received)
        .map(|(expiry, _)| expiry)
}

fn most_common_failure(answers: &[Answer]) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for failure in answers.iter().filter_map(|a| a.failure.as_deref()) {
        *counts.entry(failure).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map_or_else(|| "down".to_owned(), |(failure, _)| failure.to_owned())
}

/// Closes every open round up to `round` whose deadline passed, oldest first (the
/// hash chain needs order); returns what each close did.
pub fn close_rounds_through(
    conn: &mut PgConnection,
    round: i64,
    now: DateTime<Utc>,
    policy: &ClosePolicy,
) -> Result<Vec<(i64, CloseSummary)>, CloseError> {
    #[derive(QueryableByName)]
    struct Number {
        #[diesel(sql_type = BigInt)]
        number: i64,
    }
    let open: Vec<Number> = diesel::sql_query(
        "SELECT number FROM rounds WHERE closed_at IS NULL AND number <= $1 ORDER BY number",
    )
    .bind::<BigInt, _>(round)
    .load(conn)?;
    let mut closed = Vec::new();
    for Number { number } in open {
        if let Some(summary) = close_round(conn, number, now, policy)? {
            closed.push((number, summary));
        }
    }
    Ok(closed)
}
