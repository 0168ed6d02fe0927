//! Accounting: closes rounds (majority, confirmed status changes, incidents and their
//! alerts, credits, reputation, rollups, the hash chain) and keeps tick partitions.
//! Closing eons (Merkle roots) arrives with the payouts issue.

pub mod alerts;
pub mod close;
pub mod config;
pub mod partitions;
pub mod worker;
