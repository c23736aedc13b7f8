//! Reading object keys back: which digest and log file keys belong to the trail being
//! validated, their time stamps, and whether their date folders agree with them.

use crate::layout::{self, Kind};

const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn utc_ms(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(s).ok()?,
    )
    .ok()?;
    let dt = time::PrimitiveDateTime::new(date, t).assume_utc();
    i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok()
}

/// `20150817T150131Z` (digest names) or `20150801T0210Z` (log file names).
pub fn parse_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let with_seconds = match b.len() {
        16 => true,
        14 => false,
        _ => return None,
    };
    if b[8] != b'T' || b[b.len() - 1] != b'Z' {
        return None;
    }
    let y = digits(&s[0..4])?;
    let mo = digits(&s[4..6])?;
    let d = digits(&s[6..8])?;
    let h = digits(&s[9..11])?;
    let mi = digits(&s[11..13])?;
    let sec = if with_seconds { digits(&s[13..15])? } else { 0 };
    utc_ms(y, mo, d, h, mi, sec)
}

/// Whether `YYYY/MM/DD` folders name the UTC day of `ms`.
fn folders_match(y: &str, m: &str, d: &str, ms: i64) -> bool {
    format!("{y}/{m}/{d}") == layout::date_path(ms)
}

/// Where a trail's files live and how its names are spelled.
#[derive(Debug, Clone)]
pub struct Names {
    /// `[prefix/]AWSLogs/[org/]<account>/`
    pub root: String,
    pub account: String,
    pub trail_name: String,
    pub home_region: String,
}

/// A key found under a region's digest folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestName {
    /// A digest of the trail being validated.
    Ours {
        stamp_ms: i64,
        backfill: bool,
        /// The date folders agree with the stamp.
        folders_ok: bool,
    },
    /// A digest of another trail delivering to the same folders (`<name>_<home region>`).
    OtherTrail { label: String, stamp_ms: i64 },
    /// Anything else.
    Foreign,
}

/// A key found under a region's log folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogName {
    Log {
        stamp_ms: i64,
        /// Why the key is not where CloudTrail would have put it, if it is not.
        misplaced: Option<String>,
    },
    /// Not a CloudTrail log file name.
    Foreign,
}

impl Names {
    pub fn new(
        prefix: Option<&str>,
        org: Option<&str>,
        account: &str,
        trail: &str,
        home: &str,
    ) -> Names {
        Names {
            root: layout::account_root(prefix, org, account),
            account: account.to_owned(),
            trail_name: trail.to_owned(),
            home_region: home.to_owned(),
        }
    }

    pub fn kind_root(&self, kind: Kind) -> String {
        format!("{}{}/", self.root, kind.folder())
    }

    pub fn region_dir(&self, kind: Kind, region: &str) -> String {
        format!("{}{}/{}/", self.root, kind.folder(), region)
    }

    /// The digest key of this trail in `region` ending at `end_ms`.
    pub fn digest_key(&self, region: &str, end_ms: i64) -> String {
        format!(
            "{}{}/{}_CloudTrail-Digest_{}_{}_{}_{}.json.gz",
            self.region_dir(Kind::Digest, region),
            layout::date_path(end_ms),
            self.account,
            region,
            self.trail_name,
            self.home_region,
            layout::compact_second(end_ms)
        )
    }

    /// Splits `<dir>YYYY/MM/DD/<file>`.
    fn split<'a>(&self, dir: &str, key: &'a str) -> Option<(&'a str, &'a str, &'a str, &'a str)> {
        let rest = key.strip_prefix(dir)?;
        let mut parts = rest.split('/');
        let (y, m, d, file) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || digits(y).is_none()
            || digits(m).is_none()
            || digits(d).is_none()
        {
            return None;
        }
        Some((y, m, d, file))
    }

    pub fn classify_digest(&self, region: &str, key: &str) -> DigestName {
        let Some((y, m, d, file)) = self.split(&self.region_dir(Kind::Digest, region), key) else {
            return DigestName::Foreign;
        };
        let head = format!("{}_CloudTrail-Digest_{}_", self.account, region);
        let Some(rest) = file.strip_prefix(&head) else {
            return DigestName::Foreign;
        };
        let (body, backfill) = if let Some(b) = rest.strip_suffix("_backfill.json.gz") {
            (b, true)
        } else if let Some(b) = rest.strip_suffix(".json.gz") {
            (b, false)
        } else {
            return DigestName::Foreign;
        };
        // `<name>_<home>_<stamp>`: the stamp is the last 16 characters.
        if body.len() < 18 || !body.is_char_boundary(body.len() - 16) {
            return DigestName::Foreign;
        }
        let (label, stamp) = body.split_at(body.len() - 16);
        let Some(stamp_ms) = parse_stamp(stamp) else {
            return DigestName::Foreign;
        };
        let Some(label) = label.strip_suffix('_') else {
            return DigestName::Foreign;
        };
        if label == format!("{}_{}", self.trail_name, self.home_region) {
            DigestName::Ours {
                stamp_ms,
                backfill,
                folders_ok: folders_match(y, m, d, stamp_ms),
            }
        } else {
            DigestName::OtherTrail {
                label: label.to_owned(),
                stamp_ms,
            }
        }
    }

    pub fn classify_log(&self, region: &str, key: &str) -> LogName {
        let Some((y, m, d, file)) = self.split(&self.region_dir(Kind::Log, region), key) else {
            return LogName::Foreign;
        };
        // `<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz`
        let Some(body) = file.strip_suffix(".json.gz") else {
            return LogName::Foreign;
        };
        let mut parts = body.splitn(4, '_');
        let (Some(account), Some(kind), Some(name_region), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return LogName::Foreign;
        };
        if kind != "CloudTrail" || rest.len() < 14 || !rest.is_char_boundary(14) {
            return LogName::Foreign;
        }
        let Some(stamp_ms) = parse_stamp(&rest[..14]) else {
            return LogName::Foreign;
        };
        let misplaced = if account != self.account {
            Some(format!(
                "its name is for account {account}, but it is in account {}'s folder",
                self.account
            ))
        } else if name_region != region {
            Some(format!(
                "its name is for region {name_region}, but it is in the {region} folder"
            ))
        } else if !folders_match(y, m, d, stamp_ms) {
            Some(format!(
                "its date folders {y}/{m}/{d} disagree with its name's stamp {}",
                &rest[..14]
            ))
        } else {
            None
        };
        LogName::Log {
            stamp_ms,
            misplaced,
        }
    }

    /// The region named right after `<kind root>` in `key`.
    pub fn region_of(&self, kind: Kind, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.kind_root(kind))?;
        let (region, _) = rest.split_once('/')?;
        (!region.is_empty()).then(|| region.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_digest_and_log_names() {
        let n = Names::new(Some("pre"), None, "111122223333", "my_trail", "us-east-2");
        let end = 1_439_823_691_000; // 2015-08-17T15:01:31Z
        let key = n.digest_key("eu-west-1", end);
        assert_eq!(
            key,
            "pre/AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2015/08/17/111122223333_CloudTrail-Digest_eu-west-1_my_trail_us-east-2_20150817T150131Z.json.gz"
        );
        assert_eq!(
            n.classify_digest("eu-west-1", &key),
            DigestName::Ours {
                stamp_ms: end,
                backfill: false,
                folders_ok: true
            }
        );
        let bf = key.replace(".json.gz", "_backfill.json.gz");
        assert!(matches!(
            n.classify_digest("eu-west-1", &bf),
            DigestName::Ours { backfill: true, .. }
        ));
        let moved = key.replace("/17/", "/18/");
        assert!(matches!(
            n.classify_digest("eu-west-1", &moved),
            DigestName::Ours {
                folders_ok: false,
                ..
            }
        ));
        let other = key.replace("my_trail", "other");
        assert_eq!(
            n.classify_digest("eu-west-1", &other),
            DigestName::OtherTrail {
                label: "other_us-east-2".into(),
                stamp_ms: end
            }
        );
        assert_eq!(
            n.classify_digest("eu-west-1", "pre/AWSLogs/x"),
            DigestName::Foreign
        );
        assert_eq!(
            n.region_of(Kind::Digest, &key).as_deref(),
            Some("eu-west-1")
        );

        let log = layout::log_key(
            Some("pre"),
            "111122223333",
            Kind::Log,
            "eu-west-1",
            end,
            "9nYN7gp2eWAJHIfT",
        );
        assert_eq!(
            n.classify_log("eu-west-1", &log),
            LogName::Log {
                stamp_ms: end - 31_000,
                misplaced: None
            }
        );
        assert!(matches!(
            n.classify_log("eu-west-1", &log.replace("/2015/08/17/", "/2015/08/16/")),
            LogName::Log {
                misplaced: Some(_),
                ..
            }
        ));
        assert_eq!(
            n.classify_log("eu-west-1", &log.replace(".json.gz", ".txt")),
            LogName::Foreign
        );
        assert_eq!(parse_stamp("20151317T150131Z"), None);
        assert_eq!(parse_stamp("2015081715013Z"), None);
        assert_eq!(parse_stamp("20150817T1501Z"), Some(end - 31_000));
    }
}
