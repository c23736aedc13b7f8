//! Buckets: where trail log files and digests are delivered and where imports read from.
//! By default a bucket is a folder under the data directory; with an S3 endpoint configured
//! (or for an `s3://` address) it is a bucket of AWS S3 or any S3-compatible service, reached
//! through the `object_store` crate. User metadata (a digest's signature) travels with the
//! object: S3 keeps it as `x-amz-meta-*`, a folder bucket in a sidecar tree that no bucket
//! name can collide with (`<root>/.meta/<bucket>/<key>`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("the bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("the object {0} does not exist")]
    NoSuchKey(String),
    #[error(
        "{0:?} is not a valid bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit"
    )]
    InvalidBucketName(String),
    #[error("{0:?} is not a valid object key")]
    InvalidKey(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("object store error: {0}")]
    Remote(String),
}

pub type Result<T> = std::result::Result<T, BucketError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BucketError + '_ {
    move |source| BucketError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How to reach an S3-compatible service. Unset members come from the usual AWS environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`).
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

/// Where buckets live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Each bucket is a folder under `root`.
    Folder {
        root: PathBuf,
    },
    S3(S3Config),
}

/// One bucket of a backend.
#[derive(Clone)]
pub struct Bucket {
    name: String,
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Folder { root: PathBuf },
    S3(Arc<AmazonS3>),
}

/// An object read back: its bytes and its user metadata (keys without `x-amz-meta-`).
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub metadata: BTreeMap<String, String>,
    pub last_modified_ms: i64,
}

/// An entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// Checks a bucket name against S3's rules for new buckets.
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix (without a trailing slash).
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !key.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(BucketError::InvalidKey(key.to_owned()))
    }
}

impl Backend {
    /// The folder backend under `<data_dir>/buckets`.
    pub fn folder(data_dir: &Path) -> Backend {
        Backend::Folder {
            root: data_dir.join("buckets"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Backend::Folder { root } => format!("folders under {}", root.display()),
            Backend::S3(c) => format!(
                "S3 at {}",
                c.endpoint.as_deref().unwrap_or("the AWS default endpoint")
            ),
        }
    }

    pub fn is_folder(&self) -> bool {
        matches!(self, Backend::Folder { .. })
    }

    /// A handle on one bucket (no request is made).
    pub fn bucket(&self, name: &str) -> Result<Bucket> {
        let inner = match self {
            Backend::Folder { root } => {
                if !valid_bucket_name(name) {
                    return Err(BucketError::InvalidBucketName(name.to_owned()));
                }
                Inner::Folder { root: root.clone() }
            }
            Backend::S3(config) => {
                if name.is_empty() || name.contains('/') {
                    return Err(BucketError::InvalidBucketName(name.to_owned()));
                }
                Inner::S3(Arc::new(s3_store(config, name)?))
            }
        };
        Ok(Bucket {
            name: name.to_owned(),
            inner,
        })
    }

    /// Creates a folder bucket (an S3 bucket is created with the service's own tools).
    pub fn create_folder_bucket(&self, name: &str) -> Result<bool> {
        let Backend::Folder { root } = self else {
            return Err(BucketError::Remote(
                "buckets on an S3 service are created with that service's tools".into(),
            ));
        };
        if !valid_bucket_name(name) {
            return Err(BucketError::InvalidBucketName(name.to_owned()));
        }
        let dir = root.join(name);
        if dir.is_dir() {
            return Ok(false);
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(true)
    }

    /// The folder buckets that exist, sorted.
    pub fn folder_buckets(&self) -> Vec<String> {
        let Backend::Folder { root } = self else {
            return Vec::new();
        };
        let mut names: Vec<String> = fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_bucket_name(n))
            .collect();
        names.sort();
        names
    }

    /// Where the owner record of folder bucket `name` lives: `<root>/.meta/.owners/<name>`
    /// (no bucket can be called `.owners`, so it cannot collide with object metadata).
    fn owner_path(&self, name: &str) -> Result<PathBuf> {
        let Backend::Folder { root } = self else {
            return Err(BucketError::Remote(
                "buckets on an S3 service have no owner recorded by Cairn".into(),
            ));
        };
        if !valid_bucket_name(name) {
            return Err(BucketError::InvalidBucketName(name.to_owned()));
        }
        Ok(root.join(".meta").join(".owners").join(name))
    }

    /// The account that created folder bucket `name` through Cairn, if one is recorded.
    /// A bucket made by hand (a folder created outside Cairn) has none.
    pub fn folder_bucket_owner(&self, name: &str) -> Result<Option<String>> {
        let path = self.owner_path(name)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let record: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| BucketError::Io {
                path: path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?;
        Ok(record
            .get("account_id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned))
    }

    /// Records `account_id` as the owner of folder bucket `name` unless an owner is recorded
    /// already (the first record wins, also against a concurrent call). Returns the owner
    /// on record afterwards: `account_id` when this call recorded it or it was already the
    /// owner, another account otherwise.
    pub fn record_folder_bucket_owner(&self, name: &str, account_id: &str) -> Result<String> {
        let path = self.owner_path(name)?;
        let Backend::Folder { root } = self else {
            return Err(BucketError::Remote("not a folder backend".into()));
        };
        let record = serde_json::json!({
            "account_id": account_id,
            "created_ms": millis(std::time::SystemTime::now()),
        });
        let bytes = serde_json::to_vec(&record).map_err(|e| BucketError::Remote(e.to_string()))?;
        let tmp_dir = root.join(".tmp");
        fs::create_dir_all(&tmp_dir).map_err(io_err(&tmp_dir))?;
        let parent = root.join(".meta").join(".owners");
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let tmp = tmp_dir.join(format!(
            "owner-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .map_err(io_err(&tmp));
        // A hard link never replaces an existing file: whoever links first owns the bucket.
        let linked = written.and_then(|()| match fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        });
        let _ = fs::remove_file(&tmp);
        if linked? {
            sync_dir(&parent)?;
            return Ok(account_id.to_owned());
        }
        match self.folder_bucket_owner(name)? {
            Some(owner) => Ok(owner),
            None => Err(BucketError::Remote(format!(
                "the owner record {} is unreadable",
                path.display()
            ))),
        }
    }

    /// When folder bucket `name` was created, in ms since the epoch: the time of its owner
    /// record, else the folder's modification time. `None` when the folder does not exist.
    pub fn folder_bucket_created_ms(&self, name: &str) -> Option<i64> {
        let Backend::Folder { root } = self else {
            return None;
        };
        let dir = fs::metadata(root.join(name)).ok().filter(|m| m.is_dir())?;
        let recorded = self
            .owner_path(name)
            .ok()
            .and_then(|p| fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("created_ms").and_then(serde_json::Value::as_i64));
        recorded.or_else(|| dir.modified().ok().map(millis))
    }
}

fn s3_store(config: &S3Config, bucket: &str) -> Result<AmazonS3> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = config
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    if let Some(ep) = endpoint {
        b = b
            .with_allow_http(ep.starts_with("http://"))
            .with_endpoint(ep)
            .with_virtual_hosted_style_request(false);
    }
    let region = config
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into());
    b = b.with_region(region);
    if let Some(k) = &config.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = &config.secret_access_key {
        b = b.with_secret_access_key(s);
    }
    if let Some(t) = &config.session_token {
        b = b.with_token(t);
    }
    b.build().map_err(|e| BucketError::Remote(e.to_string()))
}

fn remote(bucket: &str, key: &str, e: object_store::Error) -> BucketError {
    match e {
        object_store::Error::NotFound { .. } => {
            let text = e.to_string();
            if text.contains("NoSuchBucket") {
                BucketError::NoSuchBucket(bucket.to_owned())
            } else {
                BucketError::NoSuchKey(key.to_owned())
            }
        }
        other => {
            let text = other.to_string();
            if text.contains("NoSuchBucket") {
                BucketError::NoSuchBucket(bucket.to_owned())
            } else {
                BucketError::Remote(text)
            }
        }
    }
}

fn millis(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Bucket {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder that holds the bucket's objects, for a folder bucket.
    pub fn folder(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Folder { root } => Some(root.join(&self.name)),
            Inner::S3(_) => None,
        }
    }

    /// Whether the bucket exists.
    pub async fn exists(&self) -> Result<bool> {
        match &self.inner {
            Inner::Folder { root } => Ok(root.join(&self.name).is_dir()),
            Inner::S3(store) => match store.list_with_delimiter(None).await {
                Ok(_) => Ok(true),
                Err(e) => match remote(&self.name, "", e) {
                    BucketError::NoSuchBucket(_) | BucketError::NoSuchKey(_) => Ok(false),
                    other => Err(other),
                },
            },
        }
    }

    /// Writes an object whole (replacing any object of that key) with user metadata. A folder
    /// bucket writes a temporary file, syncs it and renames it into place.
    pub async fn put(&self, key: &str, bytes: Bytes, metadata: &[(&str, &str)]) -> Result<()> {
        check_key(key)?;
        match &self.inner {
            Inner::Folder { root } => {
                let root = root.clone();
                let name = self.name.clone();
                let key = key.to_owned();
                let meta: BTreeMap<String, String> = metadata
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                tokio::task::spawn_blocking(move || folder_put(&root, &name, &key, &bytes, &meta))
                    .await
                    .map_err(|e| BucketError::Remote(format!("write task failed: {e}")))?
            }
            Inner::S3(store) => {
                let mut attributes = Attributes::new();
                for (k, v) in metadata {
                    attributes.insert(
                        Attribute::Metadata((*k).to_owned().into()),
                        (*v).to_owned().into(),
                    );
                }
                let opts = PutOptions {
                    attributes,
                    ..Default::default()
                };
                store
                    .put_opts(&StorePath::from(key), PutPayload::from(bytes), opts)
                    .await
                    .map_err(|e| remote(&self.name, key, e))?;
                Ok(())
            }
        }
    }

    /// Reads an object and its user metadata.
    pub async fn get(&self, key: &str) -> Result<Object> {
        check_key(key)?;
        match &self.inner {
            Inner::Folder { root } => {
                let dir = root.join(&self.name);
                if !dir.is_dir() {
                    return Err(BucketError::NoSuchBucket(self.name.clone()));
                }
                let path = dir.join(key);
                let bytes = match fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(BucketError::NoSuchKey(key.to_owned()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
                        return Err(BucketError::NoSuchKey(key.to_owned()));
                    }
                    Err(e) => return Err(io_err(&path)(e)),
                };
                let last_modified_ms = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map(millis)
                    .unwrap_or(0);
                let meta_path = root.join(".meta").join(&self.name).join(key);
                let metadata = match fs::read(&meta_path) {
                    Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
                    Err(_) => BTreeMap::new(),
                };
                Ok(Object {
                    bytes: Bytes::from(bytes),
                    metadata,
                    last_modified_ms,
                })
            }
            Inner::S3(store) => {
                let got = store
                    .get(&StorePath::from(key))
                    .await
                    .map_err(|e| remote(&self.name, key, e))?;
                let mut metadata = BTreeMap::new();
                for (k, v) in got.attributes.iter() {
                    if let Attribute::Metadata(name) = k {
                        metadata.insert(name.to_string(), v.to_string());
                    }
                }
                let last_modified_ms = got.meta.last_modified.timestamp_millis();
                let bytes = got.bytes().await.map_err(|e| remote(&self.name, key, e))?;
                Ok(Object {
                    bytes,
                    metadata,
                    last_modified_ms,
                })
            }
        }
    }

    /// Removes an object (missing objects are not an error).
    pub async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        match &self.inner {
            Inner::Folder { root } => {
                for path in [
                    root.join(&self.name).join(key),
                    root.join(".meta").join(&self.name).join(key),
                ] {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(&path)(e)),
                    }
                }
                Ok(())
            }
            Inner::S3(store) => match store.delete(&StorePath::from(key)).await {
                Ok(()) => Ok(()),
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(remote(&self.name, key, e)),
            },
        }
    }

    /// Every object whose key starts with `prefix` and sorts after `after`, in key order.
    pub async fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<Listed>> {
        let mut out = match &self.inner {
            Inner::Folder { root } => {
                let dir = root.join(&self.name);
                if !dir.is_dir() {
                    return Err(BucketError::NoSuchBucket(self.name.clone()));
                }
                let prefix = prefix.to_owned();
                tokio::task::spawn_blocking(move || folder_list(&dir, &prefix))
                    .await
                    .map_err(|e| BucketError::Remote(format!("listing task failed: {e}")))??
            }
            Inner::S3(store) => {
                // object_store lists by directory: list the prefix's folder, filter by text.
                let dir = match prefix.rfind('/') {
                    Some(i) => &prefix[..i],
                    None => "",
                };
                let dir_path = (!dir.is_empty()).then(|| StorePath::from(dir));
                let stream = match after {
                    Some(a) if a >= prefix => {
                        store.list_with_offset(dir_path.as_ref(), &StorePath::from(a))
                    }
                    _ => store.list(dir_path.as_ref()),
                };
                let metas: Vec<object_store::ObjectMeta> = stream
                    .try_collect()
                    .await
                    .map_err(|e| remote(&self.name, prefix, e))?;
                metas
                    .into_iter()
                    .map(|m| Listed {
                        key: m.location.to_string(),
                        size: m.size,
                        last_modified_ms: m.last_modified.timestamp_millis(),
                    })
                    .filter(|l| l.key.starts_with(prefix))
                    .collect()
            }
        };
        if let Some(a) = after {
            out.retain(|l| l.key.as_str() > a);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn write_synced(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(tmp_dir).map_err(io_err(tmp_dir))?;
    let parent = dest
        .parent()
        .ok_or_else(|| BucketError::InvalidKey(dest.display().to_string()))?;
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = tmp_dir.join(format!(
        "{}-{}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, dest).map_err(io_err(dest))?;
    sync_dir(parent)
}

fn folder_put(
    root: &Path,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let dir = root.join(bucket);
    if !dir.is_dir() {
        return Err(BucketError::NoSuchBucket(bucket.to_owned()));
    }
    let tmp_dir = root.join(".tmp");
    let meta_path = root.join(".meta").join(bucket).join(key);
    if meta.is_empty() {
        match fs::remove_file(&meta_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&meta_path)(e)),
        }
    } else {
        let json = serde_json::to_vec(meta).map_err(|e| BucketError::Remote(e.to_string()))?;
        write_synced(&tmp_dir, &meta_path, &json)?;
    }
    write_synced(&tmp_dir, &dir.join(key), bytes)
}

fn folder_list(dir: &Path, prefix: &str) -> Result<Vec<Listed>> {
    // Start from the deepest folder the prefix names.
    let start_rel = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let start = if start_rel.is_empty() {
        dir.to_owned()
    } else {
        dir.join(start_rel)
    };
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&d)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&d))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(io_err(&path))?;
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(dir) else {
                continue;
            };
            let Some(key) = rel.to_str() else { continue };
            if !key.starts_with(prefix) {
                continue;
            }
            let meta = entry.metadata().map_err(io_err(&path))?;
            out.push(Listed {
                key: key.to_owned(),
                size: meta.len(),
                last_modified_ms: meta.modified().map(millis).unwrap_or(0),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn folder_round_trip_with_metadata_and_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Backend::folder(dir.path());
        assert!(backend.create_folder_bucket("logs").expect("create"));
        let b = backend.bucket("logs").expect("bucket");
        assert!(b.exists().await.expect("exists"));
        b.put(
            "a/b/one.json.gz",
            Bytes::from_static(b"1"),
            &[("signature", "ab")],
        )
        .await
        .expect("put");
        b.put("a/b/two.json.gz", Bytes::from_static(b"22"), &[])
            .await
            .expect("put");
        b.put("a/c/three", Bytes::from_static(b"333"), &[])
            .await
            .expect("put");
        let got = b.get("a/b/one.json.gz").await.expect("get");
        assert_eq!(&got.bytes[..], b"1");
        assert_eq!(
            got.metadata.get("signature").map(String::as_str),
            Some("ab")
        );
        let keys: Vec<String> = b
            .list("a/b", None)
            .await
            .expect("list")
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(keys, ["a/b/one.json.gz", "a/b/two.json.gz"]);
        let after: Vec<String> = b
            .list("a/", Some("a/b/one.json.gz"))
            .await
            .expect("list")
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(after, ["a/b/two.json.gz", "a/c/three"]);
        assert!(matches!(
            b.get("a/b/none").await,
            Err(BucketError::NoSuchKey(_))
        ));
        assert!(matches!(
            b.put("../x", Bytes::new(), &[]).await,
            Err(BucketError::InvalidKey(_))
        ));
        let missing = backend.bucket("nope").expect("bucket");
        assert!(!missing.exists().await.expect("exists"));
        assert!(matches!(
            missing.put("k", Bytes::new(), &[]).await,
            Err(BucketError::NoSuchBucket(_))
        ));
    }

    #[test]
    fn names_and_urls() {
        assert!(valid_bucket_name("my-trail.logs"));
        assert!(!valid_bucket_name("My"));
        assert!(!valid_bucket_name("-ab"));
        assert!(!valid_bucket_name(".meta"));
        assert_eq!(
            parse_s3_url("s3://b/AWSLogs/1/"),
            Some(("b".into(), "AWSLogs/1".into()))
        );
        assert_eq!(parse_s3_url("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(parse_s3_url("/tmp"), None);
    }

    #[test]
    fn folder_bucket_owners() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Backend::folder(dir.path());
        assert!(backend.create_folder_bucket("owned").expect("create"));
        assert_eq!(backend.folder_bucket_owner("owned").expect("owner"), None);
        let first = backend
            .record_folder_bucket_owner("owned", "111122223333")
            .expect("record");
        assert_eq!(first, "111122223333");
        let second = backend
            .record_folder_bucket_owner("owned", "444455556666")
            .expect("record");
        assert_eq!(second, "111122223333", "the first record wins");
        assert_eq!(
            backend
                .folder_bucket_owner("owned")
                .expect("owner")
                .as_deref(),
            Some("111122223333")
        );
        assert!(
            backend
                .folder_bucket_created_ms("owned")
                .is_some_and(|t| t > 0)
        );
        assert_eq!(backend.folder_bucket_created_ms("missing"), None);
        // The owner records stay out of bucket listings and object metadata.
        assert_eq!(backend.folder_buckets(), ["owned"]);
        assert!(backend.folder_bucket_owner("Bad_Name").is_err());
        let s3 = Backend::S3(S3Config::default());
        assert!(s3.folder_bucket_owner("owned").is_err());
    }
}
