//! Rust bindings of `OverlapsRewards`, generated from the committed artifact's ABI
//! (and bytecode, for `deploy`).

#![allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]

ethers::contract::abigen!(
    OverlapsRewards,
    "$CARGO_MANIFEST_DIR/contracts/artifacts/OverlapsRewards.json",
    derives(serde::Serialize, serde::Deserialize)
);

// `abigen!` reads the artifact without telling cargo, so a rebuilt artifact alone
// would leave stale bindings and bytecode; `include_bytes!` makes it a dependency.
const _ARTIFACT: &[u8] = include_bytes!("../../contracts/artifacts/OverlapsRewards.json");
