//! The verifier: sends the operator's on-chain transactions (root commitments) and
//! sees each through nonce assignment, fee bumps, confirmation and reorgs.

pub mod config;
pub mod deploy;
pub mod guardian;
pub mod txs;
pub mod worker;
