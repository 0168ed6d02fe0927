//! The audit: re-derives each closed eon from stored data alone (tick signatures,
//! round majorities and credits, the hash chain, cumulative rewards, the Merkle
//! root and tree layers, the on-chain root) and reports every mismatch by id.

pub mod audit;
pub mod canaries;
pub mod config;
pub mod seeds;
pub mod selection;
pub mod worker;
