//! The RSA-2048 keys that sign digests: generated and kept by Cairn in
//! `<data-dir>/trails/signing-keys.json` (mode 0600), rotated on a schedule, and published by
//! `ListPublicKeys` for every period they signed. Signing uses aws-lc-rs (constant time).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::digest::fingerprint;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is damaged: {1}")]
    Damaged(PathBuf, String),
    #[error("cannot generate or use an RSA key: {0}")]
    Crypto(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    fingerprint: String,
    created_ms: i64,
    retired_ms: Option<i64>,
    /// base64 DER PKCS #1 RSAPublicKey.
    public_key: String,
    /// The PKCS #8 private key, sealed with the master key (`v1:...`; plain base64 in data
    /// directories of earlier versions, sealed when opened).
    private_key: String,
}

/// A public key as `ListPublicKeys` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub der: Vec<u8>,
    pub fingerprint: String,
    pub valid_from_ms: i64,
    pub valid_to_ms: i64,
}

/// One key, ready to sign.
pub struct Signer {
    pub fingerprint: String,
    pair: Arc<RsaKeyPair>,
}

impl Signer {
    /// The lower-case hex RSA-SHA256 (PKCS #1 v1.5) signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<String, KeyError> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        Ok(hex::encode(sig))
    }
}

struct Current {
    fingerprint: String,
    created_ms: i64,
    pair: Arc<RsaKeyPair>,
}

pub struct Keyring {
    path: PathBuf,
    rotation_ms: i64,
    master: Arc<cairn_vault::MasterKey>,
    keys: Mutex<(Vec<StoredKey>, Option<Current>)>,
}

impl Keyring {
    /// Opens the keyring; a key is generated on first use.
    pub fn open(
        data_dir: &Path,
        rotation_ms: i64,
        master: Arc<cairn_vault::MasterKey>,
    ) -> Result<Keyring, KeyError> {
        let dir = data_dir.join("trails");
        std::fs::create_dir_all(&dir).map_err(|source| KeyError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("signing-keys.json");
        let mut keys: Vec<StoredKey> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| KeyError::Damaged(path.clone(), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        // Seal the private keys an earlier version kept in the clear.
        let mut sealed_now = 0;
        for k in keys
            .iter_mut()
            .filter(|k| !k.private_key.starts_with("v1:"))
        {
            let der = STANDARD
                .decode(&k.private_key)
                .map_err(|e| KeyError::Damaged(path.clone(), e.to_string()))?;
            k.private_key = master
                .seal(&der, &purpose(&k.fingerprint))
                .map_err(|e| KeyError::Crypto(e.to_string()))?;
            sealed_now += 1;
        }
        if sealed_now > 0 {
            save(&path, &keys)?;
            tracing::info!(
                keys = sealed_now,
                "sealed the digest signing keys with the master key"
            );
        }
        Ok(Keyring {
            path,
            rotation_ms: rotation_ms.max(1),
            master,
            keys: Mutex::new((keys, None)),
        })
    }

    /// For a lost master key: retires every key (their private halves cannot be opened any
    /// more; their public halves still verify the digests they signed), so that a new one is
    /// made with the new master key. Returns how many were retired.
    pub fn retire_all(data_dir: &Path, now_ms: i64) -> Result<usize, KeyError> {
        let path = data_dir.join("trails").join("signing-keys.json");
        let mut keys: Vec<StoredKey> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| KeyError::Damaged(path.clone(), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        let mut retired = 0;
        for k in keys.iter_mut().filter(|k| k.retired_ms.is_none()) {
            k.retired_ms = Some(now_ms);
            retired += 1;
        }
        save(&path, &keys)?;
        Ok(retired)
    }

    /// Signs `message` with the current key (rotating first if it is due) and returns the
    /// key's fingerprint and the lower-case hex signature.
    pub fn sign(&self, now_ms: i64, message: &[u8]) -> Result<(String, String), KeyError> {
        let signer = self.signer(now_ms)?;
        Ok((signer.fingerprint.clone(), signer.sign(message)?))
    }

    /// The current key (rotating first if it is due), for a caller that needs the
    /// fingerprint before it has the message to sign.
    pub fn signer(&self, now_ms: i64) -> Result<Signer, KeyError> {
        let (fingerprint, pair) = self.current(now_ms)?;
        Ok(Signer { fingerprint, pair })
    }

    fn current(&self, now_ms: i64) -> Result<(String, Arc<RsaKeyPair>), KeyError> {
        let mut guard = self.keys.lock();
        let (keys, current) = &mut *guard;
        let due = |created: i64| now_ms.saturating_sub(created) >= self.rotation_ms;
        if let Some(c) = current.as_ref()
            && !due(c.created_ms)
        {
            return Ok((c.fingerprint.clone(), c.pair.clone()));
        }
        // Load the newest unretired key, or make a new one.
        let newest = keys
            .iter()
            .rev()
            .find(|k| k.retired_ms.is_none() && !due(k.created_ms))
            .cloned();
        let (stored, pair) = match newest {
            Some(k) => {
                let der = self
                    .master
                    .open(&k.private_key, &purpose(&k.fingerprint))
                    .map_err(|e| KeyError::Damaged(self.path.clone(), e.to_string()))?;
                let pair = RsaKeyPair::from_pkcs8(&der)
                    .map_err(|e| KeyError::Damaged(self.path.clone(), e.to_string()))?;
                (k, pair)
            }
            None => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|e| KeyError::Crypto(e.to_string()))?;
                let pkcs8 = pair.as_der().map_err(|e| KeyError::Crypto(e.to_string()))?;
                let public = pair.public_key().as_ref().to_vec();
                // Change the list in a copy: a key that could not be saved is never used.
                let mut next = keys.clone();
                for k in next.iter_mut().filter(|k| k.retired_ms.is_none()) {
                    k.retired_ms = Some(now_ms);
                }
                let fp = fingerprint(&public);
                let k = StoredKey {
                    private_key: self
                        .master
                        .seal(pkcs8.as_ref(), &purpose(&fp))
                        .map_err(|e| KeyError::Crypto(e.to_string()))?,
                    fingerprint: fp,
                    created_ms: now_ms,
                    retired_ms: None,
                    public_key: STANDARD.encode(&public),
                };
                next.push(k.clone());
                save(&self.path, &next)?;
                *keys = next;
                tracing::info!(fingerprint = %k.fingerprint, "generated a new digest signing key");
                (k, pair)
            }
        };
        let pair = Arc::new(pair);
        *current = Some(Current {
            fingerprint: stored.fingerprint.clone(),
            created_ms: stored.created_ms,
            pair: pair.clone(),
        });
        Ok((stored.fingerprint, pair))
    }

    /// Makes sure a key exists (so `ListPublicKeys` has one to give before any digest).
    pub fn ensure(&self, now_ms: i64) -> Result<(), KeyError> {
        self.current(now_ms).map(|_| ())
    }

    /// Every key whose validity overlaps `[start_ms, end_ms]`, oldest first. A key is valid
    /// from its creation until it was retired (the current one: until its rotation is due).
    pub fn public_keys(&self, start_ms: i64, end_ms: i64) -> Vec<PublicKey> {
        let guard = self.keys.lock();
        guard
            .0
            .iter()
            .filter_map(|k| {
                let to = k
                    .retired_ms
                    .unwrap_or_else(|| k.created_ms.saturating_add(self.rotation_ms));
                let overlaps = k.created_ms <= end_ms && to >= start_ms;
                let der = STANDARD.decode(&k.public_key).ok()?;
                overlaps.then(|| PublicKey {
                    der,
                    fingerprint: k.fingerprint.clone(),
                    valid_from_ms: k.created_ms,
                    valid_to_ms: to,
                })
            })
            .collect()
    }
}

/// What a sealed private key is for (bound into its sealing).
fn purpose(fingerprint: &str) -> String {
    format!("digest-signing-key:{fingerprint}")
}

fn save(path: &Path, keys: &[StoredKey]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let json = serde_json::to_vec_pretty(keys).map_err(|e| KeyError::Crypto(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::verify;

    fn test_master() -> Arc<cairn_vault::MasterKey> {
        Arc::new(cairn_vault::MasterKey::from_hex(&"42".repeat(32)).expect("master key"))
    }

    #[test]
    fn signs_verifiably_rotates_and_publishes_every_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = Keyring::open(dir.path(), 1_000, test_master()).expect("open");
        let (fp1, sig1) = ring.sign(10_000, b"hello").expect("sign");
        assert_eq!(sig1.len(), 512);
        let keys = ring.public_keys(0, 20_000);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].fingerprint, fp1);
        assert!(
            keys[0]
                .der
                .starts_with(&[0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01])
        );
        assert!(verify(&keys[0].der, b"hello", &sig1));
        assert!(!verify(&keys[0].der, b"hellO", &sig1));
        // Reopened, the same key signs until rotation is due; then a new one takes over.
        let ring = Keyring::open(dir.path(), 1_000, test_master()).expect("open");
        let (same, _) = ring.sign(10_500, b"x").expect("sign");
        assert_eq!(same, fp1);
        let (fp2, sig2) = ring.sign(11_500, b"x").expect("sign");
        assert_ne!(fp2, fp1);
        let all = ring.public_keys(0, 20_000);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].valid_to_ms, 11_500);
        assert!(verify(&all[1].der, b"x", &sig2));
        assert_eq!(ring.public_keys(12_000, 12_100).len(), 1);
    }
}
