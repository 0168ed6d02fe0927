//! Operator alerts (system problems) from any service: one `alert_outbox` row with
//! no channel, delivered by accounting's alert sweep to `NOTIFICATION_HOOK_URL` and
//! `OPERATOR_EMAIL`. The dedup key makes raising the same alert twice a no-op.

use diesel::PgConnection;
use diesel::RunQueryDsl;
use diesel::sql_types::Text;

/// Queues an operator alert once per `dedup_key`; returns whether it was new.
pub fn raise(conn: &mut PgConnection, dedup_key: &str, cause: &str) -> crate::Result<bool> {
    tracing::warn!(%cause, dedup_key, "operator alert");
    let inserted = diesel::sql_query(
        "INSERT INTO alert_outbox (kind, dedup_key, payload) \
         VALUES ('operator', $1, jsonb_build_object('cause', $2::text)) \
         ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind::<Text, _>(dedup_key)
    .bind::<Text, _>(cause)
    .execute(conn)?;
    Ok(inserted == 1)
}
