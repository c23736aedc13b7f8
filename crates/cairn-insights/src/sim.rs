//! Synthetic workloads in accelerated time, for the tests and `cairn bench --insights`: API
//! calls drawn minute by minute from Poisson rates that follow a daily (and weekly) shape,
//! plus bursts, rendered as CloudTrail records.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::engine::MINUTE_MS;

/// One stream of calls of one API by one caller.
#[derive(Debug, Clone)]
pub struct Stream {
    pub source: String,
    pub name: String,
    pub region: String,
    pub user_arn: String,
    pub agent: String,
    pub read_only: bool,
    pub error: Option<String>,
    /// Mean calls per minute outside the daily peak.
    pub rate: f64,
    /// The rate is multiplied by this in the peak hours (1.0: no peak).
    pub peak: f64,
    /// Peak hours of the day (UTC): `[from, to)`.
    pub peak_hours: (u32, u32),
    /// The rate is multiplied by this on Saturdays and Sundays.
    pub weekend: f64,
}

impl Stream {
    pub fn new(source: &str, name: &str, rate: f64) -> Stream {
        Stream {
            source: source.into(),
            name: name.into(),
            region: "us-east-1".into(),
            user_arn: "arn:aws:iam::111122223333:user/ops".into(),
            agent: "aws-cli/2.15.0".into(),
            read_only: false,
            error: None,
            rate,
            peak: 1.0,
            peak_hours: (9, 11),
            weekend: 1.0,
        }
    }

    /// The mean calls in the minute starting at `t` (ms).
    pub fn rate_at(&self, t: i64) -> f64 {
        let minute_of_day = t.div_euclid(MINUTE_MS).rem_euclid(1440);
        let hour = (minute_of_day / 60) as u32;
        // 1970-01-01 was a Thursday: day 0 is Thursday, so days 2 and 3 of each week are
        // Saturday and Sunday.
        let weekday = t.div_euclid(86_400_000).rem_euclid(7);
        let mut r = self.rate;
        if hour >= self.peak_hours.0 && hour < self.peak_hours.1 {
            r *= self.peak;
        }
        if weekday == 2 || weekday == 3 {
            r *= self.weekend;
        }
        r
    }
}

/// A Poisson draw (Knuth's method for small means, a normal approximation for large ones).
pub fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 50.0 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        return (mean + z * mean.sqrt()).round().max(0.0) as u64;
    }
    let l = (-mean).exp();
    let (mut k, mut p) = (0u64, 1.0f64);
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// A CloudTrail record of one call.
pub fn record(s: &Stream, account: &str, time_ms: i64, id: u64) -> Vec<u8> {
    let mut v = json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDASIMULATED000001",
            "arn": s.user_arn,
            "accountId": account,
        },
        "eventTime": cairn_event::format_event_time(time_ms),
        "eventSource": s.source,
        "eventName": s.name,
        "awsRegion": s.region,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": s.agent,
        "requestParameters": null,
        "responseElements": null,
        "eventID": uuid::Uuid::from_u128(0x5157_0000_0000_4000_8000_0000_0000_0000 | u128::from(id)).to_string(),
        "readOnly": s.read_only,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
    });
    if let Some(code) = &s.error {
        v["errorCode"] = json!(code);
        v["errorMessage"] = json!("simulated failure");
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Calls of `streams` from `start_ms` for `minutes`, sorted by time: (time, stream index).
pub fn calls(streams: &[Stream], start_ms: i64, minutes: i64, seed: u64) -> Vec<(i64, usize)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for m in 0..minutes {
        let t0 = start_ms + m * MINUTE_MS;
        for (i, s) in streams.iter().enumerate() {
            let n = poisson(&mut rng, s.rate_at(t0));
            for _ in 0..n {
                out.push((t0 + rng.random_range(0..MINUTE_MS), i));
            }
        }
    }
    out.sort_unstable();
    out
}

/// A burst: `per_minute` calls of `stream` in each of `minutes` minutes from `start_ms`.
pub fn burst(start_ms: i64, minutes: i64, per_minute: u64, stream: usize) -> Vec<(i64, usize)> {
    let mut out = Vec::new();
    for m in 0..minutes {
        for k in 0..per_minute {
            out.push((
                start_ms + m * MINUTE_MS + (k as i64 * MINUTE_MS) / per_minute as i64,
                stream,
            ));
        }
    }
    out
}

/// The noisy-but-normal account of the false-positive measurement: `apis` write APIs with
/// rates from 0.02 to 5 calls a minute, most with a daily peak (2x to 6x, at hours
/// that differ per API), quieter weekends, and a few error streams.
pub fn ordinary_noise(apis: usize, seed: u64) -> Vec<Stream> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(apis + apis / 4);
    for i in 0..apis {
        let rate = 0.02 * 250f64.powf(rng.random::<f64>());
        let mut s = Stream::new(
            [
                "ec2.amazonaws.com",
                "iam.amazonaws.com",
                "s3.amazonaws.com",
                "lambda.amazonaws.com",
            ][i % 4],
            &format!("Operation{i:03}"),
            rate,
        );
        s.user_arn = format!("arn:aws:iam::111122223333:user/user{}", i % 7);
        if rng.random_bool(0.75) {
            s.peak = rng.random_range(2.0..6.0);
            let from = rng.random_range(6..18);
            s.peak_hours = (from, from + rng.random_range(1..4));
        }
        if rng.random_bool(0.5) {
            s.weekend = rng.random_range(0.2..0.8);
        }
        if i % 4 == 0 {
            let mut e = s.clone();
            e.error = Some(
                if i % 8 == 0 {
                    "AccessDenied"
                } else {
                    "ThrottlingException"
                }
                .into(),
            );
            e.rate = rate * rng.random_range(0.01..0.2);
            out.push(e);
        }
        out.push(s);
    }
    out
}
