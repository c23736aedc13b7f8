//! The master key that seals Cairn's secrets at rest: the secret halves of access keys and
//! the private keys that sign digests. It lives outside the data directory (a file under
//! `~/.config/cairn/` by default, or the `CAIRN_MASTER_KEY` environment variable), so a copy of
//! the data directory alone reveals no secret. Sealing is AES-256-GCM with a random nonce and
//! the secret's purpose as additional data, so a sealed value cannot be moved to another use.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read or write the master key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the master key {0} is not 64 hexadecimal digits")]
    BadKeyFile(PathBuf),
    #[error("CAIRN_MASTER_KEY is not 64 hexadecimal digits (32 random bytes)")]
    BadKeyText,
    #[error("a sealed {0} is damaged, or was sealed with another master key")]
    Open(String),
    #[error("cannot seal a {0}")]
    Seal(String),
    #[error("the system random number generator failed")]
    Random,
}

/// Where the master key is kept unless told otherwise: `$XDG_CONFIG_HOME/cairn/master.key`,
/// else `~/.config/cairn/master.key`.
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("cairn").join("master.key")
}

pub struct MasterKey {
    key: RandomizedNonceKey,
    check: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    fn from_bytes(bytes: &[u8]) -> Result<MasterKey, VaultError> {
        let key =
            RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| VaultError::BadKeyText)?;
        // A check value that identifies the key without revealing it, stored beside sealed
        // secrets so that a wrong key is reported as such rather than as damage.
        let mac = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, bytes),
            b"cairn master key check",
        );
        let check = hex::encode(&mac.as_ref()[..8]);
        Ok(MasterKey { key, check })
    }

    /// A new random key kept only in memory (benchmarks and tests).
    pub fn ephemeral() -> Result<MasterKey, VaultError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| VaultError::Random)?;
        MasterKey::from_bytes(&bytes)
    }

    /// A key given as 64 hex digits (the `CAIRN_MASTER_KEY` environment variable).
    pub fn from_hex(text: &str) -> Result<MasterKey, VaultError> {
        let bytes = hex::decode(text.trim()).map_err(|_| VaultError::BadKeyText)?;
        if bytes.len() != 32 {
            return Err(VaultError::BadKeyText);
        }
        MasterKey::from_bytes(&bytes)
    }

    /// Reads the key file, or creates it (mode 0600, in a 0700 folder) with 32 random bytes.
    /// Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(MasterKey, bool), VaultError> {
        let io = |source| VaultError::Io {
            path: path.to_owned(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .map_err(|_| VaultError::BadKeyFile(path.to_owned()))?;
                if bytes.len() != 32 {
                    return Err(VaultError::BadKeyFile(path.to_owned()));
                }
                Ok((MasterKey::from_bytes(&bytes)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                aws_lc_rs::rand::fill(&mut bytes).map_err(|_| VaultError::Random)?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let existed = dir.exists();
                    fs::create_dir_all(dir).map_err(io)?;
                    if !existed {
                        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
                    }
                }
                // create_new: two servers starting at once must not each write a key.
                let mut f = match fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return MasterKey::load_or_create(path);
                    }
                    Err(e) => return Err(io(e)),
                };
                f.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                Ok((MasterKey::from_bytes(&bytes)?, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Identifies the key (16 hex digits) without revealing anything about it.
    pub fn check_value(&self) -> &str {
        &self.check
    }

    /// Seals `plaintext` for `purpose` (e.g. `access-key:AKIA...`): `v1:` + base64 of nonce,
    /// ciphertext and tag.
    pub fn seal(&self, plaintext: &[u8], purpose: &str) -> Result<String, VaultError> {
        let mut buf = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(purpose.as_bytes()), &mut buf)
            .map_err(|_| VaultError::Seal(purpose.to_owned()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens what [`MasterKey::seal`] sealed for the same purpose.
    pub fn open(&self, sealed: &str, purpose: &str) -> Result<Vec<u8>, VaultError> {
        let damaged = || VaultError::Open(purpose.to_owned());
        let body = sealed.strip_prefix(PREFIX).ok_or_else(damaged)?;
        let raw = STANDARD.decode(body).map_err(|_| damaged())?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(damaged());
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged())?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buf)
            .map_err(|_| damaged())?;
        Ok(plain.to_vec())
    }
}

/// The master key from `CAIRN_MASTER_KEY` if set, else from `path` (created if missing).
/// Returns the key and a description of where it came from (for the start-up banner).
pub fn resolve(path: Option<&Path>) -> Result<(MasterKey, String), VaultError> {
    if let Ok(text) = std::env::var("CAIRN_MASTER_KEY")
        && !text.trim().is_empty()
    {
        return Ok((MasterKey::from_hex(&text)?, "CAIRN_MASTER_KEY".into()));
    }
    let path = path.map(Path::to_owned).unwrap_or_else(default_path);
    let (key, created) = MasterKey::load_or_create(&path)?;
    let text = if created {
        format!("{} (new)", path.display())
    } else {
        path.display().to_string()
    };
    Ok((key, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_for_the_same_purpose_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/master.key");
        let (key, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = key.seal(b"secret", "access-key:A").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(key.open(&sealed, "access-key:A").unwrap(), b"secret");
        assert!(key.open(&sealed, "access-key:B").is_err());
        // Two seals of one secret differ (random nonce).
        assert_ne!(sealed, key.seal(b"secret", "access-key:A").unwrap());
        // The same file gives the same key; another key cannot open.
        let (again, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.check_value(), key.check_value());
        assert_eq!(again.open(&sealed, "access-key:A").unwrap(), b"secret");
        let other = MasterKey::from_hex(&"ab".repeat(32)).unwrap();
        assert_ne!(other.check_value(), key.check_value());
        assert!(other.open(&sealed, "access-key:A").is_err());
    }

    #[test]
    fn damage_and_bad_keys_are_errors() {
        let key = MasterKey::from_hex(&"01".repeat(32)).unwrap();
        let sealed = key.seal(b"x", "p").unwrap();
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(key.open(&tampered, "p").is_err());
        assert!(key.open("v1:", "p").is_err());
        assert!(key.open("plain", "p").is_err());
        assert!(MasterKey::from_hex("zz").is_err());
        assert!(MasterKey::from_hex(&"01".repeat(31)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(VaultError::BadKeyFile(_))
        ));
    }
}
