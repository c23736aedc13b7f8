//! Accounts and access keys, kept in `<data-dir>/identity/keys.json` (mode 0600), and the
//! SigV4 authentication of a request against them.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::sigv4::{self, SignedRequest};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    pub created: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    accounts: Vec<String>,
    keys: Vec<AccessKey>,
}

/// Who made a request, as established by its signature.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub access_key_id: String,
    pub region: String,
    pub service: String,
}

pub struct Identity {
    path: PathBuf,
    file: RwLock<KeyFile>,
    by_key: RwLock<HashMap<String, AccessKey>>,
}

/// What first start set up (to print it).
pub struct Bootstrap {
    pub account_id: String,
    pub key: AccessKey,
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid key file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

pub fn new_access_key_id() -> String {
    format!(
        "AKIA{}",
        random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    )
}

pub fn new_secret() -> String {
    random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    )
}

pub fn new_account_id() -> String {
    let mut rng = rand::rng();
    format!(
        "{}",
        rng.random_range(100_000_000_000u64..1_000_000_000_000u64)
    )
}

fn valid_account_id(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

impl Identity {
    /// Opens the key file, creating the first account and key on first start. A given
    /// account id and key are used instead of generated ones (and added if missing).
    pub fn open(
        data_dir: &Path,
        account_id: Option<&str>,
        given_key: Option<(String, String)>,
    ) -> Result<(Identity, Bootstrap), IdentityError> {
        let dir = data_dir.join("identity");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| IdentityError::Io { path, source }
        };
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        let path = dir.join("keys.json");
        let mut file: KeyFile = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| IdentityError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeyFile::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        if let Some(a) = account_id
            && !valid_account_id(a)
        {
            return Err(IdentityError::Invalid(format!(
                "--account-id {a:?} is not a 12-digit AWS account id"
            )));
        }
        let mut changed = false;
        let account = match (account_id, file.accounts.first()) {
            (Some(a), _) => {
                if !file.accounts.iter().any(|x| x == a) {
                    file.accounts.push(a.to_owned());
                    changed = true;
                }
                a.to_owned()
            }
            (None, Some(first)) => first.clone(),
            (None, None) => {
                let a = new_account_id();
                file.accounts.push(a.clone());
                changed = true;
                a
            }
        };
        let mut created = false;
        let key = match given_key {
            Some((id, secret)) => {
                if id.len() < 16 || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(IdentityError::Invalid(format!(
                        "CAIRN_ACCESS_KEY_ID {id:?} must be 16 to 128 letters and digits"
                    )));
                }
                if secret.len() < 16 {
                    return Err(IdentityError::Invalid(
                        "CAIRN_SECRET_ACCESS_KEY must be at least 16 characters".into(),
                    ));
                }
                match file.keys.iter_mut().find(|k| k.access_key_id == id) {
                    Some(k) => {
                        if k.secret_access_key != secret || k.account_id != account {
                            k.secret_access_key = secret;
                            k.account_id = account.clone();
                            changed = true;
                        }
                        k.clone()
                    }
                    None => {
                        let k = AccessKey {
                            access_key_id: id,
                            secret_access_key: secret,
                            account_id: account.clone(),
                            created: cairn_event::format_event_time(cairn_event::now_ms()),
                        };
                        file.keys.push(k.clone());
                        changed = true;
                        k
                    }
                }
            }
            None => match file.keys.iter().find(|k| k.account_id == account) {
                Some(k) => k.clone(),
                None => {
                    let k = AccessKey {
                        access_key_id: new_access_key_id(),
                        secret_access_key: new_secret(),
                        account_id: account.clone(),
                        created: cairn_event::format_event_time(cairn_event::now_ms()),
                    };
                    file.keys.push(k.clone());
                    changed = true;
                    created = true;
                    k
                }
            },
        };
        if changed {
            write_private(&path, &serde_json::to_vec_pretty(&file).unwrap_or_default())
                .map_err(io(&path))?;
        }
        let by_key = file
            .keys
            .iter()
            .map(|k| (k.access_key_id.clone(), k.clone()))
            .collect();
        Ok((
            Identity {
                path,
                file: RwLock::new(file),
                by_key: RwLock::new(by_key),
            },
            Bootstrap {
                account_id: account,
                key,
                created,
            },
        ))
    }

    pub fn accounts(&self) -> Vec<String> {
        self.file.read().accounts.clone()
    }

    pub fn key(&self, access_key_id: &str) -> Option<AccessKey> {
        self.by_key.read().get(access_key_id).cloned()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks a request's SigV4 signature; returns the caller.
    pub fn authenticate(&self, req: &SignedRequest<'_>) -> Result<Caller, ApiError> {
        let auth = |e: sigv4::AuthError| ApiError::new(e.code(), e.status(), e.to_string());
        let claim = sigv4::parse_claim(req).map_err(auth)?;
        let key = self
            .key(&claim.access_key_id)
            .ok_or_else(|| auth(sigv4::AuthError::UnknownAccessKey))?;
        sigv4::verify(
            req,
            &claim,
            &key.secret_access_key,
            time::OffsetDateTime::now_utc(),
        )
        .map_err(auth)?;
        Ok(Caller {
            account_id: key.account_id,
            access_key_id: key.access_key_id,
            region: claim.region,
            service: claim.service,
        })
    }
}

/// Writes a file readable only by its owner, atomically (write, fsync, rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
