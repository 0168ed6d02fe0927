//! The chain follower: reads blocks from a stored cursor, records their hashes and
//! the rewards contract's events, rolls back what a reorg undid, and applies each
//! event's effects (on-chain roots, claimed amounts, stakes) once its block is final.

pub mod config;
pub mod final_event;
pub mod follower;
pub mod roots;
pub mod stakes;
