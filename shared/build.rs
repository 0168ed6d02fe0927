//! Rebuilds the crate when a migration is added: `embed_migrations!` tracks the
//! files it embeds, not the directory, so a new migration would otherwise be missed
//! by an incremental build.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
