//! `cairn import --validate`: which log files a validly signed digest vouches for, and with
//! which hash. A digest counts when its signature (from the object's metadata, or from the
//! `previousDigestSignature` of a newer digest that itself counts) verifies with a known key.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};

use cairn_client::Client;
use cairn_trail::digest::{self, DigestFile};

use crate::import::{Item, Origin, Sources};

pub struct Verifier {
    /// Fingerprint → DER public key.
    keys: HashMap<String, Vec<u8>>,
}

/// Log file key → the hex SHA-256 a valid digest gives for it.
pub struct Vouched {
    hashes: HashMap<String, String>,
}

impl Vouched {
    /// The hash a digest vouches for, for an item (matched on its key, or on the end of a
    /// local path).
    pub fn hash_for(&self, item: &Item) -> Option<&str> {
        let text = match &item.origin {
            Origin::S3 { key, .. } => std::borrow::Cow::Borrowed(key.as_str()),
            Origin::File(p) => p.to_string_lossy(),
        };
        self.hashes.get(aws_logs_tail(&text)?).map(String::as_str)
    }
}

/// The part of a key from `AWSLogs/` on: what a digest's `s3Object` and a copy of the file
/// elsewhere have in common.
fn aws_logs_tail(key: &str) -> Option<&str> {
    key.find("AWSLogs/").map(|at| &key[at..])
}

impl Vouched {
    fn insert(&mut self, key: &str, hash: &str) {
        if let Some(tail) = aws_logs_tail(key) {
            self.hashes.insert(tail.to_owned(), hash.to_owned());
        }
    }
}

fn load_keys(list: &Value) -> HashMap<String, Vec<u8>> {
    list["PublicKeyList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(k["Value"].as_str()?)
                .ok()?;
            Some((k["Fingerprint"].as_str()?.to_owned(), der))
        })
        .collect()
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

impl Verifier {
    pub fn new(client: &Client, keys_file: Option<&Path>) -> Result<Verifier> {
        let list = match keys_file {
            Some(path) => {
                let text = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_slice(&text).with_context(|| {
                    format!(
                        "{} is not the JSON that `aws cloudtrail list-public-keys` prints",
                        path.display()
                    )
                })?
            }
            None => client.call(
                "ListPublicKeys",
                &json!({"StartTime": 0, "EndTime": cairn_event::now_ms() / 1000 + 86_400}),
            )?,
        };
        let keys = load_keys(&list);
        if keys.is_empty() {
            bail!("no public keys to check digests with");
        }
        Ok(Verifier { keys })
    }

    /// Reads every digest among the sources' objects and returns what valid ones vouch for.
    pub fn vouched(&self, sources: &Sources) -> Result<Vouched> {
        let digest_items = sources.digests()?;
        // key → (bytes, parsed, metadata signature)
        let mut digests: HashMap<String, (Vec<u8>, DigestFile, Option<String>)> = HashMap::new();
        for item in &digest_items {
            let (bytes, meta) = sources.read_with_metadata(item)?;
            let Some(raw) = gunzip(&bytes) else { continue };
            let Ok(parsed) = serde_json::from_slice::<DigestFile>(&raw) else {
                continue;
            };
            // A digest counts only where it says it lives (a moved digest vouches for nothing).
            let fetched = match &item.origin {
                Origin::S3 { key, .. } => std::borrow::Cow::Borrowed(key.as_str()),
                Origin::File(p) => p.to_string_lossy(),
            };
            if aws_logs_tail(&fetched) != aws_logs_tail(&parsed.digest_s3_object) {
                continue;
            }
            digests.insert(
                parsed.digest_s3_object.clone(),
                (raw, parsed, meta.get("signature").cloned()),
            );
        }
        let check = |raw: &[u8], d: &DigestFile, sig: &str| -> bool {
            let Some(key) = self.keys.get(&d.digest_public_key_fingerprint) else {
                return false;
            };
            let msg = digest::string_to_sign(
                &d.digest_end_time,
                &d.digest_s3_bucket,
                &d.digest_s3_object,
                raw,
                d.previous_digest_signature.as_deref(),
            );
            digest::verify(key, msg.as_bytes(), sig)
        };
        let mut valid: Vec<String> = digests
            .iter()
            .filter(|(_, (raw, d, sig))| sig.as_deref().is_some_and(|s| check(raw, d, s)))
            .map(|(k, _)| k.clone())
            .collect();
        // Newer valid digests vouch for the signature of the one before them.
        let mut i = 0;
        while i < valid.len() {
            let (prev_key, prev_sig) = {
                let d = &digests[&valid[i]].1;
                (
                    d.previous_digest_s3_object.clone(),
                    d.previous_digest_signature.clone(),
                )
            };
            if let (Some(pk), Some(ps)) = (prev_key, prev_sig)
                && !valid.contains(&pk)
                && let Some((raw, d, _)) = digests.get(&pk)
                && check(raw, d, &ps)
            {
                valid.push(pk);
            }
            i += 1;
        }
        if valid.is_empty() && !digests.is_empty() {
            let unsigned = digests.values().filter(|d| d.2.is_none()).count();
            eprintln!(
                "warning: none of the {} digest files could be verified{}",
                digests.len(),
                if unsigned == digests.len() {
                    " (none carries its signature: copies made with `aws s3 sync` drop object metadata; import from the bucket itself)"
                } else {
                    " with the public keys given"
                }
            );
        }
        let mut vouched = Vouched {
            hashes: HashMap::new(),
        };
        for k in &valid {
            for f in &digests[k].1.log_files {
                vouched.insert(&f.s3_object, &f.hash_value);
            }
        }
        Ok(vouched)
    }
}
