//! The Presto/Trino functions CloudTrail Lake queries use that DataFusion lacks or names
//! differently: `element_at` on maps, lists and JSON text, `json_extract_scalar` and
//! `json_extract`, and the date functions (`year`, `day_of_week`, `date`, `date_add`,
//! `date_diff`, ...).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, MapArray, StringArray, UInt32Array, new_null_array,
};
use arrow::compute::kernels::cast::cast;
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use serde_json::Value;

const TS_MS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// Registers every function of this module.
pub fn register(ctx: &SessionContext) {
    let parts: [(&str, DatePart); 18] = [
        ("year", DatePart::Year),
        ("quarter", DatePart::Quarter),
        ("month", DatePart::Month),
        ("week", DatePart::Week),
        ("week_of_year", DatePart::Week),
        ("day", DatePart::Day),
        ("day_of_month", DatePart::Day),
        ("day_of_week", DatePart::DayOfWeekMonday0),
        ("dow", DatePart::DayOfWeekMonday0),
        ("day_of_year", DatePart::DayOfYear),
        ("doy", DatePart::DayOfYear),
        ("hour", DatePart::Hour),
        ("minute", DatePart::Minute),
        ("second", DatePart::Second),
        ("millisecond", DatePart::Millisecond),
        ("year_of_week", DatePart::YearISO),
        ("yow", DatePart::YearISO),
        ("week_iso", DatePart::WeekISO),
    ];
    for (name, part) in parts {
        ctx.register_udf(ScalarUDF::new_from_impl(DateField::new(name, part)));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(Simple::new("date", 1, Kind::Date)));
    ctx.register_udf(ScalarUDF::new_from_impl(Simple::new(
        "date_add",
        3,
        Kind::DateAdd,
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(Simple::new(
        "date_diff",
        3,
        Kind::DateDiff,
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(Simple::new(
        "json_extract_scalar",
        2,
        Kind::JsonScalar,
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(Simple::new(
        "json_extract",
        2,
        Kind::Json,
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(ElementAt::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(Simple::new(
        "sha256_hex",
        1,
        Kind::Sha256,
    )));
}

/// `eventjsonchecksum`: the SHA-256 of the record text, in hex.
pub fn checksum(e: datafusion::logical_expr::Expr) -> datafusion::logical_expr::Expr {
    ScalarUDF::new_from_impl(Simple::new("sha256_hex", 1, Kind::Sha256)).call(vec![e])
}

/// The arguments as arrays of `rows` rows.
fn arrays(args: &[ColumnarValue], rows: usize) -> Result<Vec<ArrayRef>> {
    args.iter().map(|a| a.to_array(rows)).collect()
}

fn to_ms(a: &ArrayRef) -> Result<ArrayRef> {
    let a = match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            // Text such as '2024-01-05 13:51:00' or '2024-01-05T13:51:00Z'.
            cast(a, &DataType::Timestamp(TimeUnit::Nanosecond, None))?
        }
        _ => a.clone(),
    };
    let a = match a.data_type() {
        DataType::Timestamp(_, Some(_)) => {
            // A zoned time (now()) is an instant: its UTC wall time, with the zone dropped.
            let utc = cast(
                &a,
                &DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            )?;
            let v = utc.as_primitive::<TimestampMillisecondType>();
            Arc::new(v.clone().with_timezone_opt(None::<String>)) as ArrayRef
        }
        _ => a,
    };
    Ok(cast(&a, &TS_MS)?)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateField {
    name: &'static str,
    part: u8,
    signature: Signature,
}

const PARTS: [DatePart; 11] = [
    DatePart::Year,
    DatePart::Quarter,
    DatePart::Month,
    DatePart::Week,
    DatePart::Day,
    DatePart::DayOfWeekMonday0,
    DatePart::DayOfYear,
    DatePart::Hour,
    DatePart::Minute,
    DatePart::Second,
    DatePart::Millisecond,
];

impl DateField {
    fn new(name: &'static str, part: DatePart) -> DateField {
        let idx = PARTS.iter().position(|p| *p == part).map_or(
            match part {
                DatePart::YearISO => 100,
                _ => 101,
            },
            |i| i as u8,
        );
        DateField {
            name,
            part: idx,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    fn part(&self) -> DatePart {
        match self.part {
            100 => DatePart::YearISO,
            101 => DatePart::WeekISO,
            i => PARTS[i as usize],
        }
    }
}

impl ScalarUDFImpl for DateField {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args.args, args.number_rows)?;
        let t = to_ms(&a[0])?;
        let mut v = date_part(&t, self.part())?;
        if self.part() == DatePart::DayOfWeekMonday0 {
            // Presto counts Monday as 1 and Sunday as 7.
            let plus = arrow::compute::kernels::numeric::add(
                &cast(&v, &DataType::Int64)?,
                &arrow::array::Scalar::new(Int64Array::from(vec![1])),
            )?;
            return Ok(ColumnarValue::Array(plus));
        }
        v = cast(&v, &DataType::Int64)?;
        Ok(ColumnarValue::Array(v))
    }
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    Date,
    DateAdd,
    DateDiff,
    JsonScalar,
    Json,
    Sha256,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Simple {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl Simple {
    fn new(name: &'static str, args: usize, kind: Kind) -> Simple {
        Simple {
            name,
            kind,
            signature: Signature::any(args, Volatility::Immutable),
        }
    }
}

fn strings(a: &ArrayRef) -> Result<ArrayRef> {
    match a.data_type() {
        DataType::Map(_, _) => Ok(Arc::new(map_as_json(a)?)),
        _ => Ok(cast(a, &DataType::Utf8)?),
    }
}

/// A map of strings as JSON object text, one per row.
fn map_as_json(a: &ArrayRef) -> Result<StringArray> {
    let m = a
        .as_any()
        .downcast_ref::<MapArray>()
        .ok_or_else(|| DataFusionError::Execution("expected a map".into()))?;
    let mut out = Vec::with_capacity(m.len());
    for i in 0..m.len() {
        if m.is_null(i) {
            out.push(None);
            continue;
        }
        let entries = m.value(i);
        let k = cast(entries.column(0), &DataType::Utf8)?;
        let v = cast(entries.column(1), &DataType::Utf8)?;
        let (k, v) = (k.as_string::<i32>(), v.as_string::<i32>());
        let mut obj = serde_json::Map::new();
        for j in 0..k.len() {
            let val = if v.is_null(j) {
                Value::Null
            } else {
                // Nested members are kept as JSON text; give them back as JSON.
                let s = v.value(j);
                match s.as_bytes().first() {
                    Some(b'{') | Some(b'[') => {
                        serde_json::from_str(s).unwrap_or(Value::String(s.into()))
                    }
                    _ => Value::String(s.into()),
                }
            };
            obj.insert(k.value(j).to_owned(), val);
        }
        out.push(Some(Value::Object(obj).to_string()));
    }
    Ok(StringArray::from(out))
}

/// One step of a JSON path.
enum Step {
    Key(String),
    Index(usize),
}

/// Parses the JSON paths Presto accepts: `$`, `.name`, `["name"]`, `[0]`.
fn parse_path(p: &str) -> Result<Vec<Step>> {
    let b = p.trim();
    let Some(mut rest) = b.strip_prefix('$') else {
        return plan_err!("Invalid JSON path: '{p}' (a path starts with $)");
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return plan_err!("Invalid JSON path: '{p}'");
            }
            steps.push(Step::Key(r[..end].to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| DataFusionError::Plan(format!("Invalid JSON path: '{p}'")))?;
            let inner = r[..end].trim();
            if let Some(q) = inner
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            {
                steps.push(Step::Key(q.to_owned()));
            } else if let Ok(i) = inner.parse::<usize>() {
                steps.push(Step::Index(i));
            } else {
                return plan_err!("Invalid JSON path: '{p}'");
            }
            rest = &r[end + 1..];
        } else {
            return plan_err!("Invalid JSON path: '{p}'");
        }
    }
    Ok(steps)
}

fn walk<'a>(mut v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for s in steps {
        v = match s {
            Step::Key(k) => v.get(k.as_str())?,
            Step::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

fn json_fn(json: &ArrayRef, path: &ArrayRef, scalar: bool) -> Result<ArrayRef> {
    let json = strings(json)?;
    let path = strings(path)?;
    let (json, path) = (json.as_string::<i32>(), path.as_string::<i32>());
    let mut cached: Option<(String, Vec<Step>)> = None;
    let mut out: Vec<Option<String>> = Vec::with_capacity(json.len());
    for i in 0..json.len() {
        if json.is_null(i) || path.is_null(i) {
            out.push(None);
            continue;
        }
        let p = path.value(i);
        if cached.as_ref().is_none_or(|(c, _)| c != p) {
            cached = Some((p.to_owned(), parse_path(p)?));
        }
        let steps = cached.as_ref().map(|(_, s)| s.as_slice()).unwrap_or(&[]);
        let Ok(doc) = serde_json::from_str::<Value>(json.value(i)) else {
            out.push(None);
            continue;
        };
        out.push(match walk(&doc, steps) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if scalar => Some(s.clone()),
            Some(Value::Object(_)) | Some(Value::Array(_)) if scalar => None,
            Some(v) => Some(v.to_string()),
        });
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "millisecond" => 1,
        "second" => 1000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 7 * 86_400_000,
        _ => return None,
    })
}

fn months(unit: &str) -> Option<i32> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "month" => 1,
        "quarter" => 3,
        "year" => 12,
        _ => return None,
    })
}

fn add_months(ms: i64, n: i64) -> Option<i64> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let total = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 + n;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
    let last = time::util::days_in_month(month, year);
    let date = time::Date::from_calendar_date(year, month, t.day().min(last)).ok()?;
    let out = t.replace_date(date);
    i64::try_from(out.unix_timestamp_nanos() / 1_000_000).ok()
}

fn month_index(ms: i64) -> Option<(i64, i64)> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let start_of_month = t.replace_day(1).ok()?.replace_time(time::Time::MIDNIGHT);
    let into = ms - i64::try_from(start_of_month.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some((
        i64::from(t.year()) * 12 + i64::from(u8::from(t.month())),
        into,
    ))
}

impl ScalarUDFImpl for Simple {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Date => DataType::Date32,
            Kind::DateAdd => TS_MS,
            Kind::DateDiff => DataType::Int64,
            Kind::JsonScalar | Kind::Json | Kind::Sha256 => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args.args, args.number_rows)?;
        let out: ArrayRef = match self.kind {
            Kind::Date => cast(&to_ms(&a[0])?, &DataType::Date32)?,
            Kind::JsonScalar => json_fn(&a[0], &a[1], true)?,
            Kind::Json => json_fn(&a[0], &a[1], false)?,
            Kind::Sha256 => {
                use sha2::Digest;
                let t = strings(&a[0])?;
                let t = t.as_string::<i32>();
                let out: StringArray = t
                    .iter()
                    .map(|v| v.map(|v| hex::encode(sha2::Sha256::digest(v.as_bytes()))))
                    .collect();
                Arc::new(out)
            }
            Kind::DateAdd => {
                let unit = strings(&a[0])?;
                let n = cast(&a[1], &DataType::Int64)?;
                let t = to_ms(&a[2])?;
                let (unit, n, t) = (
                    unit.as_string::<i32>(),
                    n.as_primitive::<arrow::datatypes::Int64Type>(),
                    t.as_primitive::<TimestampMillisecondType>(),
                );
                let mut out = Vec::with_capacity(t.len());
                for i in 0..t.len() {
                    if unit.is_null(i) || n.is_null(i) || t.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let u = unit.value(i);
                    let v = if let Some(step) = unit_ms(u) {
                        n.value(i)
                            .checked_mul(step)
                            .and_then(|d| t.value(i).checked_add(d))
                    } else if let Some(m) = months(u) {
                        n.value(i)
                            .checked_mul(i64::from(m))
                            .and_then(|d| add_months(t.value(i), d))
                    } else {
                        return exec_err!(
                            "date_add: '{u}' is not a unit (use millisecond, second, minute, hour, day, week, month, quarter or year)"
                        );
                    };
                    out.push(v);
                }
                Arc::new(arrow::array::TimestampMillisecondArray::from(out))
            }
            Kind::DateDiff => {
                let unit = strings(&a[0])?;
                let (x, y) = (to_ms(&a[1])?, to_ms(&a[2])?);
                let (unit, x, y) = (
                    unit.as_string::<i32>(),
                    x.as_primitive::<TimestampMillisecondType>(),
                    y.as_primitive::<TimestampMillisecondType>(),
                );
                let mut out = Vec::with_capacity(x.len());
                for i in 0..x.len() {
                    if unit.is_null(i) || x.is_null(i) || y.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let u = unit.value(i);
                    let (a, b) = (x.value(i), y.value(i));
                    let v = if let Some(step) = unit_ms(u) {
                        Some((b - a) / step)
                    } else if let Some(m) = months(u) {
                        match (month_index(a), month_index(b)) {
                            (Some((ma, ia)), Some((mb, ib))) => {
                                let mut d = mb - ma;
                                // Whole months only, as Presto counts them.
                                if d > 0 && ib < ia {
                                    d -= 1;
                                } else if d < 0 && ib > ia {
                                    d += 1;
                                }
                                Some(d / i64::from(m))
                            }
                            _ => None,
                        }
                    } else {
                        return exec_err!(
                            "date_diff: '{u}' is not a unit (use millisecond, second, minute, hour, day, week, month, quarter or year)"
                        );
                    };
                    out.push(v);
                }
                Arc::new(Int64Array::from(out))
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `element_at(map, key)`, `element_at(array, index)` (from 1; negative from the end) and
/// `element_at(json_text, key)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ElementAt {
    signature: Signature,
}

impl ElementAt {
    fn new() -> ElementAt {
        ElementAt {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ElementAt {
    fn name(&self) -> &str {
        "element_at"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        match t.first() {
            Some(DataType::Map(f, _)) => match f.data_type() {
                DataType::Struct(fields) if fields.len() == 2 => Ok(fields[1].data_type().clone()),
                _ => plan_err!("element_at: an unexpected map type"),
            },
            Some(DataType::List(f)) | Some(DataType::LargeList(f)) => Ok(f.data_type().clone()),
            Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => Ok(DataType::Utf8),
            Some(DataType::Null) => Ok(DataType::Utf8),
            Some(other) => plan_err!("element_at takes a map, an array or JSON text, not {other}"),
            None => plan_err!("element_at takes two arguments"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args.args, args.number_rows)?;
        let rows = args.number_rows;
        match a[0].data_type() {
            DataType::Map(_, _) => {
                let m = a[0]
                    .as_any()
                    .downcast_ref::<MapArray>()
                    .ok_or_else(|| DataFusionError::Execution("expected a map".into()))?;
                let keys = cast(m.keys(), &DataType::Utf8)?;
                let keys = keys.as_string::<i32>();
                let want = strings(&a[1])?;
                let want = want.as_string::<i32>();
                let offsets = m.value_offsets();
                let mut idx: Vec<Option<u32>> = Vec::with_capacity(rows);
                for i in 0..m.len() {
                    if m.is_null(i) || want.is_null(i) {
                        idx.push(None);
                        continue;
                    }
                    let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                    let w = want.value(i);
                    idx.push((s..e).find(|j| keys.value(*j) == w).map(|j| j as u32));
                }
                let taken =
                    arrow::compute::take(m.values().as_ref(), &UInt32Array::from(idx), None)?;
                Ok(ColumnarValue::Array(taken))
            }
            DataType::List(_) => {
                let l = a[0].as_list::<i32>();
                let n = cast(&a[1], &DataType::Int64)?;
                let n = n.as_primitive::<arrow::datatypes::Int64Type>();
                let offsets = l.value_offsets();
                let mut idx: Vec<Option<u32>> = Vec::with_capacity(rows);
                for i in 0..l.len() {
                    if l.is_null(i) || n.is_null(i) {
                        idx.push(None);
                        continue;
                    }
                    let (s, e) = (i64::from(offsets[i]), i64::from(offsets[i + 1]));
                    let k = n.value(i);
                    let at = if k > 0 { s + k - 1 } else { e + k };
                    idx.push((k != 0 && at >= s && at < e).then_some(at as u32));
                }
                let taken =
                    arrow::compute::take(l.values().as_ref(), &UInt32Array::from(idx), None)?;
                Ok(ColumnarValue::Array(taken))
            }
            DataType::Null => Ok(ColumnarValue::Array(new_null_array(&DataType::Utf8, rows))),
            _ => {
                let key = strings(&a[1])?;
                let key = key.as_string::<i32>();
                let paths: Vec<Option<String>> = (0..key.len())
                    .map(|i| {
                        (!key.is_null(i))
                            .then(|| format!("$[\"{}\"]", key.value(i).replace('"', "")))
                    })
                    .collect();
                let paths: ArrayRef = Arc::new(StringArray::from(paths));
                Ok(ColumnarValue::Array(json_fn(&a[0], &paths, false).map(
                    |arr| {
                        // Strings come back without their quotes.
                        let s = arr.as_string::<i32>();
                        let out: StringArray = s
                            .iter()
                            .map(|v| {
                                v.map(|v| match serde_json::from_str::<Value>(v) {
                                    Ok(Value::String(x)) => x,
                                    _ => v.to_owned(),
                                })
                            })
                            .collect();
                        Arc::new(out) as ArrayRef
                    },
                )?))
            }
        }
    }
}

/// A scalar's text for a time literal (used by tests).
pub fn timestamp_ms(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1000),
        ScalarValue::TimestampMillisecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(x.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1_000_000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        assert!(parse_path("$.a.b[0][\"c\"]").is_ok());
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$.").is_err());
        assert!(parse_path("$[x]").is_err());
        let doc: Value = serde_json::from_str(r#"{"a":{"b":[{"c":1}]}}"#).unwrap();
        let steps = parse_path("$.a.b[0].c").unwrap();
        assert_eq!(walk(&doc, &steps), Some(&Value::from(1)));
    }

    #[test]
    fn months_add_clamp() {
        // 2024-01-31 + 1 month = 2024-02-29
        let jan31 = 1_706_659_200_000;
        let feb29 = add_months(jan31, 1).unwrap();
        assert_eq!(feb29, 1_709_164_800_000);
    }
}
