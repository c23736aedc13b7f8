//! Event time parsing and formatting. CloudTrail writes `YYYY-MM-DDTHH:MM:SSZ`; real exports
//! also carry fractional seconds or offsets, which are accepted.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Parses an event time into milliseconds since the Unix epoch. Besides RFC 3339, accepts the
/// forms exports and query engines write: a space instead of `T`, no zone (UTC), and
/// fractional seconds of any precision (`2022-11-21 18:06:52`, `2025-01-21 17:49:47.000000000`).
pub fn parse_event_time(s: &str) -> Option<i64> {
    let t = match OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let b = s.as_bytes();
            // (The date and time are ASCII; anything else there is not a time, and slicing
            // inside a multi-byte character would panic.)
            if b.len() < 19 || !b[..19].is_ascii() || !(b[10] == b' ' || b[10] == b'T') {
                return None;
            }
            let mut fixed = String::with_capacity(s.len() + 1);
            fixed.push_str(&s[..10]);
            fixed.push('T');
            fixed.push_str(&s[11..]);
            let tail = &s[19..];
            let has_zone = tail.ends_with('Z') || tail.contains(['+', '-']);
            if !has_zone {
                fixed.push('Z');
            }
            OffsetDateTime::parse(&fixed, &Rfc3339).ok()?
        }
    };
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).ok()
}

/// Formats milliseconds since the epoch the way CloudTrail writes `eventTime`.
pub fn format_event_time(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The current time in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_is_not_a_time() {
        assert_eq!(parse_event_time("1%1<1%11%1      &\u{e666}    %"), None);
        assert_eq!(parse_event_time("2024-01-01 00:00:0\u{e9}Z"), None);
        assert_eq!(parse_event_time("2024-01-01T00:00:00\u{e9}"), None);
    }

    #[test]
    fn round_trip() {
        let ms = parse_event_time("2020-06-09T13:37:34Z").unwrap();
        assert_eq!(ms, 1_591_709_854_000);
        assert_eq!(format_event_time(ms), "2020-06-09T13:37:34Z");
        assert_eq!(
            parse_event_time("2020-06-09T13:37:34.250Z"),
            Some(1_591_709_854_250)
        );
        assert_eq!(
            parse_event_time("2020-06-09T15:37:34+02:00"),
            Some(1_591_709_854_000)
        );
        assert_eq!(
            parse_event_time("2020-06-09 13:37:34"),
            Some(1_591_709_854_000)
        );
        assert_eq!(
            parse_event_time("2020-06-09T13:37:34"),
            Some(1_591_709_854_000)
        );
        assert_eq!(
            parse_event_time("2020-06-09 13:37:34.250000000"),
            Some(1_591_709_854_250)
        );
        assert_eq!(
            parse_event_time("2020-06-09 13:37:34+02:00"),
            Some(1_591_702_654_000)
        );
        assert_eq!(parse_event_time("2020-06-09"), None);
        assert_eq!(parse_event_time("2020-06-09 25:37:34"), None);
        assert_eq!(parse_event_time("redacted"), None);
        assert_eq!(parse_event_time("yesterday"), None);
    }
}
