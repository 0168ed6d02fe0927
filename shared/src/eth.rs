//! The one place that talks to ethers-rs: chain types (and, with the chain issue,
//! the contract bindings and the RPC client). The rest of the code uses these names.

pub use ethers::types::{Address, H256, U256};
pub use ethers::utils::keccak256;
