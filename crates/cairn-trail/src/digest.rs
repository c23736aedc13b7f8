//! Digest files: the JSON CloudTrail writes every hour for each trail and region, the exact
//! string that is signed, and RSA-SHA256 (PKCS #1 v1.5) signing and verification.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";
pub const HASH_ALGORITHM: &str = "SHA-256";

/// One log file a digest covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileEntry {
    pub s3_bucket: String,
    pub s3_object: String,
    pub hash_value: String,
    pub hash_algorithm: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
}

/// A digest file's content, members in the order CloudTrail writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestFile {
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    #[serde(rename = "digestS3Bucket")]
    pub digest_s3_bucket: String,
    #[serde(rename = "digestS3Object")]
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
    #[serde(rename = "previousDigestS3Bucket")]
    pub previous_digest_s3_bucket: Option<String>,
    #[serde(rename = "previousDigestS3Object")]
    pub previous_digest_s3_object: Option<String>,
    pub previous_digest_hash_value: Option<String>,
    pub previous_digest_hash_algorithm: Option<String>,
    pub previous_digest_signature: Option<String>,
    pub log_files: Vec<LogFileEntry>,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The string a digest's signature covers (spec §4.3):
/// `endTime \n bucket/key \n hex(sha256(digest bytes)) \n previousSignature|null`.
pub fn string_to_sign(
    digest_end_time: &str,
    bucket: &str,
    key: &str,
    digest_bytes: &[u8],
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{digest_end_time}\n{bucket}/{key}\n{}\n{}",
        sha256_hex(digest_bytes),
        previous_signature.unwrap_or("null")
    )
}

/// Verifies a hex RSA-SHA256 PKCS #1 v1.5 signature with a DER public key (PKCS #1
/// `RSAPublicKey`, or X.509 SubjectPublicKeyInfo).
pub fn verify(public_key_der: &[u8], message: &[u8], signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der,
    )
    .verify(message, &sig)
    .is_ok()
}

/// The fingerprint CloudTrail publishes for a key: lower-case hex MD5 of its DER bytes.
pub fn fingerprint(public_key_der: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(public_key_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_matches_the_aws_cli_vector() {
        assert_eq!(
            string_to_sign("a", "b", "c", b"abc", None),
            "a\nb/c\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull"
        );
    }

    #[test]
    fn members_keep_cloudtrails_names_and_order() {
        let d = DigestFile {
            aws_account_id: "1".into(),
            digest_start_time: "s".into(),
            digest_end_time: "e".into(),
            digest_s3_bucket: "b".into(),
            digest_s3_object: "o".into(),
            digest_public_key_fingerprint: "f".into(),
            digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
            newest_event_time: None,
            oldest_event_time: None,
            previous_digest_s3_bucket: None,
            previous_digest_s3_object: None,
            previous_digest_hash_value: None,
            previous_digest_hash_algorithm: None,
            previous_digest_signature: None,
            log_files: vec![],
        };
        let s = serde_json::to_string(&d).expect("json");
        assert_eq!(
            s,
            r#"{"awsAccountId":"1","digestStartTime":"s","digestEndTime":"e","digestS3Bucket":"b","digestS3Object":"o","digestPublicKeyFingerprint":"f","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[]}"#
        );
    }
}
