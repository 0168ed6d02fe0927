//! The machine's own limits, measured in the same run as the load: raw Ed25519
//! verifications per second (one core, and every core at its best: strict one by one
//! or in batches), and raw PostgreSQL COPY rows per second.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::signing::Keypair;

/// Signatures by distinct keys over distinct messages.
struct Samples {
    keys: Vec<ed25519_dalek::VerifyingKey>,
    messages: Vec<Vec<u8>>,
    signatures: Vec<ed25519_dalek::Signature>,
}

fn samples(count: usize) -> Samples {
    let mut samples = Samples {
        keys: Vec::with_capacity(count),
        messages: Vec::with_capacity(count),
        signatures: Vec::with_capacity(count),
    };
    for i in 0..count {
        let key = Keypair::generate();
        let msg = format!("overlaps/v1/result bench message {i}").into_bytes();
        samples
            .signatures
            .push(ed25519_dalek::Signature::from_bytes(&key.sign(&msg)));
        samples.keys.push(*key.public_key().verifying_key());
        samples.messages.push(msg);
    }
    samples
}

/// Signatures verified per second by `verify` (which returns how many it checked),
/// run for about two seconds on `threads` threads at once.
fn rate_on_threads(threads: usize, verify: fn(&Samples) -> u64) -> f64 {
    let started = Instant::now();
    let done: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let samples = samples(BATCH);
                    let mut done = 0u64;
                    while started.elapsed() < Duration::from_secs(2) {
                        done += verify(&samples);
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    done as f64 / started.elapsed().as_secs_f64()
}

/// Signatures per batch in the batch measurement (and samples per thread).
const BATCH: usize = 64;

fn verify_each_strictly(samples: &Samples) -> u64 {
    let mut done = 0;
    for ((key, msg), sig) in samples
        .keys
        .iter()
        .zip(&samples.messages)
        .zip(&samples.signatures)
    {
        if key.verify_strict(msg, sig).is_ok() {
            done += 1;
        }
    }
    done
}

fn verify_as_batch(samples: &Samples) -> u64 {
    let messages: Vec<&[u8]> = samples.messages.iter().map(Vec::as_slice).collect();
    match ed25519_dalek::verify_batch(&messages, &samples.signatures, &samples.keys) {
        Ok(()) => samples.keys.len() as u64,
        Err(_) => 0,
    }
}

/// Single-thread `verify_strict` calls per second over distinct keys and messages.
pub fn raw_verifications_per_second() -> f64 {
    rate_on_threads(1, verify_each_strictly)
}

/// Ed25519 verifications per second on every core at their best: the higher of
/// `verify_strict` one by one and batches of [`BATCH`], one thread per core.
/// Returns (strict, batch) rates.
pub fn raw_verifications_all_cores_per_second() -> (f64, f64) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (
        rate_on_threads(cores, verify_each_strictly),
        rate_on_threads(cores, verify_as_batch),
    )
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
