//! The scheduler: one leader at a time opens a round every `ROUND_SECONDS`, assigns
//! due sites to validators chosen publicly and re-derivably, enqueues one `dispatch`
//! job per server instance, and a `close_round` job once each round's deadline passes.

pub mod canaries;
pub mod config;
pub mod host_cap;
pub mod leader;
pub mod rounds;

pub use crate::config::SchedulerConfig;
