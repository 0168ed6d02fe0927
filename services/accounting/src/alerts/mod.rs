//! Delivering the alert outbox: each row goes to its channel once, retried with
//! exponential backoff on temporary failures; a permanent failure (or running out
//! of attempts) is recorded and reported to the operator.

pub mod channels;
pub mod incidents;
pub mod message;
pub mod providers;
pub mod reminders;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Jsonb, Nullable, Text, Timestamptz};

use overlaps_shared::models::CHANNEL_CONFIRMATION;

use self::channels::{Alert, DeliveryError, Sender};
use self::message::describe_evidence;

/// Delivery attempts before an alert is given up.
pub const MAX_ATTEMPTS: i32 = 6;

/// What became of one outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Sent now.
    Sent,
    /// Already sent, failed or claimed by another worker: nothing done.
    Skipped,
    /// A reminder whose incident was resolved first: not sent, not a failure.
    Cancelled,
    /// Failed; tried again at the given time.
    Retry(DateTime<Utc>),
    /// Failed for good (recorded; the operator is told).
    Failed(String),
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    target: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    secret: Option<String>,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Text)]
    alert_kind: String,
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    confirmed_at: Option<DateTime<Utc>>,
    /// The owner's IANA time zone.
    #[diesel(sql_type = Nullable<Text>)]
    time_zone: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    opened_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    resolved_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    incident_cause: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    evidence: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Text>)]
    keyword: Option<String>,
    /// A public status page showing the incident's site (the oldest, if several).
    #[diesel(sql_type = Nullable<Text>)]
    status_page: Option<String>,
}

/// Where operator alerts (outbox rows without a channel) go.
#[derive(Debug, Clone, Default)]
pub struct OperatorChannels {
    /// `NOTIFICATION_HOOK_URL`: a Slack incoming webhook.
    pub slack_hook: Option<String>,
    /// `OPERATOR_EMAIL`.
    pub email: Option<String>,
}

/// Claims row `id` (so no other worker sends it meanwhile) and returns what to send.
fn claim(
    conn: &mut PgConnection,
    id: i64,
    now: DateTime<Utc>,
) -> overlaps_shared::Result<Option<Claimed>> {
    Ok(diesel::sql_query(
        "WITH claimed AS ( \
           UPDATE alert_outbox SET next_attempt_at = $2 + interval '5 minutes' \
           WHERE id = $1 AND state = 'pending' AND next_attempt_at <= $2 \
           RETURNING channel_id, incident_id, payload, kind, attempts) \
         SELECT c.kind, c.target, c.secret, claimed.payload, claimed.kind AS alert_kind, claimed.attempts, \
                c.confirmed_at, u.time_zone, i.opened_at, i.resolved_at, i.cause AS incident_cause, \
                i.evidence, w.keyword, \
                (SELECT p.slug FROM status_page_sites s JOIN status_pages p ON p.id = s.page_id \
                 WHERE s.website_id = COALESCE(i.website_id, (claimed.payload->>'website_id')::bigint) \
                 ORDER BY p.id LIMIT 1) AS status_page \
         FROM claimed LEFT JOIN alert_channels c ON c.id = claimed.channel_id \
         LEFT JOIN users u ON u.id = c.owner_id \
         LEFT JOIN incidents i ON i.id = claimed.incident_id \
         LEFT JOIN websites w ON w.id = i.website_id",
    )
    .bind::<BigInt, _>(id)
    .bind::<Timestamptz, _>(now)
    .get_result::<Claimed>(conn)
    .optional()?)
}

/// Delivers outbox row `id` if it is pending and due.
pub async fn deliver(
    db: &overlaps_shared::db::Database,
    sender: &Sender,
    operator: &OperatorChannels,
    id: i64,
) -> overlaps_shared::Result<Delivered> {
    let now = Utc::now();
    let Some(claimed) = db.run(move |conn| claim(conn, id, now)).await? else {
        return Ok(Delivered::Skipped);
    };
    let mut alert: Alert = serde_json::from_value(claimed.payload.clone()).unwrap_or(Alert {
        cause: Some(claimed.payload.to_string()),
        ..Alert::default()
    });
    alert.kind = claimed.alert_kind.clone();
    complete_from_incident(&mut alert, &claimed);
    if claimed.alert_kind == "incident_reminder" && claimed.resolved_at.is_some() {
        db.run(move |conn| cancel(conn, id)).await?;
        return Ok(Delivered::Cancelled);
    }
    // An unknown zone (set by hand) falls back to UTC alone.
    let zone = claimed.time_zone.as_deref().and_then(|z| z.parse().ok());
    let confirming = claimed.alert_kind == CHANNEL_CONFIRMATION;
    // An address that has not agreed receives its confirmation request and
    // nothing else; a request for an address that has agreed is moot. Neither is a
    // delivery failure the operator needs to hear of.
    let withheld = claimed.kind.is_some() && claimed.confirmed_at.is_none() != confirming;
    let result = match (claimed.kind.as_deref(), claimed.target.as_deref()) {
        (Some(_), Some(_)) if withheld => Err(DeliveryError::Permanent(if confirming {
            "the channel is confirmed already".into()
        } else {
            "the channel's address has not confirmed it yet".into()
        })),
        (Some(kind), Some(target)) => {
            sender
                .send(kind, target, claimed.secret.as_deref(), &alert, zone)
                .await
        }
        // Operator alerts go to every configured operator channel.
        _ => send_operator(sender, operator, &alert).await,
    };
    let attempts = claimed.attempts + 1;
    let outcome = match result {
        Ok(()) => Delivered::Sent,
        Err(DeliveryError::Transient(err)) if attempts < MAX_ATTEMPTS => {
            // 30 s, 1 min, 2 min, 4 min, ...
            let backoff = chrono::Duration::seconds(30 * (1i64 << (attempts - 1).clamp(0, 20)));
            tracing::warn!(outbox_id = id, attempts, error = %err, "alert delivery failed; will retry");
            Delivered::Retry(now + backoff)
        }
        Err(err) => Delivered::Failed(err.to_string()),
    };
    let record = outcome.clone();
    let report = claimed.kind.is_some() && !withheld;
    db.run(move |conn| record_outcome(conn, id, attempts, &record, report))
        .await?;
    if let Delivered::Failed(err) = &outcome {
        tracing::error!(outbox_id = id, attempts, error = %err, "alert delivery failed for good");
    }
    Ok(outcome)
}

async fn send_operator(
    sender: &Sender,
    operator: &OperatorChannels,
    alert: &Alert,
) -> Result<(), DeliveryError> {
    if operator.slack_hook.is_none() && operator.email.is_none() {
        return Err(DeliveryError::Permanent(
            "no NOTIFICATION_HOOK_URL or OPERATOR_EMAIL configured".into(),
        ));
    }
    if let Some(hook) = &operator.slack_hook {
        sender.send("slack", hook, None, alert, None).await?;
    }
    if let Some(email) = &operator.email {
        sender.send("email", email, None, alert, None).await?;
    }
    Ok(())
}

/// Adds what the incident row knows to the payload: when it opened and was
/// resolved, how long the site was down, and the validators' evidence in words.
fn complete_from_incident(alert: &mut Alert, claimed: &Claimed) {
    alert.status_page = claimed.status_page.clone();
    let Some(opened) = claimed.opened_at else {
        return;
    };
    alert.opened_at = Some(opened.to_rfc3339());
    if alert.kind == "incident_resolved"
        && let Some(resolved) = claimed.resolved_at
    {
        alert.resolved_at = Some(resolved.to_rfc3339());
        alert.down_seconds = Some((resolved - opened).num_seconds());
    }
    if let (Some(evidence), Some(cause)) = (&claimed.evidence, &claimed.incident_cause)
        && let Some(described) = describe_evidence(evidence, cause, claimed.keyword.as_deref())
    {
        alert.evidence = Some(described.summary);
        alert.failure = Some(described.failure);
    }
}

fn cancel(conn: &mut PgConnection, id: i64) -> overlaps_shared::Result<()> {
    diesel::sql_query(
        "UPDATE alert_outbox SET state = 'cancelled', \
         last_error = 'the incident was resolved before the reminder went out' WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .execute(conn)?;
    Ok(())
}

fn record_outcome(
    conn: &mut PgConnection,
    id: i64,
    attempts: i32,
    outcome: &Delivered,
    report: bool,
) -> overlaps_shared::Result<()> {
    if matches!(outcome, Delivered::Sent | Delivered::Failed(_)) {
        // A confirmation token is needed only until its message is out.
        diesel::sql_query(
            "UPDATE alert_outbox SET payload = payload - 'confirmation_token' WHERE id = $1",
        )
        .bind::<BigInt, _>(id)
        .execute(conn)?;
    }
    match outcome {
        Delivered::Sent => {
            diesel::sql_query("UPDATE alert_outbox SET state = 'sent', sent_at = now(), attempts = $2, last_error = NULL WHERE id = $1")
                .bind::<BigInt, _>(id)
                .bind::<Int4, _>(attempts)
                .execute(conn)?;
        }
        Delivered::Retry(at) => {
            diesel::sql_query(
                "UPDATE alert_outbox SET attempts = $2, next_attempt_at = $3 WHERE id = $1",
            )
            .bind::<BigInt, _>(id)
            .bind::<Int4, _>(attempts)
            .bind::<Timestamptz, _>(*at)
            .execute(conn)?;
        }
        Delivered::Failed(err) => {
            conn.transaction(|conn| {
                diesel::sql_query("UPDATE alert_outbox SET state = 'failed', attempts = $2, last_error = $3 WHERE id = $1")
                    .bind::<BigInt, _>(id)
                    .bind::<Int4, _>(attempts)
                    .bind::<Text, _>(err)
                    .execute(conn)?;
                // Tell the operator, unless this was itself an operator alert or
                // was withheld on purpose.
                if report {
                    overlaps_shared::operator_alert::raise(
                        conn,
                        &format!("alert_failed:{id}"),
                        &format!("alert {id} could not be delivered: {err}"),
                    )?;
                }
                Ok::<_, overlaps_shared::Error>(())
            })?;
        }
        Delivered::Skipped | Delivered::Cancelled => {}
    }
    Ok(())
}

/// Pending outbox rows due now (new ones, retries, and any whose job was lost).
pub fn due_alerts(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> overlaps_shared::Result<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    Ok(diesel::sql_query(
        "SELECT id FROM alert_outbox WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .load::<Id>(conn)?
    .into_iter()
    .map(|r| r.id)
    .collect())
}
