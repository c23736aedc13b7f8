//! EventBridge event patterns: parsing, validation and matching.
//!
//! A pattern is a JSON object whose structure mirrors the events it selects. Every member is
//! either a nested object (matched against the nested field of the event) or a non-empty list
//! of values (a leaf). All members of an object must match (AND); the values of a list are
//! alternatives (OR). An object may also hold `"$or": [{...}, {...}]`, which holds when any of
//! its alternatives matches the same object of the event.
//!
//! A list may hold exact values (strings, numbers, `true`, `false`, `null`; numbers compare
//! numerically, so `5` matches `5.0`; `""` and `null` are different values) and operator
//! objects:
//!
//! | Operator | Example |
//! | --- | --- |
//! | `prefix` | `{"prefix": "us-"}`, `{"prefix": {"equals-ignore-case": "EventB"}}` |
//! | `suffix` | `{"suffix": ".png"}`, `{"suffix": {"equals-ignore-case": ".PNG"}}` |
//! | `equals-ignore-case` | `{"equals-ignore-case": "alice"}` |
//! | `wildcard` | `{"wildcard": "dir/*.png"}` (`*` is any run of characters; `\*` and `\\` are a literal star and backslash) |
//! | `anything-but` | `{"anything-but": "stopped"}`, `{"anything-but": [100, 200]}`, `{"anything-but": {"prefix": "init"}}`, also `suffix`, `equals-ignore-case` and `wildcard` (each a string or a list of strings) |
//! | `numeric` | `{"numeric": [">", 0, "<=", 5]}`, `{"numeric": ["=", 301.8]}` |
//! | `cidr` | `{"cidr": "10.0.0.0/24"}`, `{"cidr": "2001:db8::/64"}` |
//! | `exists` | `{"exists": true}`, `{"exists": false}` |
//!
//! # Semantics chosen where EventBridge leaves room
//!
//! * **Arrays in events.** Arrays are transparent: a field whose value is an array matches when
//!   any of its elements (arrays of arrays are flattened) matches. When a nested pattern meets
//!   an array of objects, the whole nested pattern must match within one element, so
//!   `{"items": {"a": [1], "b": [2]}}` does not match `{"items": [{"a": 1}, {"b": 2}]}`.
//! * **Leaves.** Only strings, numbers, booleans and `null` are leaf values. A list of values
//!   meeting an object in the event never matches (except `exists: false`, see below).
//! * **`exists`.** As EventBridge documents, `exists` applies to leaf values: `exists: true`
//!   holds when the field yields at least one leaf value (`null` counts, since it is a value);
//!   `exists: false` holds when it yields none. A missing field, an empty array (`[]`), an
//!   array holding only objects and an object (an intermediate node, not a leaf) are therefore
//!   all "missing" for `exists`.
//! * **`anything-but`** never matches a missing field; it holds when the field has a leaf value
//!   that is not excluded. Its string forms (`prefix`, `suffix`, `equals-ignore-case`,
//!   `wildcard`, a list of strings) exclude only strings, so a number, boolean or `null` is
//!   "anything but" them; a list of numbers excludes only those numbers. Excluded values must
//!   all be strings or all be numbers.
//! * **Type strictness.** `prefix`, `suffix`, `equals-ignore-case`, `wildcard` and `cidr`
//!   match strings only; `numeric` matches JSON numbers only (the string `"5"` is not a
//!   number); `cidr` matches strings that are IPv4 or IPv6 addresses inside the block.
//! * **Case folding** for `equals-ignore-case` is Unicode lowercasing, character by character.
//!
//! # Validation
//!
//! Errors name the path of the offending member (`detail.eventName: values must be a list`).
//! Refused, as EventBridge refuses them: a pattern or nested object that is empty or not an
//! object, a member that is neither an object nor a list, an empty list, nested lists, an
//! operator object with more or fewer than one key, unknown operators, operands of the wrong
//! type, `numeric` ranges that are malformed, empty or outside ±5.0e9, CIDR blocks that do not
//! parse, wildcards with consecutive `*` or unknown escapes, `$or` that is not a list of at
//! least two objects, patterns longer than [`MAX_PATTERN_LEN`] bytes of compact JSON and
//! objects nested deeper than [`MAX_DEPTH`].

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::{Map, Number, Value};

/// Longest pattern accepted, in bytes of compact JSON (EventBridge's limit on `EventPattern`).
pub const MAX_PATTERN_LEN: usize = 4096;

/// Deepest nesting of objects accepted (each `$or` alternative counts as a level).
pub const MAX_DEPTH: usize = 32;

/// Bounds of the numbers `numeric` accepts as operands, as EventBridge documents them.
pub const MAX_NUMERIC: f64 = 5.0e9;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The text is not JSON at all.
    #[error("event pattern is not valid JSON: {0}")]
    Json(String),
    /// The JSON is not a valid pattern; `path` names the member at fault (empty for the root).
    #[error("{}: {reason}", display_path(path))]
    Invalid { path: String, reason: String },
}

impl PatternError {
    fn invalid(path: &str, reason: impl Into<String>) -> Self {
        PatternError::Invalid {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "event pattern"
    } else {
        path
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A parsed, validated and pre-compiled EventBridge event pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: Node,
}

impl Pattern {
    /// Parses and validates a pattern given as JSON.
    pub fn parse(value: &Value) -> Result<Pattern, PatternError> {
        check_len(value)?;
        if !value.is_object() {
            return Err(PatternError::invalid("", "must be a JSON object"));
        }
        Ok(Pattern {
            root: compile_node(value, "", 1)?,
        })
    }

    /// Whether `event` (any JSON, usually an EventBridge envelope) matches the pattern.
    pub fn matches(&self, event: &Value) -> bool {
        match_nested(&self.root, Some(event))
    }
}

/// Parses a pattern from JSON text. Text over four times [`MAX_PATTERN_LEN`] is refused
/// before parsing (whitespace is allowed, the limit applies to the compact form).
impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Pattern, PatternError> {
        if text.len() > MAX_PATTERN_LEN * 4 {
            return Err(PatternError::invalid("", too_long()));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| PatternError::Json(e.to_string()))?;
        Pattern::parse(&value)
    }
}

fn too_long() -> String {
    format!("pattern is longer than {MAX_PATTERN_LEN} bytes")
}

/// Refuses values whose compact JSON exceeds [`MAX_PATTERN_LEN`], stopping as soon as it does
/// (which also bounds how deeply the serializer recurses).
fn check_len(value: &Value) -> Result<(), PatternError> {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            if self.0 > MAX_PATTERN_LEN {
                Err(io::Error::other("too long"))
            } else {
                Ok(buf.len())
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    // A valid pattern nests objects at most MAX_DEPTH deep, plus a leaf list, an operator
    // object and its argument; anything deeper is refused before serializing, which recurses.
    if nesting_exceeds(value, MAX_DEPTH + 4) {
        return Err(PatternError::invalid("", too_deep()));
    }
    serde_json::to_writer(Counter(0), value).map_err(|_| PatternError::invalid("", too_long()))
}

fn too_deep() -> String {
    format!("pattern is nested more than {MAX_DEPTH} levels deep")
}

/// Whether arrays and objects in `value` nest deeper than `limit`, without recursing.
fn nesting_exceeds(value: &Value, limit: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth > limit {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Compiled form

#[derive(Debug, Clone)]
struct Node {
    fields: Vec<(String, Field)>,
    ors: Vec<Vec<Node>>,
}

#[derive(Debug, Clone)]
enum Field {
    Nested(Node),
    Leaf(Leaf),
}

#[derive(Debug, Clone, Default)]
struct Leaf {
    strings: HashSet<String>,
    numbers: Vec<Number>,
    bools: [bool; 2],
    null: bool,
    ops: Vec<Op>,
    exists_true: bool,
    exists_false: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Prefix(String),
    PrefixIgnoreCase(String),
    Suffix(String),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    Numeric(Range),
    Cidr(IpNet),
    AnythingBut(AnythingBut),
}

#[derive(Debug, Clone)]
enum AnythingBut {
    Strings(HashSet<String>),
    Numbers(Vec<Number>),
    Prefix(Vec<String>),
    Suffix(Vec<String>),
    EqualsIgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

#[derive(Debug, Clone, Copy)]
struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

/// A wildcard split at its unescaped stars: `dir/*.png` is `["dir/", ".png"]`.
#[derive(Debug, Clone)]
struct Wildcard {
    segments: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Compilation

fn compile_node(value: &Value, path: &str, depth: usize) -> Result<Node, PatternError> {
    if depth > MAX_DEPTH {
        return Err(PatternError::invalid(path, too_deep()));
    }
    let Value::Object(map) = value else {
        return Err(PatternError::invalid(path, "must be a JSON object"));
    };
    if map.is_empty() {
        return Err(PatternError::invalid(path, "empty objects are not allowed"));
    }
    let mut node = Node {
        fields: Vec::with_capacity(map.len()),
        ors: Vec::new(),
    };
    for (key, member) in map {
        let child = join(path, key);
        if key == "$or" {
            node.ors.push(compile_or(member, &child, depth)?);
            continue;
        }
        let field = match member {
            Value::Object(_) => Field::Nested(compile_node(member, &child, depth + 1)?),
            Value::Array(items) => Field::Leaf(compile_leaf(items, &child)?),
            _ => return Err(PatternError::invalid(&child, "values must be a list")),
        };
        node.fields.push((key.clone(), field));
    }
    Ok(node)
}

fn compile_or(value: &Value, path: &str, depth: usize) -> Result<Vec<Node>, PatternError> {
    const NEED: &str = "$or must be a list of at least two objects";
    let Value::Array(items) = value else {
        return Err(PatternError::invalid(path, NEED));
    };
    if items.len() < 2 {
        return Err(PatternError::invalid(path, NEED));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item_path = format!("{path}[{i}]");
            if !item.is_object() {
                return Err(PatternError::invalid(&item_path, NEED));
            }
            compile_node(item, &item_path, depth + 1)
        })
        .collect()
}

fn compile_leaf(items: &[Value], path: &str) -> Result<Leaf, PatternError> {
    if items.is_empty() {
        return Err(PatternError::invalid(path, "empty lists are not allowed"));
    }
    let mut leaf = Leaf::default();
    for item in items {
        match item {
            Value::String(s) => {
                leaf.strings.insert(s.clone());
            }
            Value::Number(n) => leaf.numbers.push(n.clone()),
            Value::Bool(b) => leaf.bools[usize::from(*b)] = true,
            Value::Null => leaf.null = true,
            Value::Array(_) => {
                return Err(PatternError::invalid(path, "nested lists are not allowed"));
            }
            Value::Object(op) => compile_op(op, path, &mut leaf)?,
        }
    }
    Ok(leaf)
}

fn compile_op(op: &Map<String, Value>, path: &str, leaf: &mut Leaf) -> Result<(), PatternError> {
    let mut entries = op.iter();
    let (Some((name, arg)), None) = (entries.next(), entries.next()) else {
        return Err(PatternError::invalid(
            path,
            format!(
                "an operator object must have exactly one key, found {}",
                op.len()
            ),
        ));
    };
    let bad = |reason: &str| PatternError::invalid(path, format!("{name}: {reason}"));
    let compiled = match name.as_str() {
        "prefix" | "suffix" => {
            let prefix = name == "prefix";
            match arg {
                Value::String(s) if prefix => Op::Prefix(s.clone()),
                Value::String(s) => Op::Suffix(s.clone()),
                Value::Object(inner) => match ignore_case_arg(inner) {
                    Some(s) if prefix => Op::PrefixIgnoreCase(lower(s)),
                    Some(s) => Op::SuffixIgnoreCase(lower(s)),
                    None => {
                        return Err(bad(
                            "expects a string or {\"equals-ignore-case\": \"string\"}",
                        ));
                    }
                },
                _ => {
                    return Err(bad(
                        "expects a string or {\"equals-ignore-case\": \"string\"}",
                    ));
                }
            }
        }
        "equals-ignore-case" => match arg {
            Value::String(s) => Op::EqualsIgnoreCase(lower(s)),
            _ => return Err(bad("expects a string")),
        },
        "wildcard" => match arg {
            Value::String(s) => Op::Wildcard(Wildcard::parse(s).map_err(|r| bad(&r))?),
            _ => return Err(bad("expects a string")),
        },
        "numeric" => Op::Numeric(compile_range(arg).map_err(|r| bad(&r))?),
        "cidr" => match arg {
            Value::String(s) => Op::Cidr(parse_cidr(s).map_err(|r| bad(&r))?),
            _ => return Err(bad("expects a string such as \"10.0.0.0/24\"")),
        },
        "exists" => {
            match arg {
                Value::Bool(true) => leaf.exists_true = true,
                Value::Bool(false) => leaf.exists_false = true,
                _ => return Err(bad("expects true or false")),
            }
            return Ok(());
        }
        "anything-but" => Op::AnythingBut(compile_anything_but(arg).map_err(|r| bad(&r))?),
        other => {
            return Err(PatternError::invalid(
                path,
                format!("unknown operator \"{other}\""),
            ));
        }
    };
    leaf.ops.push(compiled);
    Ok(())
}

fn ignore_case_arg(inner: &Map<String, Value>) -> Option<&str> {
    if inner.len() != 1 {
        return None;
    }
    inner.get("equals-ignore-case").and_then(Value::as_str)
}

fn compile_range(arg: &Value) -> Result<Range, String> {
    const SHAPE: &str = "expects a list such as [\">\", 0, \"<=\", 5]";
    let Value::Array(items) = arg else {
        return Err(SHAPE.to_owned());
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(SHAPE.to_owned());
    }
    let mut range = Range {
        lower: None,
        upper: None,
    };
    for pair in items.chunks(2) {
        let Value::String(operator) = &pair[0] else {
            return Err(format!(
                "{} is not a comparison (expected one of =, <, <=, >, >=)",
                pair[0]
            ));
        };
        let Some(operand) = pair[1].as_f64() else {
            return Err(format!(
                "\"{operator}\" must be followed by a number, not {}",
                pair[1]
            ));
        };
        if !(-MAX_NUMERIC..=MAX_NUMERIC).contains(&operand) {
            return Err(format!(
                "{operand} is outside the supported range -5.0e9 to 5.0e9"
            ));
        }
        let slot = match operator.as_str() {
            "=" => {
                if items.len() != 2 {
                    return Err("\"=\" cannot be combined with another comparison".to_owned());
                }
                range.lower = Some((operand, true));
                range.upper = Some((operand, true));
                continue;
            }
            ">" | ">=" => &mut range.lower,
            "<" | "<=" => &mut range.upper,
            other => {
                return Err(format!(
                    "unknown comparison \"{other}\" (expected one of =, <, <=, >, >=)"
                ));
            }
        };
        if slot.is_some() {
            return Err(
                "a range needs one lower bound (> or >=) and one upper bound (< or <=)".to_owned(),
            );
        }
        *slot = Some((operand, operator.len() == 2));
    }
    if let (Some((low, _)), Some((high, _))) = (range.lower, range.upper)
        && items.len() == 4
        && low >= high
    {
        return Err(format!(
            "the lower bound {low} must be less than the upper bound {high}"
        ));
    }
    Ok(range)
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if !s.contains('/') {
        return Err(format!(
            "\"{s}\" is not a CIDR block (expected an address/prefix-length such as 10.0.0.0/24)"
        ));
    }
    IpNet::from_str(s)
        .map(|net| net.trunc())
        .map_err(|_| format!("\"{s}\" is not a valid IPv4 or IPv6 CIDR block"))
}

fn compile_anything_but(arg: &Value) -> Result<AnythingBut, String> {
    match arg {
        Value::String(s) => Ok(AnythingBut::Strings(HashSet::from([s.clone()]))),
        Value::Number(n) => Ok(AnythingBut::Numbers(vec![n.clone()])),
        Value::Array(items) => {
            if items.is_empty() {
                return Err("the list of values must not be empty".to_owned());
            }
            if items.iter().all(Value::is_string) {
                Ok(AnythingBut::Strings(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                ))
            } else if items.iter().all(Value::is_number) {
                Ok(AnythingBut::Numbers(
                    items
                        .iter()
                        .filter_map(|v| v.as_number().cloned())
                        .collect(),
                ))
            } else {
                Err("the list must hold only strings or only numbers".to_owned())
            }
        }
        Value::Object(inner) => {
            let mut entries = inner.iter();
            let (Some((name, value)), None) = (entries.next(), entries.next()) else {
                return Err(
                    "expects a value, a list, or an object with one of prefix, suffix, equals-ignore-case, wildcard"
                        .to_owned(),
                );
            };
            if !matches!(
                name.as_str(),
                "prefix" | "suffix" | "equals-ignore-case" | "wildcard"
            ) {
                return Err(format!(
                    "unknown operator \"{name}\" (expected prefix, suffix, equals-ignore-case or wildcard)"
                ));
            }
            let strings = string_or_strings(value)
                .ok_or_else(|| format!("{name} expects a string or a non-empty list of strings"))?;
            match name.as_str() {
                "prefix" => Ok(AnythingBut::Prefix(strings)),
                "suffix" => Ok(AnythingBut::Suffix(strings)),
                "equals-ignore-case" => Ok(AnythingBut::EqualsIgnoreCase(
                    strings.iter().map(|s| lower(s)).collect(),
                )),
                _ => Ok(AnythingBut::Wildcard(
                    strings
                        .iter()
                        .map(|s| Wildcard::parse(s))
                        .collect::<Result<_, _>>()?,
                )),
            }
        }
        _ => Err("expects a string, a number, a list of them, or an operator object".to_owned()),
    }
}

fn string_or_strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

impl Wildcard {
    fn parse(text: &str) -> Result<Wildcard, String> {
        let mut segments = vec![String::new()];
        let mut chars = text.chars().peekable();
        let mut after_star = false;
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if after_star {
                        return Err(format!("\"{text}\" has consecutive wildcard characters"));
                    }
                    segments.push(String::new());
                    after_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => {
                        segments.last_mut().expect("never empty").push(escaped)
                    }
                    _ => {
                        return Err(format!(
                            "\"{text}\" has an invalid escape (only \\* and \\\\ are allowed)"
                        ));
                    }
                },
                other => segments.last_mut().expect("never empty").push(other),
            }
            after_star = false;
        }
        Ok(Wildcard { segments })
    }

    fn matches(&self, s: &str) -> bool {
        let segs = &self.segments;
        let (first, last) = (&segs[0], &segs[segs.len() - 1]);
        if segs.len() == 1 {
            return s == first;
        }
        if s.len() < first.len() + last.len() || !s.starts_with(first.as_str()) {
            return false;
        }
        if !s.ends_with(last.as_str()) {
            return false;
        }
        let mut rest = &s[first.len()..s.len() - last.len()];
        for seg in &segs[1..segs.len() - 1] {
            match rest.find(seg.as_str()) {
                Some(at) => rest = &rest[at + seg.len()..],
                None => return false,
            }
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Matching

fn match_node(node: &Node, object: Option<&Map<String, Value>>) -> bool {
    node.fields.iter().all(|(key, field)| {
        let value = object.and_then(|o| o.get(key));
        match field {
            Field::Nested(inner) => match_nested(inner, value),
            Field::Leaf(leaf) => leaf.matches(value),
        }
    }) && node
        .ors
        .iter()
        .all(|alternatives| alternatives.iter().any(|alt| match_node(alt, object)))
}

/// A nested pattern matches when one of the objects the value holds (itself, or the elements
/// of arrays) matches it; with no object at all, it is matched against a missing object so that
/// `exists: false` can hold.
fn match_nested(node: &Node, value: Option<&Value>) -> bool {
    let mut found = false;
    if let Some(value) = value {
        let matched = any_element(value, &mut |v| match v {
            Value::Object(o) => {
                found = true;
                match_node(node, Some(o))
            }
            _ => false,
        });
        if matched {
            return true;
        }
    }
    !found && match_node(node, None)
}

impl Leaf {
    fn matches(&self, value: Option<&Value>) -> bool {
        let Some(value) = value else {
            return self.exists_false;
        };
        if any_element(value, &mut |v| self.value_matches(v)) {
            return true;
        }
        if self.exists_true || self.exists_false {
            let has_leaf = any_element(value, &mut |v| !v.is_object());
            return (self.exists_true && has_leaf) || (self.exists_false && !has_leaf);
        }
        false
    }

    fn value_matches(&self, value: &Value) -> bool {
        let exact = match value {
            Value::String(s) => self.strings.contains(s.as_str()),
            Value::Number(n) => self.numbers.iter().any(|m| numbers_equal(m, n)),
            Value::Bool(b) => self.bools[usize::from(*b)],
            Value::Null => self.null,
            Value::Object(_) | Value::Array(_) => return false,
        };
        exact || self.ops.iter().any(|op| op.matches(value))
    }
}

impl Op {
    fn matches(&self, value: &Value) -> bool {
        if let Op::AnythingBut(but) = self {
            return !but.excludes(value);
        }
        if let Op::Numeric(range) = self {
            return value.as_f64().is_some_and(|x| range.contains(x));
        }
        let Value::String(s) = value else {
            return false;
        };
        match self {
            Op::Prefix(p) => s.starts_with(p.as_str()),
            Op::PrefixIgnoreCase(p) => starts_with_ignore_case(s, p),
            Op::Suffix(p) => s.ends_with(p.as_str()),
            Op::SuffixIgnoreCase(p) => ends_with_ignore_case(s, p),
            Op::EqualsIgnoreCase(p) => equals_ignore_case(s, p),
            Op::Wildcard(w) => w.matches(s),
            Op::Cidr(net) => s.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip)),
            Op::AnythingBut(_) | Op::Numeric(_) => false,
        }
    }
}

impl AnythingBut {
    fn excludes(&self, value: &Value) -> bool {
        if let (AnythingBut::Numbers(numbers), Value::Number(n)) = (self, value) {
            return numbers.iter().any(|m| numbers_equal(m, n));
        }
        let Value::String(s) = value else {
            return false;
        };
        match self {
            AnythingBut::Strings(set) => set.contains(s.as_str()),
            AnythingBut::Numbers(_) => false,
            AnythingBut::Prefix(ps) => ps.iter().any(|p| s.starts_with(p.as_str())),
            AnythingBut::Suffix(ps) => ps.iter().any(|p| s.ends_with(p.as_str())),
            AnythingBut::EqualsIgnoreCase(ps) => ps.iter().any(|p| equals_ignore_case(s, p)),
            AnythingBut::Wildcard(ws) => ws.iter().any(|w| w.matches(s)),
        }
    }
}

impl Range {
    fn contains(&self, x: f64) -> bool {
        let above = match self.lower {
            None => true,
            Some((low, true)) => x >= low,
            Some((low, false)) => x > low,
        };
        let below = match self.upper {
            None => true,
            Some((high, true)) => x <= high,
            Some((high, false)) => x < high,
        };
        above && below
    }
}

/// Calls `f` on `value`, or on each element of it if it is an array (arrays of arrays are
/// flattened without recursion), until `f` returns true.
fn any_element<'a>(value: &'a Value, f: &mut impl FnMut(&'a Value) -> bool) -> bool {
    let Value::Array(items) = value else {
        return f(value);
    };
    let mut stack: Vec<std::slice::Iter<'a, Value>> = Vec::new();
    let mut current = items.iter();
    loop {
        match current.next() {
            Some(Value::Array(inner)) => {
                stack.push(std::mem::replace(&mut current, inner.iter()));
            }
            Some(item) => {
                if f(item) {
                    return true;
                }
            }
            None => match stack.pop() {
                Some(outer) => current = outer,
                None => return false,
            },
        }
    }
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

fn equals_ignore_case(s: &str, lowered: &str) -> bool {
    s.chars().flat_map(char::to_lowercase).eq(lowered.chars())
}

fn starts_with_ignore_case(s: &str, lowered: &str) -> bool {
    let mut folded = s.chars().flat_map(char::to_lowercase);
    lowered.chars().all(|c| folded.next() == Some(c))
}

fn ends_with_ignore_case(s: &str, lowered: &str) -> bool {
    let mut folded = s.chars().rev().flat_map(|c| c.to_lowercase().rev());
    lowered.chars().rev().all(|c| folded.next() == Some(c))
}
