//! The machine's own limits, measured in the same run as the load: raw Ed25519
//! verifications per second on one core, and raw PostgreSQL COPY rows per second.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::signing::Keypair;

/// Single-thread `verify_strict` calls per second over distinct keys and messages.
pub fn raw_verifications_per_second() -> f64 {
    let samples: Vec<(
        ed25519_dalek::VerifyingKey,
        Vec<u8>,
        ed25519_dalek::Signature,
    )> = (0..256)
        .map(|i| {
            let key = Keypair::generate();
            let msg = format!("overlaps/v1/result bench message {i}").into_bytes();
            let sig = ed25519_dalek::Signature::from_bytes(&key.sign(&msg));
            (*key.public_key().verifying_key(), msg, sig)
        })
        .collect();
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        for (key, msg, sig) in &samples {
            if key.verify_strict(msg, sig).is_ok() {
                done += 1;
            }
        }
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// Tick rows per second through one COPY of `rows` rows (rolled back afterwards).
pub fn raw_copy_rows_per_second(conn: &mut PgConnection, rows: usize) -> anyhow::Result<f64> {
    let now = Utc::now();
    let batch: Vec<Tick> = (0..rows)
        .map(|i| Tick {
            assignment_id: -1 - i as i64,
            round_number: 0,
            website_id: 0,
            validator_id: 0,
            status: "up".into(),
            http_status: Some(200),
            latency_ms: 42,
            failure: None,
            tls_expires_at: None,
            checked_at: now,
            received_at: now,
            signature: vec![7; 64],
            protocol_version: 2,
            spec_hash: Some(vec![5; 32]),
        })
        .collect();
    let mut elapsed = Duration::ZERO;
    let outcome = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        let started = Instant::now();
        diesel::copy_from(ticks::table)
            .from_insertable(&batch)
            .execute(conn)?;
        elapsed = started.elapsed();
        // Measure, then leave nothing behind.
        Err(diesel::result::Error::RollbackTransaction)
    });
    match outcome {
        Err(diesel::result::Error::RollbackTransaction) => Ok(rows as f64 / elapsed.as_secs_f64()),
        Err(err) => Err(err.into()),
        Ok(()) => Ok(rows as f64 / elapsed.as_secs_f64()),
    }
}
