//! Queueing an incident's alerts in the outbox, in the transaction that opens or
//! resolves it: one row per enabled, confirmed channel of the site's owner (all
//! its sites, or this one), made once per incident, kind and channel by the
//! dedup key `<kind>:<incident>:<channel>`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text, Timestamptz};

/// What an incident alert says.
#[derive(Debug, Clone, Copy)]
pub enum IncidentAlert<'a> {
    /// The site is down, for this cause.
    Opened {
        /// The most common failure.
        cause: &'a str,
    },
    /// The site is up again.
    Resolved,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Writes the alert for every channel that should hear of `site`; returns the
/// outbox ids written (none for a channel that already has this alert).
pub fn queue(
    conn: &mut PgConnection,
    site: i64,
    incident: i64,
    alert: IncidentAlert<'_>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<i64>> {
    let (kind, state, cause) = match alert {
        IncidentAlert::Opened { cause } if cause == "degraded" => {
            ("incident_opened", "degraded", cause)
        }
        IncidentAlert::Opened { cause } => ("incident_opened", "down", cause),
        IncidentAlert::Resolved => ("incident_resolved", "up", "recovered"),
    };
    Ok(diesel::sql_query(
        "INSERT INTO alert_outbox (channel_id, incident_id, kind, dedup_key, payload) \
         SELECT c.id, $2, $3, $3 || ':' || $2 || ':' || c.id, \
                jsonb_build_object('website_id', w.id, 'url', w.url, 'name', w.name, 'state', $4::text, \
                                   'cause', $5::text, 'at', $6::timestamptz, 'incident_id', $2) \
         FROM websites w JOIN alert_channels c ON c.owner_id = w.owner_id \
         WHERE w.id = $1 AND c.enabled AND c.confirmed_at IS NOT NULL \
           AND (c.website_id IS NULL OR c.website_id = w.id) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind::<BigInt, _>(site)
    .bind::<BigInt, _>(incident)
    .bind::<Text, _>(kind)
    .bind::<Text, _>(state)
    .bind::<Text, _>(cause)
    .bind::<Timestamptz, _>(now)
    .load::<Id>(conn)?
    .into_iter()
    .map(|row| row.id)
    .collect())
}

/// Whether the incident's outage was announced: always, unless it opened inside
/// a maintenance window and no down alert was queued for it since.
pub fn announced(conn: &mut PgConnection, incident: i64) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Told {
        #[diesel(sql_type = Bool)]
        told: bool,
    }
    Ok(diesel::sql_query(
        "SELECT NOT i.opened_in_maintenance \
                OR EXISTS (SELECT 1 FROM alert_outbox o WHERE o.incident_id = i.id AND o.kind = 'incident_opened') AS told \
         FROM incidents i WHERE i.id = $1",
    )
    .bind::<BigInt, _>(incident)
    .get_result::<Told>(conn)
    .optional()?
    .is_some_and(|row| row.told))
}

/// Announces, outside any window, the still-open outage of `site` that was
/// confirmed inside one: its down alert, once (later rounds find it queued).
pub fn announce_after_window(
    conn: &mut PgConnection,
    site: i64,
    now: DateTime<Utc>,
) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        cause: String,
    }
    let open = diesel::sql_query(
        "SELECT id, cause FROM incidents \
         WHERE website_id = $1 AND resolved_at IS NULL AND opened_in_maintenance",
    )
    .bind::<BigInt, _>(site)
    .get_result::<Open>(conn)
    .optional()?;
    match open {
        Some(incident) => queue(
            conn,
            site,
            incident.id,
            IncidentAlert::Opened {
                cause: &incident.cause,
            },
            now,
        ),
        None => Ok(Vec::new()),
    }
}
