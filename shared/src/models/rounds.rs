//! Validators and rounds: seed chains, assignments, signed ticks, site status,
//! incidents and the alert outbox.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value as Json;

use crate::schema::*;

/// A validator, identified by its Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = validators, check_for_backend(diesel::pg::Pg))]
pub struct Validator {
    /// Row id.
    pub id: i64,
    /// 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// 20-byte Ethereum address rewards are paid to.
    pub payout_address: Option<Vec<u8>>,
    /// Reputation in basis points (0..=10000).
    pub reputation: i32,
    /// Results returned.
    pub checks_done: i64,
    /// Results that matched the majority.
    pub checks_agreed: i64,
    /// Assignments not answered in time.
    pub checks_missed: i64,
    /// Total credited, smallest unit.
    pub credited: BigDecimal,
    /// Total claimed on-chain, smallest unit.
    pub claimed: BigDecimal,
    /// First signup.
    pub first_seen_at: DateTime<Utc>,
    /// Last signup or result.
    pub last_seen_at: DateTime<Utc>,
}

/// A check round.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = rounds, primary_key(number), check_for_backend(diesel::pg::Pg))]
pub struct Round {
    /// Round number, increasing.
    pub number: i64,
    /// The public 32-byte seed assignments are derived from.
    pub seed: Vec<u8>,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// Results after this are late.
    pub deadline_at: DateTime<Utc>,
    /// When accounting closed it.
    pub closed_at: Option<DateTime<Utc>>,
    /// Fewer validators were online than some site's quorum.
    pub degraded: bool,
    /// Hash of the closed results.
    pub results_hash: Option<Vec<u8>>,
    /// Hash chain link to the previous round.
    pub chain_hash: Option<Vec<u8>>,
    /// The closed round whose results hash went into the seed.
    pub seed_results_round: Option<i64>,
    /// The candidates drawn from: `[[validator_id, weight], ...]`.
    pub candidates: Json,
    /// When the `close_round` job was enqueued.
    pub close_enqueued_at: Option<DateTime<Utc>>,
    /// The seed-chain link this round revealed (None: opened under the old rule).
    pub seed_reveal: Option<Vec<u8>>,
}

/// The public part of a seed chain: its commitment, never its anchor.
///
/// The anchor (the hub's secret) is deliberately not a field, so nothing that loads
/// this model can serve or log it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = seed_chains, primary_key(epoch), check_for_backend(diesel::pg::Pg))]
pub struct SeedChain {
    /// Epoch number, from 1.
    pub epoch: i64,
    /// The round that reveals the chain's first link.
    pub first_round: i64,
    /// Rounds in the epoch (links revealed).
    pub rounds: i32,
    /// The commitment: every reveal of the epoch hashes forward to it.
    pub tip: Vec<u8>,
    /// When the hub committed it.
    pub committed_at: DateTime<Utc>,
}

impl SeedChain {
    /// Whether round `round` reveals a link of this chain.
    pub fn covers(&self, round: i64) -> bool {
        self.first_round <= round && round < self.first_round + i64::from(self.rounds)
    }
}

/// One validator asked to check one website in one round.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = check_assignments, check_for_backend(diesel::pg::Pg))]
pub struct CheckAssignment {
    /// Row id, sent to the validator.
    pub id: i64,
    /// The round.
    pub round_number: i64,
    /// The site to check.
    pub website_id: i64,
    /// The validator asked.
    pub validator_id: i64,
    /// The server instance holding the validator's socket.
    pub server_instance: String,
    /// When the check should start.
    pub due_at: DateTime<Utc>,
    /// Results after this are refused.
    pub deadline_at: DateTime<Utc>,
    /// `pending`, `answered` or `missed`.
    pub state: String,
    /// When the result was stored.
    pub answered_at: Option<DateTime<Utc>>,
}

/// A new assignment.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = check_assignments)]
pub struct NewCheckAssignment<'a> {
    /// The round.
    pub round_number: i64,
    /// The site to check.
    pub website_id: i64,
    /// The validator asked.
    pub validator_id: i64,
    /// The server instance holding the validator's socket.
    pub server_instance: &'a str,
    /// When the check should start.
    pub due_at: DateTime<Utc>,
    /// Results after this are refused.
    pub deadline_at: DateTime<Utc>,
}

/// A signed check result (append-only).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ticks, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
pub struct Tick {
    /// The assignment answered.
    pub assignment_id: i64,
    /// Its round.
    pub round_number: i64,
    /// The site checked.
    pub website_id: i64,
    /// The validator that signed.
    pub validator_id: i64,
    /// `up`, `down` or `degraded`.
    pub status: String,
    /// HTTP status code, when a response arrived.
    pub http_status: Option<i16>,
    /// Time to the response (or to the failure).
    pub latency_ms: i32,
    /// Typed failure reason when down.
    pub failure: Option<String>,
    /// TLS certificate expiry, for HTTPS.
    pub tls_expires_at: Option<DateTime<Utc>>,
    /// When the validator checked.
    pub checked_at: DateTime<Utc>,
    /// When the hub received it (the partition key).
    pub received_at: DateTime<Utc>,
    /// 64-byte Ed25519 signature over the canonical result bytes.
    pub signature: Vec<u8>,
    /// The signed layout: 1 (`overlaps/v1`, before spec hashes) or 2.
    pub protocol_version: i16,
    /// SHA-256 of the check spec evaluated (v2 results).
    pub spec_hash: Option<Vec<u8>>,
}

impl Tick {
    /// The fields its validator signed, rebuilt from the stored row.
    pub fn signed_fields(&self) -> crate::signing::ResultFields {
        crate::signing::ResultFields::from_record(crate::signing::ResultRecord {
            assignment_id: self.assignment_id,
            status: &self.status,
            http_status: self.http_status,
            latency_ms: self.latency_ms,
            failure: self.failure.as_deref(),
            tls_expires_at: self.tls_expires_at,
            checked_at: self.checked_at,
            protocol_version: self.protocol_version,
            spec_hash: self.spec_hash.as_deref(),
        })
    }
}

/// A site's settled state.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = website_status, primary_key(website_id), check_for_backend(diesel::pg::Pg))]
pub struct WebsiteStatus {
    /// The site.
    pub website_id: i64,
    /// `up`, `down` or `unknown`.
    pub state: String,
    /// Since when it is in that state.
    pub since: DateTime<Utc>,
    /// Last round that decided it.
    pub last_round: Option<i64>,
    /// A state seen but not yet confirmed.
    pub pending_state: Option<String>,
    /// Consecutive rounds that saw `pending_state`.
    pub pending_count: i32,
    /// Latest known TLS certificate expiry.
    pub tls_expires_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// An outage of one site, from confirmed down to confirmed up.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = incidents, check_for_backend(diesel::pg::Pg))]
pub struct Incident {
    /// Row id.
    pub id: i64,
    /// The site.
    pub website_id: i64,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// The round that confirmed it.
    pub opened_round: i64,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The round that confirmed recovery.
    pub resolved_round: Option<i64>,
    /// Human-readable cause (the majority's failure reason).
    pub cause: String,
    /// The validators' results that decided it.
    pub evidence: Json,
    /// Confirmed in a round that opened inside a maintenance window (no alert went out).
    pub opened_in_maintenance: bool,
}

impl Incident {
    /// The status the round that opened it settled: `degraded` for a slowdown
    /// (cause `degraded`), otherwise `down`.
    pub fn opening_status(&self) -> &'static str {
        if self.cause == "degraded" {
            "degraded"
        } else {
            "down"
        }
    }
}

/// One alert to deliver to one channel.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = alert_outbox, check_for_backend(diesel::pg::Pg))]
pub struct AlertOutboxEntry {
    /// Row id.
    pub id: i64,
    /// The channel, or `None` for operator alerts.
    pub channel_id: Option<i64>,
    /// The incident it is about.
    pub incident_id: Option<i64>,
    /// What happened.
    pub kind: String,
    /// Unique per alert and channel: delivery happens at most once.
    pub dedup_key: String,
    /// What to say.
    pub payload: Json,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Delivery attempts made.
    pub attempts: i32,
    /// When to try again.
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub sent_at: Option<DateTime<Utc>>,
}
