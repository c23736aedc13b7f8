//! Object keys of trail files, exactly as CloudTrail lays them out, and the time formats
//! they use. All times are UTC; dates in paths and names are delivery times.

use time::OffsetDateTime;

fn utc(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2015-08-17T14:01:31Z`: the digest and event time format.
pub fn iso_second(ms: i64) -> String {
    let t = utc(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `20150801T0210Z`: the log file name stamp.
pub fn compact_minute(ms: i64) -> String {
    let t = utc(ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `20150817T150131Z`: the digest file name stamp.
pub fn compact_second(ms: i64) -> String {
    let t = utc(ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2015/08/17`: the date folders.
pub fn date_path(ms: i64) -> String {
    let t = utc(ms);
    format!("{:04}/{:02}/{:02}", t.year(), t.month() as u8, t.day())
}

/// `[prefix/]AWSLogs/[org/]<account>/`
pub fn account_root(prefix: Option<&str>, org: Option<&str>, account: &str) -> String {
    let mut s = String::new();
    if let Some(p) = prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        s.push_str(p);
        s.push('/');
    }
    s.push_str("AWSLogs/");
    if let Some(o) = org {
        s.push_str(o);
        s.push('/');
    }
    s.push_str(account);
    s.push('/');
    s
}

/// The kind of file under an account's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Log,
    Insight,
    Digest,
}

impl Kind {
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Log => "CloudTrail",
            Kind::Insight => "CloudTrail-Insight",
            Kind::Digest => "CloudTrail-Digest",
        }
    }
}

/// `[prefix/]AWSLogs/<account>/<kind>/<region>/`
pub fn region_prefix(prefix: Option<&str>, account: &str, kind: Kind, region: &str) -> String {
    format!(
        "{}{}/{}/",
        account_root(prefix, None, account),
        kind.folder(),
        region
    )
}

/// A log (or Insights) file's key.
pub fn log_key(
    prefix: Option<&str>,
    account: &str,
    kind: Kind,
    region: &str,
    delivered_ms: i64,
    unique: &str,
) -> String {
    format!(
        "{}{}/{}_{}_{}_{}_{}.json.gz",
        region_prefix(prefix, account, kind, region),
        date_path(delivered_ms),
        account,
        kind.folder(),
        region,
        compact_minute(delivered_ms),
        unique
    )
}

/// A digest file's key; its stamp is the digest's end time.
pub fn digest_key(
    prefix: Option<&str>,
    account: &str,
    source_region: &str,
    trail_name: &str,
    home_region: &str,
    end_ms: i64,
) -> String {
    format!(
        "{}{}/{}_CloudTrail-Digest_{}_{}_{}_{}.json.gz",
        region_prefix(prefix, account, Kind::Digest, source_region),
        date_path(end_ms),
        account,
        source_region,
        trail_name,
        home_region,
        compact_second(end_ms)
    )
}

/// 16 letters and digits derived from `seed`: unique per seed, the same on every retry.
pub fn unique_string(seed: &[u8]) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut h = xxhash_rust::xxh3::xxh3_128(seed);
    (0..16)
        .map(|_| {
            let c = ALPHABET[(h % 62) as usize] as char;
            h /= 62;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_documented_layout() {
        // 2015-08-17T15:01:31Z
        let ms = 1_439_823_691_000;
        assert_eq!(iso_second(ms), "2015-08-17T15:01:31Z");
        assert_eq!(
            digest_key(
                None,
                "111122223333",
                "us-east-2",
                "your-trail-name",
                "us-east-2",
                ms
            ),
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz"
        );
        let key = log_key(
            Some("/pre/"),
            "111122223333",
            Kind::Log,
            "us-east-2",
            ms,
            "9nYN7gp2eWAJHIfT",
        );
        assert_eq!(
            key,
            "pre/AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1501Z_9nYN7gp2eWAJHIfT.json.gz"
        );
        let u = unique_string(b"seed");
        assert_eq!(u.len(), 16);
        assert!(u.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(u, unique_string(b"seed"));
        assert_ne!(u, unique_string(b"seed2"));
    }
}
