//! Streaming gunzip + SHA-256 of one object, the hot loop of validation.
//!
//! A log file must be exactly one gzip member; its hash is over the decompressed bytes. The
//! decoder reads the compressed bytes in place and hashes each 256 KiB of output as it comes,
//! so nothing the size of the decompressed file is ever held.
//!
//! SHA-256: `sha2` picks the CPU's SHA extensions at run time (cpufeatures; measured 1.4 GB/s
//! here), but its portable fallback is slow (0.22 GB/s, which would hold gunzip + hash below
//! 200 MB/s). On a CPU without the extensions aws-lc-rs's assembly is used instead (0.31 GB/s
//! with AVX2).

use std::io::Read;

use sha2::Digest as _;

/// Why a gzip object could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GzError {
    /// Not a gzip stream, or a damaged or truncated one.
    Format(String),
    /// Bytes follow the first gzip member.
    TrailingData,
}

/// The result of hashing a gzip object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzHash {
    /// Lower-case hex SHA-256 of the decompressed bytes.
    pub sha256: String,
    /// Decompressed length.
    pub len: u64,
}

/// An incremental SHA-256 that uses whichever implementation is fastest on this CPU.
pub enum Sha256Stream {
    Sha2(sha2::Sha256),
    AwsLc(aws_lc_rs::digest::Context),
}

fn cpu_has_sha_extensions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256Stream {
    pub fn new() -> Sha256Stream {
        static SHA_EXT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *SHA_EXT.get_or_init(cpu_has_sha_extensions) {
            Sha256Stream::Sha2(sha2::Sha256::new())
        } else {
            Sha256Stream::AwsLc(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Sha256Stream::Sha2(h) => h.update(data),
            Sha256Stream::AwsLc(c) => c.update(data),
        }
    }

    /// Lower-case hex of the digest.
    pub fn finish_hex(self) -> String {
        match self {
            Sha256Stream::Sha2(h) => hex::encode(h.finalize()),
            Sha256Stream::AwsLc(c) => hex::encode(c.finish().as_ref()),
        }
    }
}

const CHUNK: usize = 256 * 1024;

/// Decompresses the single gzip member in `compressed`, hashing the output as it streams.
pub fn hash_gzip(compressed: &[u8]) -> Result<GzHash, GzError> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Sha256Stream::new();
    let mut len = 0u64;
    let mut decoder = flate2::bufread::GzDecoder::new(compressed);
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(GzError::Format(e.to_string())),
        }
    }
    // An empty input decodes to nothing without error: it is not a gzip stream.
    if compressed.is_empty() {
        return Err(GzError::Format("empty object".into()));
    }
    if !decoder.into_inner().is_empty() {
        return Err(GzError::TrailingData);
    }
    Ok(GzHash {
        sha256: hasher.finish_hex(),
        len,
    })
}

/// Decompresses the single gzip member in `compressed` whole (for digests, which are small
/// and whose exact bytes are hashed and parsed).
pub fn gunzip(compressed: &[u8], limit: u64) -> Result<Vec<u8>, GzError> {
    if compressed.is_empty() {
        return Err(GzError::Format("empty object".into()));
    }
    let mut out = Vec::new();
    let mut decoder = flate2::bufread::GzDecoder::new(compressed);
    (&mut decoder)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| GzError::Format(e.to_string()))?;
    if out.len() as u64 >= limit {
        return Err(GzError::Format(format!(
            "decompresses to more than {limit} bytes"
        )));
    }
    if !decoder.into_inner().is_empty() {
        return Err(GzError::TrailingData);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn hashes_one_member_and_rejects_the_rest() {
        let h = hash_gzip(&gz(b"abc")).expect("hash");
        assert_eq!(
            h.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.len, 3);
        let mut two = gz(b"abc");
        two.extend(gz(b"def"));
        assert_eq!(hash_gzip(&two), Err(GzError::TrailingData));
        assert_eq!(gunzip(&two, 1 << 20), Err(GzError::TrailingData));
        let mut cut = gz(b"abcdef");
        cut.truncate(cut.len() - 4);
        assert!(matches!(hash_gzip(&cut), Err(GzError::Format(_))));
        assert!(matches!(hash_gzip(b"not gzip"), Err(GzError::Format(_))));
        assert!(matches!(hash_gzip(b""), Err(GzError::Format(_))));
        assert_eq!(gunzip(&gz(b"abc"), 1 << 20).expect("gunzip"), b"abc");
        assert!(matches!(
            gunzip(&gz(&[0u8; 100]), 10),
            Err(GzError::Format(_))
        ));
    }

    #[test]
    fn both_sha256_implementations_agree() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut a = Sha256Stream::Sha2(sha2::Sha256::new());
        let mut b =
            Sha256Stream::AwsLc(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256));
        for chunk in data.chunks(4097) {
            a.update(chunk);
            b.update(chunk);
        }
        assert_eq!(a.finish_hex(), b.finish_hex());
    }
}
