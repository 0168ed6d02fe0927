//! Rows of the tables in [`crate::schema`], as Rust types.
//!
//! Money columns are `BigDecimal` here because that is what diesel maps
//! `NUMERIC(78,0)` to; they always hold integers in the chain's smallest unit.

mod owners;
mod rounds;
mod settlement;

pub use owners::*;
pub use rounds::*;
pub use settlement::*;
