//! Log files that no digest vouches for: unreferenced ones, ones delivered while no chain ran,
//! ones the next digest will cover, and misplaced objects.

use std::collections::HashMap;

use cairn_bucket::BucketError;
use futures::StreamExt;

use super::chain::{Check, Ctx, RegionWalk};
use super::names::{DAY_MS, LogName};
use super::{Finding, FindingKind, Severity, ValidateError};
use crate::layout::{Kind, date_path, iso_second};

const MINUTE_MS: i64 = 60_000;

fn floor_to(ms: i64, unit: i64) -> i64 {
    ms.div_euclid(unit) * unit
}

/// Whether a file stamped `t` (minute precision: delivered in `[t, t + 1 min)`) may have been
/// delivered within `(lo, hi)`.
fn overlaps(t: i64, lo: i64, hi: i64) -> bool {
    t.saturating_add(MINUTE_MS) > lo && t < hi
}

/// What a digest of another trail in the same folders says about the files it lists:
/// `Ok(label)` if it is valid, else the label and why not.
type OtherRefs = HashMap<String, Result<String, (String, String)>>;

async fn other_trails(ctx: &Ctx<'_>, walk: &RegionWalk) -> OtherRefs {
    let (start, end) = (ctx.opts.start_ms, ctx.opts.end_ms);
    let mut refs = OtherRefs::new();
    for (key, label, stamp) in &walk.others {
        if *stamp < start || *stamp > end.saturating_add(2 * 3_600_000) {
            continue;
        }
        let outcome = ctx.check_digest(key, Some(*stamp), true, None).await;
        let (logs, verdict) = match outcome {
            Check::Valid { d, .. } => (d.logs, Ok(label.clone())),
            Check::Invalid {
                reason,
                parsed: Some(d),
            } => (d.logs, Err((label.clone(), reason))),
            _ => continue,
        };
        for l in logs {
            // A valid digest's word wins over an invalid one's.
            match refs.get(&l.key) {
                Some(Ok(_)) => {}
                _ => {
                    refs.insert(l.key, verdict.clone());
                }
            }
        }
    }
    refs
}

/// Lists the region's log folders for the days of the range and reports every file no digest
/// of this trail lists.
pub async fn check_region(
    ctx: &Ctx<'_>,
    region: &str,
    walk: &RegionWalk,
) -> Result<Vec<Finding>, ValidateError> {
    let (start, end) = (ctx.opts.start_ms, ctx.opts.end_ms);
    let dir = ctx.names.region_dir(Kind::Log, region);
    let mut prefixes = Vec::new();
    let mut day = floor_to(start, DAY_MS);
    while day <= end {
        prefixes.push(format!("{dir}{}/", date_path(day)));
        day += DAY_MS;
    }
    let listings: Vec<Result<Vec<cairn_bucket::Listed>, ValidateError>> =
        futures::stream::iter(prefixes)
            .map(|prefix| {
                let bucket = ctx.bucket.clone();
                async move {
                    match bucket.list(&prefix, None).await {
                        Ok(v) => Ok(v),
                        Err(BucketError::NoSuchKey(_)) => Ok(Vec::new()),
                        Err(source) => Err(ValidateError::List { prefix, source }),
                    }
                }
            })
            .buffered(ctx.concurrency)
            .collect()
            .await;

    let finding = |kind, severity, key: &str, reason: String| Finding {
        kind,
        severity,
        region: region.to_owned(),
        bucket: ctx.bucket_name(),
        key: key.to_owned(),
        reason,
        backfill: false,
    };
    let mut out = Vec::new();
    let mut candidates = Vec::new();
    let first_minute = floor_to(start, MINUTE_MS);
    for listing in listings {
        for l in listing? {
            if walk.referenced.contains(&l.key) {
                continue;
            }
            match ctx.names.classify_log(region, &l.key) {
                LogName::Foreign => out.push(finding(
                    FindingKind::OutOfPlace,
                    Severity::Invalid,
                    &l.key,
                    format!(
                        "out of place: not a CloudTrail log file of account {} in {region}",
                        ctx.names.account
                    ),
                )),
                LogName::Log {
                    misplaced: Some(why),
                    ..
                } => out.push(finding(
                    FindingKind::OutOfPlace,
                    Severity::Invalid,
                    &l.key,
                    format!("out of place: {why}"),
                )),
                LogName::Log {
                    stamp_ms,
                    misplaced: None,
                } => {
                    if stamp_ms >= first_minute && stamp_ms <= end {
                        candidates.push((l.key, stamp_ms));
                    }
                }
            }
        }
    }
    let others = if candidates.is_empty() || walk.others.is_empty() {
        OtherRefs::new()
    } else {
        other_trails(ctx, walk).await
    };
    for (key, t) in candidates {
        match others.get(&key) {
            Some(Ok(_)) => continue,
            Some(Err((label, why))) => {
                out.push(finding(
                    FindingKind::Unreferenced,
                    Severity::Invalid,
                    &key,
                    format!(
                        "unreferenced: only a digest of another trail ({label}) lists it, and that digest is INVALID: {why}"
                    ),
                ));
                continue;
            }
            None => {}
        }
        if let Some(&(lo, hi)) = walk
            .spans
            .iter()
            .find(|(lo, hi)| overlaps(t, *lo, hi.saturating_add(1)))
        {
            let span = if lo == i64::MIN {
                format!("before {}", iso_second(hi))
            } else {
                format!("from {} to {}", iso_second(lo), iso_second(hi))
            };
            out.push(finding(
                FindingKind::Unreferenced,
                Severity::Invalid,
                &key,
                format!("unreferenced: the digests covering its delivery were deleted (no digest covers {span})"),
            ));
        } else if let Some(cu) = walk.covered_until
            && t >= floor_to(cu, MINUTE_MS)
        {
            out.push(finding(
                FindingKind::NotYetCovered,
                Severity::Info,
                &key,
                format!(
                    "not yet covered by a digest (delivered after the newest digest's end, {})",
                    iso_second(cu)
                ),
            ));
        } else if let Some(&(lo, hi)) = walk.gaps.iter().find(|(lo, hi)| overlaps(t, *lo, *hi)) {
            let when = if lo == i64::MIN {
                format!("before {}, when the digest chain began", iso_second(hi))
            } else {
                format!(
                    "between {} and {}, when no digest chain ran",
                    iso_second(lo),
                    iso_second(hi)
                )
            };
            out.push(finding(
                FindingKind::Uncovered,
                Severity::Info,
                &key,
                format!("not covered by any digest: delivered {when}"),
            ));
        } else if !walk.has_digests {
            out.push(finding(
                FindingKind::Unreferenced,
                Severity::Invalid,
                &key,
                format!("unreferenced: there is no digest of this trail in {region}"),
            ));
        } else {
            out.push(finding(
                FindingKind::Unreferenced,
                Severity::Invalid,
                &key,
                "unreferenced: no digest lists it".into(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_stamps_overlap_spans() {
        assert!(overlaps(60_000, 90_000, 200_000));
        assert!(!overlaps(0, 60_000, 200_000));
        assert!(!overlaps(200_000, 0, 200_000));
        assert!(overlaps(i64::MAX - 10, i64::MIN, i64::MAX));
        assert_eq!(floor_to(-1, 60_000), -60_000);
    }
}
