//! Writes the protocol's reference vectors (`shared/protocol/vectors.json`, described
//! in `PROTOCOL.md`) from the code: `cargo run --bin protocol-vectors -- <path>`
//! (no path: standard output). The `vectors` test checks the committed file.

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vectors = overlaps_shared::vectors::generate()?;
    let mut text = serde_json::to_string_pretty(&vectors)?;
    text.push('\n');
    match std::env::args_os().nth(1) {
        Some(path) => std::fs::write(path, text)?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}
