//! Code shared by every Overlaps binary: configuration, telemetry, the PostgreSQL
//! schema, models and pool, the Redis key space and mutex, the job queue types and
//! the one error type.

pub mod admission;
pub mod canary;
pub mod check_spec;
pub mod config;
pub mod db;
pub mod dev_values;
pub mod dns_check;
pub mod error;
pub mod eth;
pub mod hash_chain;
pub mod html;
pub mod jobs;
pub mod ledger;
pub mod maintenance;
pub mod merkle;
pub mod models;
pub mod money;
pub mod mutex;
pub mod network;
pub mod operator_alert;
pub mod presence;
pub mod protocol;
pub mod redact;
pub mod redis_keys;
pub mod root_state;
pub mod schema;
pub mod selection;
pub mod service;
pub mod shutdown;
pub mod signing;
pub mod site_check;
pub mod ssrf;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vectors;
pub mod webhook;

pub use error::{Error, Result};
