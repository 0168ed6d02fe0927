//! Rust bindings of `OverlapsRewards`, generated from the committed artifact's ABI
//! (and bytecode, for `deploy`).

#![allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]

ethers::contract::abigen!(
    OverlapsRewards,
    "$CARGO_MANIFEST_DIR/contracts/artifacts/OverlapsRewards.json",
    derives(serde::Serialize, serde::Deserialize)
);
