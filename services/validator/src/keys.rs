//! The validator's key file: the 32-byte Ed25519 seed in hex, readable by its owner only.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use overlaps_shared::signing::Keypair;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Writing would replace an existing identity.
    #[error("{0} already exists; pass --force to replace it (its identity is lost)")]
    Exists(String),
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// Group or others can read the secret.
    #[error("{0} is readable by others; run chmod 600 on it")]
    TooOpen(String),
    /// Not 64 hex digits.
    #[error("{0} does not hold a 32-byte hex key")]
    Malformed(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a new key to `path` with mode 0600.
pub fn write_new(path: &Path, force: bool) -> Result<Keypair, KeyFileError> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(path.display().to_string())
        } else {
            io(path)(err)
        }
    })?;
    // An existing file keeps its old mode on truncation: tighten it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io(path))?;
    let key = Keypair::generate();
    writeln!(file, "{}", hex::encode(key.seed())).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    Ok(key)
}

/// Reads the key at `path`, refusing a file others can read.
pub fn read(path: &Path) -> Result<Keypair, KeyFileError> {
    let metadata = std::fs::metadata(path).map_err(io(path))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(KeyFileError::TooOpen(path.display().to_string()));
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| KeyFileError::Malformed(path.display().to_string()))?;
    Ok(Keypair::from_seed(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("overlaps-{}-{name}", uuid_like()))
    }

    fn uuid_like() -> String {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        hex::encode(bytes)
    }

    #[test]
    fn a_written_key_reads_back_with_mode_0600() {
        let path = temp_path("key");
        let written = write_new(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap().public_key(), written.public_key());
        // Never overwritten by accident.
        assert!(matches!(
            write_new(&path, false),
            Err(KeyFileError::Exists(_))
        ));
        let replaced = write_new(&path, true).unwrap();
        assert_ne!(replaced.public_key(), written.public_key());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_open_or_malformed_key_file_is_refused() {
        let path = temp_path("open");
        write_new(&path, false).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::TooOpen(_))));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::Malformed(_))));
        std::fs::remove_file(&path).unwrap();
    }
}
