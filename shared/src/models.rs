//! Rows of the tables in [`crate::schema`], as Rust types.
//!
//! Money columns are `BigDecimal` here because that is what diesel maps
//! `NUMERIC(78,0)` to; they always hold integers in the chain's smallest unit.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value as Json;

use crate::schema::*;

/// An account: an operator or a website owner.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login e-mail, unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `operator` or `owner`.
    pub role: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Sites it may have; `None`: the hub's default.
    pub max_sites: Option<i32>,
    /// Checks a day its enabled sites may ask for; `None`: the hub's default.
    pub max_checks_per_day: Option<i64>,
    /// IANA time zone alerts show beside UTC; `None`: UTC only.
    pub time_zone: Option<String>,
}

/// A new account.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Login e-mail.
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// `operator` or `owner`.
    pub role: &'a str,
}

/// An API key; only its SHA-256 hash is stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Associations)]
#[diesel(table_name = api_keys, belongs_to(User), check_for_backend(diesel::pg::Pg))]
pub struct ApiKey {
    /// Row id.
    pub id: i64,
    /// The owning account.
    pub user_id: i64,
    /// A label chosen by the user.
    pub name: String,
    /// The first characters of the key, to recognise it in lists.
    pub key_prefix: String,
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set once revoked; a revoked key never authenticates again.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A monitored website.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Associations)]
#[diesel(table_name = websites, belongs_to(User, foreign_key = owner_id), check_for_backend(diesel::pg::Pg))]
pub struct Website {
    /// Row id.
    pub id: i64,
    /// The owning account.
    pub owner_id: i64,
    /// Display name.
    pub name: String,
    /// http(s) URL to check.
    pub url: String,
    /// `GET` or `HEAD`.
    pub method: String,
    /// How often the site is checked.
    pub interval_seconds: i32,
    /// Per-check timeout.
    pub timeout_ms: i32,
    /// How many validators check it each time.
    pub quorum: i16,
    /// A string the body must contain, if any.
    pub keyword: Option<String>,
    /// Disabled sites are not scheduled.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the scheduler last assigned it.
    pub last_scheduled_at: Option<DateTime<Utc>>,
}

/// A new monitored website.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = websites)]
pub struct NewWebsite<'a> {
    /// The owning account.
    pub owner_id: i64,
    /// Display name.
    pub name: &'a str,
    /// http(s) URL to check.
    pub url: &'a str,
    /// `GET` or `HEAD`.
    pub method: &'a str,
    /// How often the site is checked.
    pub interval_seconds: i32,
    /// Per-check timeout.
    pub timeout_ms: i32,
    /// How many validators check it each time.
    pub quorum: i16,
    /// A string the body must contain, if any.
    pub keyword: Option<&'a str>,
}

/// Where an owner's alerts go.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = alert_channels, check_for_backend(diesel::pg::Pg))]
pub struct AlertChannel {
    /// Row id.
    pub id: i64,
    /// The owning account.
    pub owner_id: i64,
    /// Only this website's alerts, or all the owner's when `None`.
    pub website_id: Option<i64>,
    /// `slack`, `email`, `webhook` or one of [`CHANNEL_PROVIDERS`].
    pub kind: String,
    /// Webhook URL, e-mail address, chat id or user key (see the README).
    pub target: String,
    /// The channel's credential: a webhook's HMAC key, a bot token, a routing
    /// key, an access or application token. Never shown in full after creation.
    pub secret: Option<String>,
    /// Disabled channels receive nothing.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When its address agreed to receive alerts; `None`: not yet (e-mail only).
    pub confirmed_at: Option<DateTime<Utc>>,
    /// SHA-256 of the pending confirmation token.
    pub confirmation_hash: Option<Vec<u8>>,
    /// When the pending confirmation token stops working.
    pub confirmation_expires_at: Option<DateTime<Utc>>,
    /// Repeat the alert every this many minutes while the site stays down.
    pub reminder_minutes: Option<i32>,
    /// At most this many reminders per incident.
    pub reminder_max: Option<i32>,
}

/// Every channel kind (`alert_channels.kind`): the original three and the
/// chat and paging services added beside them.
pub const CHANNEL_KINDS: [&str; 10] = [
    "slack",
    "email",
    "webhook",
    "discord",
    "telegram",
    "teams",
    "pagerduty",
    "ntfy",
    "mattermost",
    "pushover",
];

/// The chat and paging services accounting reaches through a provider adapter each.
pub const CHANNEL_PROVIDERS: [&str; 7] = [
    "discord",
    "telegram",
    "teams",
    "pagerduty",
    "ntfy",
    "mattermost",
    "pushover",
];

/// The outbox kind of the message asking an e-mail address to confirm its
/// channel: the server queues it, accounting delivers it and nothing else to an
/// unconfirmed address.
pub const CHANNEL_CONFIRMATION: &str = "channel_confirmation";

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
    /// `up` or `down`.
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
}

impl Tick {
    /// The fields its validator signed, rebuilt from the stored row.
    pub fn signed_fields(&self) -> crate::signing::ResultFields {
        crate::signing::ResultFields::from_record(
            self.assignment_id,
            &self.status,
            self.http_status,
            self.latency_ms,
            self.failure.as_deref(),
            self.tls_expires_at,
            self.checked_at,
        )
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

/// What a validator earned in one round.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = validator_credits, check_for_backend(diesel::pg::Pg))]
pub struct ValidatorCredit {
    /// The round.
    pub round_number: i64,
    /// The validator.
    pub validator_id: i64,
    /// Checks credited.
    pub checks: i32,
    /// Amount, smallest unit.
    pub amount: BigDecimal,
}

/// A closed eon: a run of rounds whose cumulative rewards are committed together.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = eons, primary_key(number), check_for_backend(diesel::pg::Pg))]
pub struct Eon {
    /// Eon number, from 1.
    pub number: i64,
    /// First round included.
    pub first_round: i64,
    /// Last round included.
    pub last_round: i64,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
}

/// The Merkle root of an eon's cumulative rewards.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = root_commitments, primary_key(eon), check_for_backend(diesel::pg::Pg))]
pub struct RootCommitment {
    /// The eon.
    pub eon: i64,
    /// 32-byte root.
    pub root: Vec<u8>,
    /// Sum of all leaves, smallest unit.
    pub total: BigDecimal,
    /// Leaves in the tree.
    pub leaf_count: i32,
    /// Validators left out for lack of a payout address.
    pub excluded_count: i32,
    /// When it was computed.
    pub created_at: DateTime<Utc>,
    /// The root committed on-chain for this eon, once final (also when it was
    /// later cancelled or replaced: see the fields below).
    pub onchain_root: Option<Vec<u8>>,
    /// The block that committed it.
    pub onchain_block: Option<i64>,
    /// The first block where claims may use it (its challenge window ends).
    pub onchain_claimable_block: Option<i64>,
    /// The block where the guardian cancelled it, if it did.
    pub onchain_cancelled_block: Option<i64>,
    /// The eon whose commit replaced it while it was still pending, if any.
    pub onchain_replaced_by: Option<i64>,
}

/// One payout address's leaf in an eon's tree.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = merkle_leaves, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
pub struct MerkleLeaf {
    /// The eon.
    pub eon: i64,
    /// Position in the tree.
    pub leaf_index: i32,
    /// Payout address in the leaf.
    pub payout_address: Vec<u8>,
    /// Cumulative reward of the address, smallest unit.
    pub cumulative: BigDecimal,
}

/// Up to [`crate::merkle::NODE_CHUNK`] consecutive hashes of one layer of an eon's tree.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = merkle_nodes, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
pub struct MerkleNodes {
    /// The eon.
    pub eon: i64,
    /// 0 for the leaf hashes, up to the root's layer.
    pub layer: i16,
    /// Which chunk of the layer.
    pub chunk: i32,
    /// The hashes, 32 bytes each.
    pub hashes: Vec<u8>,
}

/// One validator's reward as of an eon.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = validator_rewards, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
pub struct ValidatorReward {
    /// The eon.
    pub eon: i64,
    /// The validator.
    pub validator_id: i64,
    /// Its payout address at the eon's close; `None`: left out of the tree.
    pub payout_address: Option<Vec<u8>>,
    /// Credited in this eon's rounds.
    pub earned: BigDecimal,
    /// Credited in every round up to this eon's last.
    pub cumulative: BigDecimal,
    /// The part of `cumulative` added to a payout address's leaf so far.
    pub attributed: BigDecimal,
}

/// One on-chain call the verifier is responsible for.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = ethereum_transactions, check_for_backend(diesel::pg::Pg))]
pub struct EthereumTransaction {
    /// Row id.
    pub id: i64,
    /// Idempotency tag, such as `commit_root:7`.
    pub tag: String,
    /// Sender.
    pub from_address: Vec<u8>,
    /// Contract called.
    pub to_address: Vec<u8>,
    /// Call data.
    pub data: Vec<u8>,
    /// Value sent, smallest unit.
    pub value: BigDecimal,
    /// The nonce, once assigned.
    pub nonce: Option<i64>,
    /// `pending`, `mined`, `confirmed` or `failed`.
    pub state: String,
    /// Block it was mined in.
    pub mined_block: Option<i64>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One broadcast of a transaction.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = ethereum_transaction_attempts, check_for_backend(diesel::pg::Pg))]
pub struct EthereumTransactionAttempt {
    /// Row id.
    pub id: i64,
    /// The transaction.
    pub transaction_id: i64,
    /// Hash of this signed attempt.
    pub tx_hash: Vec<u8>,
    /// Nonce (the same for every attempt of a transaction).
    pub nonce: i64,
    /// EIP-1559 max fee.
    pub max_fee_per_gas: BigDecimal,
    /// EIP-1559 tip.
    pub max_priority_fee_per_gas: BigDecimal,
    /// Gas limit.
    pub gas_limit: i64,
    /// When it was sent.
    pub broadcast_at: DateTime<Utc>,
    /// Chain head when it was sent.
    pub broadcast_block: i64,
    /// Block it was mined in, if any.
    pub mined_block: Option<i64>,
    /// Hash of that block, to notice reorgs.
    pub mined_block_hash: Option<Vec<u8>>,
}

/// A block the chain follower has seen.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = chain_blocks, primary_key(number), check_for_backend(diesel::pg::Pg))]
pub struct ChainBlock {
    /// Height.
    pub number: i64,
    /// Block hash.
    pub hash: Vec<u8>,
    /// Parent hash, compared on the next block to detect reorgs.
    pub parent_hash: Vec<u8>,
    /// Block time.
    pub timestamp: DateTime<Utc>,
    /// Past `CONFIRMATIONS`.
    pub finalized: bool,
}

/// A decoded contract log.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = contract_events, check_for_backend(diesel::pg::Pg))]
pub struct ContractEvent {
    /// Row id.
    pub id: i64,
    /// Block height.
    pub block_number: i64,
    /// Block hash.
    pub block_hash: Vec<u8>,
    /// Transaction hash.
    pub tx_hash: Vec<u8>,
    /// Position in the block.
    pub log_index: i32,
    /// `root_committed`, `claimed` or `funded`.
    pub kind: String,
    /// Eon, for `root_committed`.
    pub eon: Option<i64>,
    /// Account, for `claimed` and `funded`.
    pub account: Option<Vec<u8>>,
    /// Amount, smallest unit.
    pub amount: Option<BigDecimal>,
    /// All decoded fields.
    pub data: Json,
}

/// The audit's verdict on one eon.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = audit_reports, primary_key(eon), check_for_backend(diesel::pg::Pg))]
pub struct AuditReport {
    /// The eon.
    pub eon: i64,
    /// When it ran.
    pub created_at: DateTime<Utc>,
    /// No mismatch found.
    pub ok: bool,
    /// What was re-derived, with counts.
    pub checked: Json,
    /// Each mismatch with exact ids.
    pub mismatches: Json,
}

/// A site's maintenance window: one-off (`once`) or every week (`weekly`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = maintenance_windows, check_for_backend(diesel::pg::Pg))]
pub struct MaintenanceWindow {
    /// Row id.
    pub id: i64,
    /// The site.
    pub website_id: i64,
    /// `once` or `weekly`.
    pub kind: String,
    /// `once`: first instant inside.
    pub starts_at: Option<DateTime<Utc>>,
    /// `once`: first instant after.
    pub ends_at: Option<DateTime<Utc>>,
    /// `weekly`: 0 = Monday … 6 = Sunday, in `time_zone`.
    pub weekday: Option<i16>,
    /// `weekly`: local start time in `time_zone`.
    pub start_time: Option<chrono::NaiveTime>,
    /// `weekly`: length in minutes of elapsed time (1..=1440).
    pub duration_minutes: Option<i32>,
    /// IANA zone of `weekday` and `start_time`.
    pub time_zone: String,
    /// The owner's note, public.
    pub note: Option<String>,
    /// When it was declared.
    pub created_at: DateTime<Utc>,
}
