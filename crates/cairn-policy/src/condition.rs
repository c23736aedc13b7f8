//! The `Condition` element: operators, keys, their values, and evaluation.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::Context;
use crate::error::PolicyError;
use crate::glob::{Glob, Opts};
use crate::json::Json;

/// A condition key Cairn knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    SourceIp,
    SecureTransport,
    CurrentTime,
    EpochTime,
    Username,
    Userid,
    PrincipalArn,
    PrincipalAccount,
    PrincipalType,
    RequestedRegion,
    UserAgent,
    ViaConsole,
}

/// The keys with their canonical spelling (names are matched ignoring case).
pub(crate) const KEYS: &[(&str, Key)] = &[
    ("aws:SourceIp", Key::SourceIp),
    ("aws:SecureTransport", Key::SecureTransport),
    ("aws:CurrentTime", Key::CurrentTime),
    ("aws:EpochTime", Key::EpochTime),
    ("aws:username", Key::Username),
    ("aws:userid", Key::Userid),
    ("aws:PrincipalArn", Key::PrincipalArn),
    ("aws:PrincipalAccount", Key::PrincipalAccount),
    ("aws:PrincipalType", Key::PrincipalType),
    ("aws:RequestedRegion", Key::RequestedRegion),
    ("aws:UserAgent", Key::UserAgent),
    ("aws:ViaConsole", Key::ViaConsole),
];

/// Groups of operators; a key accepts some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    String,
    Arn,
    Ip,
    Bool,
    Date,
    Numeric,
}

impl Key {
    fn families(self) -> &'static [Family] {
        match self {
            Key::SourceIp => &[Family::Ip],
            Key::SecureTransport | Key::ViaConsole => &[Family::Bool],
            Key::CurrentTime => &[Family::Date],
            Key::EpochTime => &[Family::Date, Family::Numeric],
            Key::PrincipalArn => &[Family::Arn, Family::String],
            Key::Username
            | Key::Userid
            | Key::PrincipalAccount
            | Key::PrincipalType
            | Key::RequestedRegion
            | Key::UserAgent => &[Family::String],
        }
    }

    fn name(self) -> &'static str {
        KEYS.iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    ArnLike,
    IpAddress,
    Bool,
    Date(Cmp),
    Numeric(Cmp),
    Null,
}

impl Op {
    fn family(self) -> Option<Family> {
        Some(match self {
            Op::StringEquals | Op::StringEqualsIgnoreCase | Op::StringLike => Family::String,
            Op::ArnLike => Family::Arn,
            Op::IpAddress => Family::Ip,
            Op::Bool => Family::Bool,
            Op::Date(_) => Family::Date,
            Op::Numeric(_) => Family::Numeric,
            Op::Null => return None,
        })
    }
}

/// Every operator: its name, what it tests, and whether it is negated (true when no value
/// matches). Each but `Null` also exists with `IfExists` appended.
pub(crate) const OPERATORS: &[(&str, OpDef)] = &[
    ("StringEquals", OpDef(Op::StringEquals, false)),
    ("StringNotEquals", OpDef(Op::StringEquals, true)),
    (
        "StringEqualsIgnoreCase",
        OpDef(Op::StringEqualsIgnoreCase, false),
    ),
    (
        "StringNotEqualsIgnoreCase",
        OpDef(Op::StringEqualsIgnoreCase, true),
    ),
    ("StringLike", OpDef(Op::StringLike, false)),
    ("StringNotLike", OpDef(Op::StringLike, true)),
    ("ArnEquals", OpDef(Op::ArnLike, false)),
    ("ArnLike", OpDef(Op::ArnLike, false)),
    ("ArnNotEquals", OpDef(Op::ArnLike, true)),
    ("ArnNotLike", OpDef(Op::ArnLike, true)),
    ("IpAddress", OpDef(Op::IpAddress, false)),
    ("NotIpAddress", OpDef(Op::IpAddress, true)),
    ("Bool", OpDef(Op::Bool, false)),
    ("DateEquals", OpDef(Op::Date(Cmp::Eq), false)),
    ("DateNotEquals", OpDef(Op::Date(Cmp::Eq), true)),
    ("DateLessThan", OpDef(Op::Date(Cmp::Lt), false)),
    ("DateLessThanEquals", OpDef(Op::Date(Cmp::Le), false)),
    ("DateGreaterThan", OpDef(Op::Date(Cmp::Gt), false)),
    ("DateGreaterThanEquals", OpDef(Op::Date(Cmp::Ge), false)),
    ("NumericEquals", OpDef(Op::Numeric(Cmp::Eq), false)),
    ("NumericNotEquals", OpDef(Op::Numeric(Cmp::Eq), true)),
    ("NumericLessThan", OpDef(Op::Numeric(Cmp::Lt), false)),
    ("NumericLessThanEquals", OpDef(Op::Numeric(Cmp::Le), false)),
    ("NumericGreaterThan", OpDef(Op::Numeric(Cmp::Gt), false)),
    (
        "NumericGreaterThanEquals",
        OpDef(Op::Numeric(Cmp::Ge), false),
    ),
    ("Null", OpDef(Op::Null, false)),
];

#[derive(Debug, Clone, Copy)]
pub(crate) struct OpDef(Op, bool);

/// An ARN pattern of `ArnEquals`/`ArnLike`: each of the six colon-separated parts is matched
/// on its own (a wildcard never spans a colon); `*` alone matches any value.
#[derive(Debug, Clone)]
enum ArnPattern {
    Any,
    Parts(Vec<Glob>),
}

impl ArnPattern {
    fn matches(&self, value: &str, ctx: &Context) -> bool {
        match self {
            ArnPattern::Any => true,
            ArnPattern::Parts(parts) => {
                let mut got = value.splitn(6, ':');
                let all = parts
                    .iter()
                    .all(|g| got.next().is_some_and(|v| g.matches(v, ctx)));
                all && got.next().is_none()
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Values {
    Text(Vec<Glob>),
    Arn(Vec<ArnPattern>),
    Ip(Vec<IpNet>),
    Bool(Vec<bool>),
    /// Nanoseconds since the epoch.
    Time(Vec<i128>),
    Number(Vec<f64>),
}

/// One key test of a `Condition` element.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    op: Op,
    negated: bool,
    if_exists: bool,
    key: Key,
    values: Values,
}

/// The request's value of a key.
enum Val<'a> {
    Str(&'a str),
    Ip(IpAddr),
    Bool(bool),
    /// Epoch seconds.
    Time(i64),
}

/// The value of `key` in the request; `None` when the request has none (an empty string, or
/// no source address).
fn request_value(key: Key, ctx: &Context) -> Option<Val<'_>> {
    let s = match key {
        Key::SourceIp => return ctx.source_ip.map(Val::Ip),
        Key::SecureTransport => return Some(Val::Bool(ctx.secure_transport)),
        Key::ViaConsole => return Some(Val::Bool(ctx.via_console)),
        Key::CurrentTime | Key::EpochTime => return Some(Val::Time(ctx.now_epoch_seconds)),
        Key::Username => &ctx.username,
        Key::Userid => &ctx.userid,
        Key::PrincipalArn => &ctx.principal_arn,
        Key::PrincipalAccount => &ctx.principal_account,
        Key::PrincipalType => &ctx.principal_type,
        Key::RequestedRegion => &ctx.requested_region,
        Key::UserAgent => &ctx.user_agent,
    };
    (!s.is_empty()).then_some(Val::Str(s))
}

impl Condition {
    /// Whether the condition holds for the request.
    pub(crate) fn holds(&self, ctx: &Context) -> bool {
        let Some(got) = request_value(self.key, ctx) else {
            return match (&self.op, &self.values) {
                (Op::Null, Values::Bool(wanted)) => wanted.contains(&true),
                // AWS: a missing key matches no value, so a negated operator holds.
                _ => self.if_exists || self.negated,
            };
        };
        let any = match (&self.values, got) {
            (Values::Bool(wanted), _) if self.op == Op::Null => return wanted.contains(&false),
            (Values::Text(globs), Val::Str(s)) => globs.iter().any(|g| g.matches(s, ctx)),
            (Values::Arn(arns), Val::Str(s)) => arns.iter().any(|a| a.matches(s, ctx)),
            (Values::Ip(nets), Val::Ip(ip)) => {
                let ip = ip.to_canonical();
                nets.iter().any(|n| n.contains(&ip))
            }
            (Values::Bool(wanted), Val::Bool(b)) => wanted.contains(&b),
            (Values::Time(times), Val::Time(now)) => {
                let Op::Date(cmp) = self.op else { return false };
                let now = i128::from(now) * 1_000_000_000;
                times.iter().any(|t| cmp.holds(now, *t))
            }
            (Values::Number(numbers), Val::Time(now)) => {
                let Op::Numeric(cmp) = self.op else {
                    return false;
                };
                numbers.iter().any(|n| cmp.holds(now as f64, *n))
            }
            // Operators are checked against their key's type at parse time.
            _ => false,
        };
        any != self.negated
    }
}

fn operator_list() -> String {
    let names: Vec<&str> = OPERATORS.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

fn key_list() -> String {
    let names: Vec<&str> = KEYS.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

/// Reads an operator name: `(operator, negated, if_exists)`.
fn parse_operator(name: &str) -> Result<(Op, bool, bool), String> {
    if let Some((set, _)) = name.split_once(':') {
        return Err(format!(
            "{name:?}: the set operator {set:?} is not supported (every Cairn condition key has \
             a single value); use the operator without it"
        ));
    }
    let (base, if_exists) = match name.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (name, false),
    };
    if let Some((_, OpDef(op, negated))) = OPERATORS.iter().find(|(n, _)| *n == base) {
        if if_exists && *op == Op::Null {
            return Err(
                "Null cannot take IfExists: it already tests whether the key exists".into(),
            );
        }
        return Ok((*op, *negated, if_exists));
    }
    let hint = OPERATORS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(base))
        .map(|(n, _)| format!(" (operator names are case-sensitive: did you mean {n:?}?)"))
        .unwrap_or_default();
    Err(format!(
        "unknown condition operator {name:?}{hint}; supported: {}, and each of them but Null \
         with IfExists appended",
        operator_list()
    ))
}

fn operators_for(key: Key) -> String {
    let names: Vec<&str> = OPERATORS
        .iter()
        .filter(|(_, OpDef(op, _))| op.family().is_none_or(|f| key.families().contains(&f)))
        .map(|(n, _)| *n)
        .collect();
    names.join(", ")
}

/// Parses the `Condition` element at `loc`. `vars`: policy variables are substituted in
/// string and ARN values (policy version 2012-10-17).
pub(crate) fn parse(v: &Json, loc: &str, vars: bool) -> Result<Vec<Condition>, PolicyError> {
    let Json::Object(blocks) = v else {
        return Err(PolicyError::at(
            loc,
            format!(
                "must be an object of condition operators, such as \
                 {{\"Bool\": {{\"aws:SecureTransport\": \"true\"}}}}, not {}",
                v.kind()
            ),
        ));
    };
    let mut out = Vec::new();
    for (i, (op_name, block)) in blocks.iter().enumerate() {
        let oloc = format!("{loc}.{op_name}");
        if blocks[..i].iter().any(|(n, _)| n == op_name) {
            return Err(PolicyError::at(&oloc, "the operator appears twice"));
        }
        let (op, negated, if_exists) =
            parse_operator(op_name).map_err(|m| PolicyError::at(&oloc, m))?;
        let Json::Object(keys) = block else {
            return Err(PolicyError::at(
                &oloc,
                format!(
                    "must be an object of condition keys and values, such as \
                     {{\"aws:username\": \"alice\"}}, not {}",
                    block.kind()
                ),
            ));
        };
        for (j, (key_name, values)) in keys.iter().enumerate() {
            let kloc = format!("{oloc}.{key_name}");
            if keys[..j]
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(key_name))
            {
                return Err(PolicyError::at(
                    &kloc,
                    "the key appears twice under this operator (key names ignore case)",
                ));
            }
            let Some(&(_, key)) = KEYS.iter().find(|(n, _)| n.eq_ignore_ascii_case(key_name))
            else {
                return Err(PolicyError::at(
                    &kloc,
                    format!(
                        "unknown condition key {key_name:?}; supported: {}",
                        key_list()
                    ),
                ));
            };
            if let Some(family) = op.family()
                && !key.families().contains(&family)
            {
                return Err(PolicyError::at(
                    &kloc,
                    format!(
                        "{op_name} does not apply to {}; it takes {}",
                        key.name(),
                        operators_for(key)
                    ),
                ));
            }
            let values = parse_values(op, values, &kloc, vars)?;
            out.push(Condition {
                op,
                negated,
                if_exists,
                key,
                values,
            });
        }
    }
    Ok(out)
}

/// A condition value as text: strings as they are, booleans and numbers as JSON writes them.
fn scalar(v: &Json) -> Option<Cow<'_, str>> {
    match v {
        Json::String(s) => Some(Cow::Borrowed(s)),
        Json::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Json::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn parse_values(op: Op, v: &Json, loc: &str, vars: bool) -> Result<Values, PolicyError> {
    let items: Vec<(String, &Json)> = match v {
        Json::Array(items) if items.is_empty() => {
            return Err(PolicyError::at(loc, "the list of values is empty"));
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{loc}[{i}]"), item))
            .collect(),
        other => vec![(loc.to_owned(), other)],
    };
    let mut texts = Vec::new();
    for (iloc, item) in &items {
        let Some(text) = scalar(item) else {
            return Err(PolicyError::at(
                iloc,
                format!(
                    "a condition value is a string, a boolean or a number, not {}",
                    item.kind()
                ),
            ));
        };
        texts.push((iloc.as_str(), text, *item));
    }
    let text_opts = |wildcards: bool, ci: bool| Opts {
        wildcards,
        vars,
        ci,
    };
    let glob = |pattern: &str, iloc: &str, opts: Opts| {
        Glob::compile(pattern, opts).map_err(|m| PolicyError::at(iloc, m))
    };
    Ok(match op {
        Op::StringEquals | Op::StringEqualsIgnoreCase | Op::StringLike => {
            let opts = text_opts(op == Op::StringLike, op == Op::StringEqualsIgnoreCase);
            let mut globs = Vec::with_capacity(texts.len());
            for (iloc, text, _) in &texts {
                globs.push(glob(text, iloc, opts)?);
            }
            Values::Text(globs)
        }
        Op::ArnLike => {
            let mut arns = Vec::with_capacity(texts.len());
            for (iloc, text, _) in &texts {
                if text == "*" {
                    arns.push(ArnPattern::Any);
                    continue;
                }
                let parts = split_arn(text, vars);
                if !text.starts_with("arn:") || parts.len() != 6 {
                    return Err(PolicyError::at(
                        iloc,
                        format!(
                            "{text:?} is not an ARN \
                             (arn:<partition>:<service>:<region>:<account>:<resource>) nor \"*\""
                        ),
                    ));
                }
                let mut globs = Vec::with_capacity(6);
                for part in parts {
                    globs.push(glob(part, iloc, text_opts(true, false))?);
                }
                arns.push(ArnPattern::Parts(globs));
            }
            Values::Arn(arns)
        }
        Op::IpAddress => {
            let mut nets = Vec::with_capacity(texts.len());
            for (iloc, text, _) in &texts {
                let net = text
                    .parse::<IpNet>()
                    .ok()
                    .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from));
                let Some(net) = net else {
                    return Err(PolicyError::at(
                        iloc,
                        format!(
                            "{text:?} is not an IP address or CIDR block (such as \
                             203.0.113.0/24 or 2001:db8::/32)"
                        ),
                    ));
                };
                nets.push(net);
            }
            Values::Ip(nets)
        }
        Op::Bool | Op::Null => {
            let mut bools = Vec::with_capacity(texts.len());
            for (iloc, text, _) in &texts {
                let b = if text.eq_ignore_ascii_case("true") {
                    true
                } else if text.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(PolicyError::at(
                        iloc,
                        format!("{text:?} is not a boolean: use true or false"),
                    ));
                };
                bools.push(b);
            }
            Values::Bool(bools)
        }
        Op::Date(_) => {
            let mut times = Vec::with_capacity(texts.len());
            for (iloc, text, item) in &texts {
                let Some(t) = parse_date(text, item) else {
                    return Err(PolicyError::at(
                        iloc,
                        format!(
                            "{text:?} is not a date: use ISO 8601 (such as \
                             2024-01-31T12:00:00Z or 2024-01-31) or epoch seconds"
                        ),
                    ));
                };
                times.push(t);
            }
            Values::Time(times)
        }
        Op::Numeric(_) => {
            let mut numbers = Vec::with_capacity(texts.len());
            for (iloc, text, _) in &texts {
                let Some(n) = text.parse::<f64>().ok().filter(|n| n.is_finite()) else {
                    return Err(PolicyError::at(iloc, format!("{text:?} is not a number")));
                };
                numbers.push(n);
            }
            Values::Number(numbers)
        }
    })
}

/// Nanoseconds since the epoch of a date value.
fn parse_date(text: &str, item: &Json) -> Option<i128> {
    if let Json::Number(n) = item {
        if let Some(secs) = n.as_i64() {
            return Some(i128::from(secs) * 1_000_000_000);
        }
        return n.as_f64().map(|f| (f * 1e9) as i128);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .map(|s| i128::from(s) * 1_000_000_000);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    if let Ok(d) = Date::parse(text, &Iso8601::DEFAULT) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    None
}

/// Splits an ARN (pattern) into at most six parts at its colons, not counting colons inside
/// `${...}` when `vars` is on.
pub(crate) fn split_arn(text: &str, vars: bool) -> Vec<&str> {
    let mut parts = Vec::with_capacity(6);
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() && parts.len() < 5 {
        match bytes[i] {
            b'$' if vars && bytes.get(i + 1) == Some(&b'{') => {
                match text[i..].find('}') {
                    Some(close) => i += close,
                    None => break,
                };
            }
            b':' => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_arn_keeps_variables_whole() {
        assert_eq!(
            split_arn(
                "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}",
                true
            ),
            [
                "arn",
                "aws",
                "iam",
                "",
                "${aws:PrincipalAccount}",
                "user/${aws:username}"
            ]
        );
        assert_eq!(
            split_arn("arn:aws:s3:::a:b:c", false),
            ["arn", "aws", "s3", "", "", "a:b:c"]
        );
        assert_eq!(split_arn("arn:aws", true), ["arn", "aws"]);
        assert_eq!(split_arn("a${b", true), ["a${b"]);
    }

    #[test]
    fn every_operator_has_an_if_exists_form_but_null() {
        for (name, _) in OPERATORS {
            let with = format!("{name}IfExists");
            assert_eq!(parse_operator(&with).is_ok(), *name != "Null", "{with}");
            assert!(parse_operator(name).is_ok());
        }
    }

    #[test]
    fn dates() {
        let s = |t: &str| parse_date(t, &Json::String(t.into())).map(|n| n / 1_000_000_000);
        assert_eq!(s("2024-01-31T12:00:00Z"), Some(1_706_702_400));
        assert_eq!(s("2024-01-31T13:00:00+01:00"), Some(1_706_702_400));
        assert_eq!(s("2024-01-31T12:00:00"), Some(1_706_702_400));
        assert_eq!(s("2024-01-31"), Some(1_706_659_200));
        assert_eq!(s("1706702400"), Some(1_706_702_400));
        assert_eq!(s("-1"), Some(-1));
        assert_eq!(s("yesterday"), None);
        assert_eq!(s("2024-13-01"), None);
        assert_eq!(s("99999999999999999999999"), None);
        assert_eq!(
            parse_date("", &Json::Number(1_706_702_400.into())),
            Some(1_706_702_400_000_000_000)
        );
    }
}
