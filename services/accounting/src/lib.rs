//! Accounting: closes rounds (majority, confirmed status changes, incidents and their
//! alerts, credits, reputation, rollups, the hash chain) and keeps tick partitions.
//! It also closes eons: cumulative rewards, Merkle tree, root commitment.

pub mod alerts;
pub mod canaries;
pub mod close;
pub mod config;
pub mod eon;
mod eon_partition;
pub mod maintenance;
pub mod partitions;
pub mod rollups;
pub mod worker;
