//! Identifiers and secrets in AWS's formats, and the rules for names.

use rand::Rng;

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A long-term access key id: `AKIA` and 16 characters.
pub fn new_access_key_id() -> String {
    format!("AKIA{}", random_string(16, BASE32))
}

/// The key id a console session's calls are recorded under (`ASIA`, as temporary
/// credentials are); it cannot sign requests.
pub fn new_session_key_id() -> String {
    format!("ASIA{}", random_string(16, BASE32))
}

/// A user's unique id: `AIDA` and 17 characters.
pub fn new_user_id() -> String {
    format!("AIDA{}", random_string(17, BASE32))
}

/// A secret access key: 40 characters.
pub fn new_secret() -> String {
    random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    )
}

/// A generated console password: 20 characters without look-alikes.
pub fn new_password() -> String {
    random_string(
        20,
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
    )
}

pub fn new_account_id() -> String {
    let mut rng = rand::rng();
    format!(
        "{}",
        rng.random_range(100_000_000_000u64..1_000_000_000_000u64)
    )
}

pub fn valid_account_id(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

/// IAM's rule for user (and policy) names: 1 to 64 of letters, digits and `+=,.@_-`.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}
