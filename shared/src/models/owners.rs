//! What owners keep: accounts, keys, websites, alert channels, maintenance windows.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

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
    /// The assertions, a [`crate::check_spec::SiteAssertions`] as JSON.
    pub assertions: serde_json::Value,
}

impl Website {
    /// The site's assertions (defaults for anything the stored object lacks).
    pub fn site_assertions(&self) -> crate::check_spec::SiteAssertions {
        crate::check_spec::SiteAssertions::from_stored(&self.assertions)
    }
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
