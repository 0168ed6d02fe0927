//! Reminders: while a site stays down, a channel with `reminder_minutes` N and
//! `reminder_max` M is alerted again every N minutes after the incident opened,
//! at most M times. Reminder k is due at `opened_at + k·N`; its dedup key names
//! incident, channel and k, so queueing is idempotent across sweeps, instances
//! and restarts. After an outage of accounting only the latest due reminder is
//! queued (never a burst of the missed ones); a reminder still queued when the
//! incident resolves is cancelled at delivery. While the site is inside a
//! maintenance window no reminder is queued; after it, the latest due one is.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Timestamptz};

use crate::maintenance::sites_in_maintenance;

/// Queues the reminders due at `now` that are not queued yet; returns their
/// outbox ids.
pub fn queue_due(conn: &mut PgConnection, now: DateTime<Utc>) -> overlaps_shared::Result<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    #[derive(QueryableByName)]
    struct Site {
        #[diesel(sql_type = BigInt)]
        website_id: i64,
    }
    let down: Vec<i64> =
        diesel::sql_query("SELECT website_id FROM incidents WHERE resolved_at IS NULL")
            .load::<Site>(conn)?
            .into_iter()
            .map(|s| s.website_id)
            .collect();
    let withheld: Vec<i64> = sites_in_maintenance(conn, &down, now)?
        .into_iter()
        .collect();
    Ok(diesel::sql_query(
        "INSERT INTO alert_outbox (channel_id, incident_id, kind, dedup_key, payload) \
         SELECT c.id, i.id, 'incident_reminder', \
                'incident_reminder:' || i.id || ':' || c.id || ':' || due.k, \
                jsonb_build_object('website_id', w.id, 'url', w.url, 'name', w.name, \
                                   'state', CASE WHEN i.cause = 'degraded' THEN 'degraded' ELSE 'down' END, \
                                   'cause', i.cause, 'at', i.opened_at, 'incident_id', i.id, \
                                   'reminder', due.k, 'reminder_max', c.reminder_max) \
         FROM incidents i \
         JOIN websites w ON w.id = i.website_id \
         JOIN alert_channels c ON c.owner_id = w.owner_id \
         CROSS JOIN LATERAL (SELECT LEAST(c.reminder_max, \
             floor(extract(epoch FROM ($1 - i.opened_at)) / (c.reminder_minutes * 60))::int) AS k) due \
         WHERE i.resolved_at IS NULL AND w.enabled AND c.enabled AND c.confirmed_at IS NOT NULL \
           AND c.reminder_minutes IS NOT NULL AND due.k >= 1 \
           AND (c.website_id IS NULL OR c.website_id = w.id) \
           AND NOT (w.id = ANY($2)) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Array<BigInt>, _>(&withheld)
    .load::<Id>(conn)?
    .into_iter()
    .map(|r| r.id)
    .collect())
}
