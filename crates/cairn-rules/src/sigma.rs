//! Sigma detection rules for the `aws`/`cloudtrail` log source: loading, validation and
//! matching against CloudTrail records.
//!
//! A rule is one YAML document. Everything it says is checked and compiled once, when it is
//! loaded (lowercased values, wildcard patterns, regular expressions, CIDR blocks and the
//! condition); a rule that Cairn cannot evaluate faithfully is refused with a reason naming the
//! rule and the part at fault, never half-applied.
//!
//! # What is supported
//!
//! * **Log source.** `logsource` must say `product: aws` and `service: cloudtrail`; any other
//!   product, service or a `category` is refused.
//! * **Selections.** Each named selection under `detection` is a map (its fields AND) or a list
//!   of maps (OR). Keyword selections (a list of plain values) are refused: CloudTrail records
//!   have no free-text message field to search.
//! * **Fields** are dotted paths (`userIdentity.type`) walking into nested objects; an array on
//!   the way is transparent (any element may match), and a key that itself contains dots is
//!   found too.
//! * **Values.** A list of values is an OR (`|all` makes it an AND). Strings compare
//!   case-insensitively, with `*` (any run of characters) and `?` (one character) as wildcards;
//!   `\*`, `\?` and `\\` are a literal star, question mark and backslash, and any other
//!   backslash is literal. Numbers and booleans in the rule compare with the text of the event
//!   value, so `readOnly: 'false'` matches the JSON `false` and `5` matches `5` or `"5"`.
//!   `null` matches a missing field or a JSON `null` (an empty array counts as missing); `''`
//!   matches only the empty string.
//! * **Modifiers:** `contains`, `startswith`, `endswith`, `all`, `cased` (case-sensitive
//!   comparison), `re` (with the sub-modifiers `i`, `m`, `s`; case-sensitive unless `i`),
//!   `cidr`, `exists` (the field is present, even as `null`), `lt`/`lte`/`gt`/`gte` (numeric; a
//!   string holding a number counts) and `fieldref` (the value names another field of the same
//!   record; may be combined with `contains`, `startswith`, `endswith` and `cased`). Refused:
//!   `windash`, `base64`, `base64offset`, `wide`/`utf16*`, `expand` and any unknown modifier.
//! * **Condition:** selection names, `and`, `or`, `not`, parentheses, `1 of name*`,
//!   `all of name*`, `N of ...`, `1 of them`, `all of them` (`them` leaves out names that start
//!   with `_`), with `*` and `?` wildcards in names; a list of conditions is an OR.
//!   Aggregations (`| count() by ...`) and `near` are refused, as are undefined names and
//!   patterns that name no selection.
//!
//! Metadata (`title`, `id`, `status`, `description`, `author`, `references`, `tags`, `level`,
//! `falsepositives`, `date`, `modified`) is kept as given; the Detection Rule License asks that
//! author and references travel with a rule.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Largest rule file accepted, in bytes.
pub const MAX_RULE_LEN: usize = 1 << 20;

/// Deepest YAML nesting accepted in a rule.
const MAX_YAML_DEPTH: usize = 32;

/// Deepest parenthesis / `not` nesting accepted in a condition.
const MAX_CONDITION_DEPTH: usize = 64;

/// Deepest nesting of arrays walked through in an event.
const MAX_EVENT_DEPTH: usize = 64;

/// Largest compiled regular expression accepted, in bytes.
const MAX_REGEX_SIZE: usize = 1 << 20;

/// Why a Sigma rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigmaError {
    /// The text is not a single YAML document.
    #[error("Sigma rule is not valid YAML: {0}")]
    Yaml(String),
    /// The rule is YAML but Cairn cannot evaluate it; `rule` is its title (or id), `part` the
    /// member at fault (`detection.selection.eventName|re`, `condition`, ...).
    #[error("Sigma rule {rule:?}: {part}: {reason}")]
    Invalid {
        rule: String,
        part: String,
        reason: String,
    },
}

/// A parsed, validated and pre-compiled Sigma rule for CloudTrail records.
#[derive(Debug, Clone)]
pub struct SigmaRule {
    pub title: String,
    pub id: Option<String>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub references: Vec<String>,
    pub tags: Vec<String>,
    pub level: Option<String>,
    pub falsepositives: Vec<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    selections: Vec<Selection>,
    condition: Cond,
}

impl SigmaRule {
    /// Parses, validates and compiles one rule given as YAML text.
    pub fn parse(text: &str) -> Result<SigmaRule, SigmaError> {
        if text.len() > MAX_RULE_LEN {
            return Err(SigmaError::Yaml(format!(
                "rule is longer than {MAX_RULE_LEN} bytes"
            )));
        }
        let doc = parse_yaml(text)?;
        Builder::new(&doc).build(&doc)
    }

    /// Whether the rule fires on this CloudTrail record.
    pub fn matches(&self, event: &Value) -> bool {
        self.condition.eval(&self.selections, event)
    }

    /// The values (lower-cased) the top-level-or-dotted `field` must have for the rule to
    /// fire, when the rule says so plainly (an exact value list the condition requires);
    /// `None` when any value might do. Used to skip events cheaply; never narrower than the
    /// rule.
    pub fn required_values(&self, field: &str) -> Option<HashSet<String>> {
        self.condition.required(&self.selections, field)
    }

    /// The names of the rule's selections, in the order they were written.
    pub fn selection_names(&self) -> impl Iterator<Item = &str> {
        self.selections.iter().map(|s| s.name.as_str())
    }
}

impl FromStr for SigmaRule {
    type Err = SigmaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigmaRule::parse(s)
    }
}

/// Loads every `.yml` / `.yaml` file under `dir` (recursively, in path order). Returns the
/// rules that loaded and, for every file refused (or directory that could not be read), its
/// path and the reason.
pub fn load_dir(dir: impl AsRef<Path>) -> (Vec<SigmaRule>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut refused = Vec::new();
    collect_files(dir.as_ref(), 0, &mut files, &mut refused);
    files.sort();
    let mut rules = Vec::new();
    for path in files {
        match std::fs::read(&path) {
            Err(e) => refused.push((path, format!("cannot read: {e}"))),
            Ok(bytes) if bytes.len() > MAX_RULE_LEN => refused.push((
                path,
                format!("rule file is longer than {MAX_RULE_LEN} bytes"),
            )),
            Ok(bytes) => match String::from_utf8(bytes) {
                Err(_) => refused.push((path, "rule file is not UTF-8".to_owned())),
                Ok(text) => match SigmaRule::parse(&text) {
                    Ok(rule) => rules.push(rule),
                    Err(e) => refused.push((path, e.to_string())),
                },
            },
        }
    }
    (rules, refused)
}

fn collect_files(
    dir: &Path,
    depth: usize,
    files: &mut Vec<PathBuf>,
    refused: &mut Vec<(PathBuf, String)>,
) {
    if depth > 16 {
        refused.push((dir.to_owned(), "directory nested too deeply".to_owned()));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            refused.push((dir.to_owned(), format!("cannot read directory: {e}")));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                refused.push((dir.to_owned(), format!("cannot read directory: {e}")));
                continue;
            }
        };
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_files(&path, depth + 1, files, refused);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            files.push(path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// YAML: a small tree built from yaml-rust2's events (aliases are refused, depth is bounded).

#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Null,
    /// A scalar's text and whether it resolved to a string (quoted, or plain but not a
    /// number/boolean).
    Scalar(String, ScalarKind),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ScalarKind {
    Str,
    Bool,
    Number,
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Yaml::Null => "null",
            Yaml::Scalar(_, ScalarKind::Str) => "a string",
            Yaml::Scalar(_, ScalarKind::Bool) => "a boolean",
            Yaml::Scalar(_, ScalarKind::Number) => "a number",
            Yaml::Seq(_) => "a list",
            Yaml::Map(_) => "a map",
        }
    }
}

enum Frame {
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>, Option<String>),
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    docs: Vec<Yaml>,
    error: Option<String>,
}

impl TreeBuilder {
    fn push_value(&mut self, value: Yaml) {
        match self.stack.last_mut() {
            None => self.docs.push(value),
            Some(Frame::Seq(items)) => items.push(value),
            Some(Frame::Map(entries, key)) => match key.take() {
                None => match value {
                    Yaml::Scalar(text, _) => {
                        if entries.iter().any(|(k, _)| *k == text) {
                            self.error = Some(format!("duplicate key {text:?}"));
                        } else {
                            *key = Some(text);
                        }
                    }
                    Yaml::Null => *key = Some(String::new()),
                    _ => self.error = Some("map keys must be scalars".to_owned()),
                },
                Some(k) => entries.push((k, value)),
            },
        }
    }

    fn open(&mut self, frame: Frame) {
        if self.stack.len() >= MAX_YAML_DEPTH {
            self.error = Some(format!("nested deeper than {MAX_YAML_DEPTH} levels"));
        } else {
            self.stack.push(frame);
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Alias(_) => self.error = Some("aliases are not supported".to_owned()),
            Event::Scalar(text, style, _, tag) => {
                let value = if style != TScalarStyle::Plain
                    || tag.as_ref().is_some_and(|t| t.suffix == "str")
                {
                    Yaml::Scalar(text, ScalarKind::Str)
                } else {
                    match yaml_rust2::Yaml::from_str(&text) {
                        yaml_rust2::Yaml::Null => Yaml::Null,
                        yaml_rust2::Yaml::Boolean(_) => Yaml::Scalar(text, ScalarKind::Bool),
                        yaml_rust2::Yaml::Integer(_) | yaml_rust2::Yaml::Real(_) => {
                            Yaml::Scalar(text, ScalarKind::Number)
                        }
                        _ => Yaml::Scalar(text, ScalarKind::Str),
                    }
                };
                self.push_value(value);
            }
            Event::SequenceStart(..) => self.open(Frame::Seq(Vec::new())),
            Event::MappingStart(..) => self.open(Frame::Map(Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(items)) => self.push_value(Yaml::Seq(items)),
                Some(Frame::Map(entries, _)) => self.push_value(Yaml::Map(entries)),
                None => self.error = Some("unbalanced YAML structure".to_owned()),
            },
            _ => {}
        }
    }
}

fn parse_yaml(text: &str) -> Result<Yaml, SigmaError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    // Events are pulled one at a time (the parser's own `load` recurses once per nesting
    // level), so that the depth limit stops deep input before anything deepens the stack.
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| SigmaError::Yaml(e.to_string()))?;
        if event == Event::StreamEnd {
            break;
        }
        builder.on_event(event, mark);
        if let Some(e) = builder.error {
            return Err(SigmaError::Yaml(e));
        }
    }
    let mut docs = builder.docs.into_iter();
    match (docs.next(), docs.next()) {
        (None, _) => Err(SigmaError::Yaml(
            "the text holds no YAML document".to_owned(),
        )),
        (Some(_), Some(_)) => Err(SigmaError::Yaml(
            "more than one YAML document (rule collections are not supported)".to_owned(),
        )),
        (Some(doc), None) => Ok(doc),
    }
}

// ---------------------------------------------------------------------------------------------
// Building a rule.

struct Builder {
    name: String,
}

impl Builder {
    fn new(doc: &Yaml) -> Builder {
        let pick = |k: &str| match doc.get(k) {
            Some(Yaml::Scalar(s, _)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        Builder {
            name: pick("title")
                .or_else(|| pick("id"))
                .unwrap_or_else(|| "<untitled>".to_owned()),
        }
    }

    fn err(&self, part: impl Into<String>, reason: impl Into<String>) -> SigmaError {
        SigmaError::Invalid {
            rule: self.name.clone(),
            part: part.into(),
            reason: reason.into(),
        }
    }

    fn opt_string(&self, doc: &Yaml, key: &str) -> Result<Option<String>, SigmaError> {
        match doc.get(key) {
            None | Some(Yaml::Null) => Ok(None),
            Some(Yaml::Scalar(s, _)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.err(key, format!("must be a string, not {}", other.kind_name())))
            }
        }
    }

    fn string_list(&self, doc: &Yaml, key: &str) -> Result<Vec<String>, SigmaError> {
        match doc.get(key) {
            None | Some(Yaml::Null) => Ok(Vec::new()),
            Some(Yaml::Scalar(s, _)) => Ok(vec![s.clone()]),
            Some(Yaml::Seq(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Yaml::Scalar(s, _) => Ok(s.clone()),
                    other => Err(self.err(
                        format!("{key}[{i}]"),
                        format!("must be a string, not {}", other.kind_name()),
                    )),
                })
                .collect(),
            Some(other) => Err(self.err(
                key,
                format!("must be a list of strings, not {}", other.kind_name()),
            )),
        }
    }

    fn build(&self, doc: &Yaml) -> Result<SigmaRule, SigmaError> {
        if !matches!(doc, Yaml::Map(_)) {
            return Err(self.err("rule", format!("must be a map, not {}", doc.kind_name())));
        }
        let title = self
            .opt_string(doc, "title")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.err("title", "missing"))?;
        self.check_logsource(doc)?;
        let detection = match doc.get("detection") {
            None | Some(Yaml::Null) => return Err(self.err("detection", "missing")),
            Some(Yaml::Map(entries)) => entries,
            Some(other) => {
                return Err(self.err(
                    "detection",
                    format!("must be a map, not {}", other.kind_name()),
                ));
            }
        };
        let mut selections = Vec::new();
        let mut condition = None;
        for (name, value) in detection {
            match name.as_str() {
                "condition" => condition = Some(value),
                "timeframe" => {
                    return Err(self.err(
                        "detection.timeframe",
                        "timeframes (correlations over time) are not supported",
                    ));
                }
                _ => selections.push(self.selection(name, value)?),
            }
        }
        let condition = match condition {
            None | Some(Yaml::Null) => return Err(self.err("detection.condition", "missing")),
            Some(Yaml::Scalar(text, _)) => self.condition(text, &selections)?,
            Some(Yaml::Seq(items)) if !items.is_empty() => {
                let mut alternatives = Vec::new();
                for item in items {
                    match item {
                        Yaml::Scalar(text, _) => {
                            alternatives.push(self.condition(text, &selections)?)
                        }
                        other => {
                            return Err(self.err(
                                "detection.condition",
                                format!("must be a string, not {}", other.kind_name()),
                            ));
                        }
                    }
                }
                Cond::Or(alternatives)
            }
            Some(other) => {
                return Err(self.err(
                    "detection.condition",
                    format!(
                        "must be a string or a non-empty list of strings, not {}",
                        other.kind_name()
                    ),
                ));
            }
        };
        Ok(SigmaRule {
            title,
            id: self.opt_string(doc, "id")?,
            status: self.opt_string(doc, "status")?,
            description: self.opt_string(doc, "description")?,
            author: self.opt_string(doc, "author")?,
            references: self.string_list(doc, "references")?,
            tags: self.string_list(doc, "tags")?,
            level: self.opt_string(doc, "level")?,
            falsepositives: self.string_list(doc, "falsepositives")?,
            date: self.opt_string(doc, "date")?,
            modified: self.opt_string(doc, "modified")?,
            selections,
            condition,
        })
    }

    fn check_logsource(&self, doc: &Yaml) -> Result<(), SigmaError> {
        let Some(Yaml::Map(entries)) = doc.get("logsource") else {
            return Err(self.err(
                "logsource",
                "missing (Cairn evaluates rules for product: aws, service: cloudtrail)",
            ));
        };
        let mut product = None;
        let mut service = None;
        for (key, value) in entries {
            let text = match value {
                Yaml::Scalar(s, _) => s.as_str(),
                Yaml::Null => "",
                other => {
                    return Err(self.err(
                        format!("logsource.{key}"),
                        format!("must be a string, not {}", other.kind_name()),
                    ));
                }
            };
            match key.as_str() {
                "product" => product = Some(text),
                "service" => service = Some(text),
                "category" => {
                    return Err(self.err(
                        "logsource.category",
                        format!(
                            "category {text:?} is not a CloudTrail log source (Cairn evaluates rules for product: aws, service: cloudtrail)"
                        ),
                    ));
                }
                _ => {}
            }
        }
        if !product.is_some_and(|p| p.eq_ignore_ascii_case("aws")) {
            return Err(self.err(
                "logsource.product",
                format!(
                    "{:?} is not a log source Cairn holds (it evaluates rules for product: aws, service: cloudtrail)",
                    product.unwrap_or("")
                ),
            ));
        }
        if !service.is_some_and(|s| s.eq_ignore_ascii_case("cloudtrail")) {
            return Err(self.err(
                "logsource.service",
                format!(
                    "{:?} is not a log source Cairn holds (it evaluates rules for product: aws, service: cloudtrail)",
                    service.unwrap_or("")
                ),
            ));
        }
        Ok(())
    }

    fn selection(&self, name: &str, value: &Yaml) -> Result<Selection, SigmaError> {
        let part = format!("detection.{name}");
        if name.is_empty() {
            return Err(self.err(part, "a selection needs a name"));
        }
        let alternatives = match value {
            Yaml::Map(_) => vec![self.field_map(&part, value)?],
            Yaml::Seq(items) if items.is_empty() => {
                return Err(self.err(part, "empty list"));
            }
            Yaml::Seq(items) => {
                let mut alternatives = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Yaml::Map(_) => {
                            alternatives.push(self.field_map(&format!("{part}[{i}]"), item)?)
                        }
                        _ => {
                            return Err(self.err(
                                part,
                                "keyword search (a list of plain values) is not supported: CloudTrail records have no message field to search; name the field",
                            ));
                        }
                    }
                }
                alternatives
            }
            Yaml::Scalar(..) | Yaml::Null => {
                return Err(self.err(
                    part,
                    "keyword search (a plain value) is not supported: CloudTrail records have no message field to search; name the field",
                ));
            }
        };
        Ok(Selection {
            name: name.to_owned(),
            alternatives,
        })
    }

    fn field_map(&self, part: &str, value: &Yaml) -> Result<Vec<FieldMatch>, SigmaError> {
        let Yaml::Map(entries) = value else {
            return Err(self.err(part, "must be a map"));
        };
        if entries.is_empty() {
            return Err(self.err(part, "empty map"));
        }
        entries
            .iter()
            .map(|(key, values)| self.field(&format!("{part}.{key}"), key, values))
            .collect()
    }

    fn field(&self, part: &str, key: &str, values: &Yaml) -> Result<FieldMatch, SigmaError> {
        let mut pieces = key.split('|');
        let path = pieces.next().unwrap_or_default();
        if path.is_empty() {
            return Err(self.err(
                part,
                "keyword search (a value without a field) is not supported: CloudTrail records have no message field to search",
            ));
        }
        let mods = self.modifiers(part, pieces)?;
        let items: Vec<&Yaml> = match values {
            Yaml::Seq(items) if items.is_empty() => {
                return Err(self.err(part, "empty list of values"));
            }
            Yaml::Seq(items) => items.iter().collect(),
            other => vec![other],
        };
        if let Some(Kind::Exists) = mods.kind {
            return match items.as_slice() {
                [Yaml::Scalar(text, ScalarKind::Bool | ScalarKind::Str)]
                    if matches!(text.to_ascii_lowercase().as_str(), "true" | "false") =>
                {
                    Ok(FieldMatch {
                        path: path.to_owned(),
                        all: false,
                        matchers: vec![Matcher::Exists(text.eq_ignore_ascii_case("true"))],
                    })
                }
                _ => Err(self.err(part, "exists takes a single value, true or false")),
            };
        }
        let mut matchers = Vec::new();
        for item in items {
            matchers.push(self.matcher(part, &mods, item)?);
        }
        Ok(FieldMatch {
            path: path.to_owned(),
            all: mods.all,
            matchers,
        })
    }

    fn modifiers<'a>(
        &self,
        part: &str,
        pieces: impl Iterator<Item = &'a str>,
    ) -> Result<Modifiers, SigmaError> {
        let mut mods = Modifiers::default();
        for piece in pieces {
            let name = piece.to_ascii_lowercase();
            let conflict = |a: &str| {
                self.err(
                    part,
                    format!("modifier {name:?} cannot be combined with {a:?}"),
                )
            };
            match name.as_str() {
                "contains" | "startswith" | "endswith" => {
                    if let Some(op) = mods.op {
                        return Err(conflict(op.name()));
                    }
                    mods.op = Some(match name.as_str() {
                        "contains" => Op::Contains,
                        "startswith" => Op::StartsWith,
                        _ => Op::EndsWith,
                    });
                }
                "all" => mods.all = true,
                "cased" => mods.cased = true,
                "fieldref" => mods.fieldref = true,
                "re" | "cidr" | "exists" | "lt" | "lte" | "gt" | "gte" => {
                    if let Some(kind) = mods.kind {
                        return Err(conflict(kind.name()));
                    }
                    mods.kind = Some(match name.as_str() {
                        "re" => Kind::Re,
                        "cidr" => Kind::Cidr,
                        "exists" => Kind::Exists,
                        "lt" => Kind::Num(NumOp::Lt),
                        "lte" => Kind::Num(NumOp::Lte),
                        "gt" => Kind::Num(NumOp::Gt),
                        _ => Kind::Num(NumOp::Gte),
                    });
                }
                "i" | "m" | "s" => {
                    if mods.kind != Some(Kind::Re) {
                        return Err(self.err(
                            part,
                            format!("{name:?} is a sub-modifier of \"re\" and must follow it"),
                        ));
                    }
                    match name.as_str() {
                        "i" => mods.re_i = true,
                        "m" => mods.re_m = true,
                        _ => mods.re_s = true,
                    }
                }
                "windash" | "base64" | "base64offset" | "wide" | "utf16" | "utf16le"
                | "utf16be" | "expand" => {
                    return Err(self.err(
                        part,
                        format!(
                            "modifier {name:?} is not supported (it transforms values for Windows and command-line logs, not CloudTrail records)"
                        ),
                    ));
                }
                _ => return Err(self.err(part, format!("unknown modifier {piece:?}"))),
            }
        }
        if let (Some(op), Some(kind)) = (mods.op, mods.kind) {
            return Err(self.err(
                part,
                format!(
                    "modifier {:?} cannot be combined with {:?}",
                    op.name(),
                    kind.name()
                ),
            ));
        }
        if let (true, Some(kind)) = (mods.fieldref, mods.kind) {
            return Err(self.err(
                part,
                format!(
                    "modifier \"fieldref\" cannot be combined with {:?}",
                    kind.name()
                ),
            ));
        }
        Ok(mods)
    }

    fn matcher(&self, part: &str, mods: &Modifiers, item: &Yaml) -> Result<Matcher, SigmaError> {
        let text = match item {
            Yaml::Null => {
                if mods.op.is_some() || mods.kind.is_some() || mods.fieldref {
                    return Err(self.err(part, "null cannot be used with modifiers"));
                }
                return Ok(Matcher::Null);
            }
            Yaml::Scalar(text, _) => text.as_str(),
            other => {
                return Err(self.err(
                    part,
                    format!(
                        "values must be strings, numbers, booleans or null, not {}",
                        other.kind_name()
                    ),
                ));
            }
        };
        if mods.fieldref {
            if text.is_empty() {
                return Err(self.err(part, "fieldref needs a field name"));
            }
            return Ok(Matcher::FieldRef {
                path: text.to_owned(),
                op: mods.op,
                cased: mods.cased,
            });
        }
        match mods.kind {
            Some(Kind::Re) => {
                let re = RegexBuilder::new(text)
                    .case_insensitive(mods.re_i)
                    .multi_line(mods.re_m)
                    .dot_matches_new_line(mods.re_s)
                    .size_limit(MAX_REGEX_SIZE)
                    .build()
                    .map_err(|e| self.err(part, format!("bad regular expression: {e}")))?;
                Ok(Matcher::Re(re))
            }
            Some(Kind::Cidr) => {
                let net = IpNet::from_str(text)
                    .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
                    .map_err(|_| self.err(part, format!("{text:?} is not a CIDR block")))?;
                Ok(Matcher::Cidr(net))
            }
            Some(Kind::Num(op)) => {
                let n = text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| self.err(part, format!("{text:?} is not a number")))?;
                Ok(Matcher::Num(op, n))
            }
            Some(Kind::Exists) => Err(self.err(part, "exists takes a single value, true or false")),
            None => {
                let wildcards = matches!(item, Yaml::Scalar(_, ScalarKind::Str));
                Ok(Matcher::Str(Glob::compile(
                    text, wildcards, mods.op, mods.cased,
                )))
            }
        }
    }

    fn condition(&self, text: &str, selections: &[Selection]) -> Result<Cond, SigmaError> {
        let part = "detection.condition";
        if text.contains('|') {
            return Err(self.err(
                part,
                format!("aggregations ({text:?}) are not supported; Cairn matches single events"),
            ));
        }
        let tokens = tokenize(text);
        if tokens.is_empty() {
            return Err(self.err(part, "empty condition"));
        }
        let mut p = CondParser {
            tokens,
            pos: 0,
            selections,
        };
        let cond = p
            .or(0)
            .map_err(|reason| self.err(part, format!("{reason} in {text:?}")))?;
        if let Some(tok) = p.tokens.get(p.pos) {
            return Err(self.err(part, format!("unexpected {tok:?} in {text:?}")));
        }
        Ok(cond)
    }
}

#[derive(Default)]
struct Modifiers {
    op: Option<Op>,
    kind: Option<Kind>,
    all: bool,
    cased: bool,
    fieldref: bool,
    re_i: bool,
    re_m: bool,
    re_s: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Contains,
    StartsWith,
    EndsWith,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Contains => "contains",
            Op::StartsWith => "startswith",
            Op::EndsWith => "endswith",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Re,
    Cidr,
    Exists,
    Num(NumOp),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Re => "re",
            Kind::Cidr => "cidr",
            Kind::Exists => "exists",
            Kind::Num(NumOp::Lt) => "lt",
            Kind::Num(NumOp::Lte) => "lte",
            Kind::Num(NumOp::Gt) => "gt",
            Kind::Num(NumOp::Gte) => "gte",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

// ---------------------------------------------------------------------------------------------
// Matching values.

#[derive(Debug, Clone)]
struct Selection {
    name: String,
    /// OR of alternatives, each an AND of field matches.
    alternatives: Vec<Vec<FieldMatch>>,
}

impl Selection {
    fn matches(&self, event: &Value) -> bool {
        self.alternatives
            .iter()
            .any(|fields| fields.iter().all(|f| f.matches(event)))
    }
}

#[derive(Debug, Clone)]
struct FieldMatch {
    path: String,
    all: bool,
    matchers: Vec<Matcher>,
}

impl FieldMatch {
    fn matches(&self, event: &Value) -> bool {
        let one = |m: &Matcher| match m {
            Matcher::Exists(want) => walk(event, &self.path, 0, &mut |v| v.is_some()) == *want,
            _ => walk(event, &self.path, 0, &mut |v| m.matches(v, event)),
        };
        if self.all {
            self.matchers.iter().all(one)
        } else {
            self.matchers.iter().any(one)
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Null,
    Exists(bool),
    Str(Glob),
    Re(Regex),
    Cidr(IpNet),
    Num(NumOp, f64),
    FieldRef {
        path: String,
        op: Option<Op>,
        cased: bool,
    },
}

impl Matcher {
    /// `value` is one value found at the field's path (`None`: the path is missing there).
    fn matches(&self, value: Option<&Value>, event: &Value) -> bool {
        match self {
            Matcher::Null => matches!(value, None | Some(Value::Null)),
            Matcher::Exists(want) => value.is_some() == *want,
            Matcher::Str(glob) => value.and_then(text).is_some_and(|t| glob.matches(&t)),
            Matcher::Re(re) => value.and_then(text).is_some_and(|t| re.is_match(&t)),
            Matcher::Cidr(net) => value
                .and_then(text)
                .and_then(|t| IpAddr::from_str(t.trim()).ok())
                .is_some_and(|ip| net.contains(&ip)),
            Matcher::Num(op, n) => value.and_then(number).is_some_and(|v| match op {
                NumOp::Lt => v < *n,
                NumOp::Lte => v <= *n,
                NumOp::Gt => v > *n,
                NumOp::Gte => v >= *n,
            }),
            Matcher::FieldRef { path, op, cased } => {
                let Some(mine) = value.and_then(text) else {
                    return false;
                };
                let mine = fold(&mine, *cased);
                walk(event, path, 0, &mut |other| {
                    let Some(other) = other.and_then(text) else {
                        return false;
                    };
                    let other = fold(&other, *cased);
                    match op {
                        None => mine == other,
                        Some(Op::Contains) => mine.contains(other.as_ref()),
                        Some(Op::StartsWith) => mine.starts_with(other.as_ref()),
                        Some(Op::EndsWith) => mine.ends_with(other.as_ref()),
                    }
                })
            }
        }
    }
}

/// The text form of a leaf value: strings as they are, numbers and booleans as JSON writes
/// them. `null`, objects and arrays have none.
fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| !n.is_nan()),
        _ => None,
    }
}

fn fold(s: &str, cased: bool) -> Cow<'_, str> {
    if cased {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// Calls `f` on each value found at the dotted `path` below `value` until it returns true.
/// Arrays are transparent. Where the path is missing, `f` gets `None` (once per missing
/// branch). A key containing dots is tried as well as the nested path.
fn walk<'a>(
    value: &'a Value,
    path: &str,
    depth: usize,
    f: &mut dyn FnMut(Option<&'a Value>) -> bool,
) -> bool {
    if depth > MAX_EVENT_DEPTH {
        return false;
    }
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return f(None);
            }
            items.iter().any(|item| walk(item, path, depth + 1, f))
        }
        _ if path.is_empty() => f(Some(value)),
        Value::Object(map) => {
            let mut found = false;
            let ends = path
                .match_indices('.')
                .map(|(i, _)| i)
                .chain(std::iter::once(path.len()));
            for end in ends {
                if let Some(child) = map.get(&path[..end]) {
                    found = true;
                    let rest = path.get(end + 1..).unwrap_or("");
                    if walk(child, rest, depth + 1, f) {
                        return true;
                    }
                }
            }
            !found && f(None)
        }
        _ => f(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Wildcard strings.

#[derive(Debug, Clone, PartialEq)]
enum Pc {
    Char(char),
    One,
    Any,
}

/// A compiled string value: a plain comparison where there are no wildcards left, a wildcard
/// pattern otherwise. Text is already lowercased unless `cased`.
#[derive(Debug, Clone)]
struct Glob {
    cased: bool,
    shape: Shape,
}

#[derive(Debug, Clone)]
enum Shape {
    Exact(String),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Wild(Vec<Pc>),
}

impl Glob {
    fn compile(value: &str, wildcards: bool, op: Option<Op>, cased: bool) -> Glob {
        let value = fold(value, cased);
        let mut pcs = Vec::new();
        if matches!(op, Some(Op::Contains | Op::EndsWith)) {
            pcs.push(Pc::Any);
        }
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' if wildcards => pcs.push(Pc::Any),
                '?' if wildcards => pcs.push(Pc::One),
                '\\' if wildcards => match chars.peek() {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        chars.next();
                        pcs.push(Pc::Char(n));
                    }
                    _ => pcs.push(Pc::Char('\\')),
                },
                c => pcs.push(Pc::Char(c)),
            }
        }
        if matches!(op, Some(Op::Contains | Op::StartsWith)) {
            pcs.push(Pc::Any);
        }
        pcs.dedup_by(|a, b| *a == Pc::Any && *b == Pc::Any);
        let literal = |s: &[Pc]| -> Option<String> {
            s.iter()
                .map(|p| match p {
                    Pc::Char(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        let n = pcs.len();
        let shape = if let Some(s) = literal(&pcs) {
            Shape::Exact(s)
        } else if n >= 2 && pcs[0] == Pc::Any && pcs[n - 1] == Pc::Any {
            match literal(&pcs[1..n - 1]) {
                Some(s) => Shape::Contains(s),
                None => Shape::Wild(pcs),
            }
        } else if n >= 1 && pcs[n - 1] == Pc::Any {
            match literal(&pcs[..n - 1]) {
                Some(s) => Shape::StartsWith(s),
                None => Shape::Wild(pcs),
            }
        } else if n >= 1 && pcs[0] == Pc::Any {
            match literal(&pcs[1..]) {
                Some(s) => Shape::EndsWith(s),
                None => Shape::Wild(pcs),
            }
        } else {
            Shape::Wild(pcs)
        };
        Glob { cased, shape }
    }

    fn matches(&self, text: &str) -> bool {
        let text = fold(text, self.cased);
        match &self.shape {
            Shape::Exact(s) => *text == **s,
            Shape::Contains(s) => text.contains(s.as_str()),
            Shape::StartsWith(s) => text.starts_with(s.as_str()),
            Shape::EndsWith(s) => text.ends_with(s.as_str()),
            Shape::Wild(pcs) => {
                let chars: Vec<char> = text.chars().collect();
                wild_match(pcs, &chars)
            }
        }
    }
}

/// Classic iterative wildcard matching with one backtrack point (linear in practice,
/// O(pattern × text) at worst).
fn wild_match(pattern: &[Pc], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Pc::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Pc::One) => {
                p += 1;
                t += 1;
            }
            Some(Pc::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|pc| *pc == Pc::Any)
}

// ---------------------------------------------------------------------------------------------
// Conditions.

#[derive(Debug, Clone)]
enum Cond {
    Sel(usize),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// At least `n` of the selections (`1 of x*`, `N of x*`).
    AtLeast(usize, Vec<usize>),
    /// Every one of the selections (`all of x*`).
    All(Vec<usize>),
}

/// Intersects the sets given (`None`: no constraint).
fn intersect(sets: impl Iterator<Item = Option<HashSet<String>>>) -> Option<HashSet<String>> {
    sets.flatten()
        .reduce(|a, b| a.intersection(&b).cloned().collect())
}

/// Unites the sets given, or `None` if any is unconstrained.
fn unite(sets: impl Iterator<Item = Option<HashSet<String>>>) -> Option<HashSet<String>> {
    let mut out = HashSet::new();
    for s in sets {
        out.extend(s?);
    }
    Some(out)
}

impl Selection {
    fn required(&self, field: &str) -> Option<HashSet<String>> {
        unite(self.alternatives.iter().map(|fields| {
            intersect(
                fields
                    .iter()
                    .filter(|f| f.path == field)
                    .map(FieldMatch::exact_values),
            )
        }))
    }
}

impl FieldMatch {
    /// The exact values this match accepts (lower-cased), if it only accepts exact values.
    fn exact_values(&self) -> Option<HashSet<String>> {
        if self.all && self.matchers.len() > 1 {
            return None;
        }
        self.matchers
            .iter()
            .map(|m| match m {
                Matcher::Str(Glob {
                    shape: Shape::Exact(s),
                    ..
                }) => Some(s.to_lowercase()),
                _ => None,
            })
            .collect()
    }
}

impl Cond {
    fn required(&self, sels: &[Selection], field: &str) -> Option<HashSet<String>> {
        let sel = |i: &usize| sels.get(*i).and_then(|s| s.required(field));
        match self {
            Cond::Sel(i) => sel(i),
            Cond::Not(_) => None,
            Cond::And(cs) => intersect(cs.iter().map(|c| c.required(sels, field))),
            Cond::Or(cs) => unite(cs.iter().map(|c| c.required(sels, field))),
            Cond::AtLeast(0, _) => None,
            Cond::AtLeast(_, is) => unite(is.iter().map(sel)),
            Cond::All(is) => intersect(is.iter().map(sel)),
        }
    }

    fn eval(&self, sels: &[Selection], event: &Value) -> bool {
        let sel = |i: &usize| sels.get(*i).is_some_and(|s| s.matches(event));
        match self {
            Cond::Sel(i) => sel(i),
            Cond::Not(c) => !c.eval(sels, event),
            Cond::And(cs) => cs.iter().all(|c| c.eval(sels, event)),
            Cond::Or(cs) => cs.iter().any(|c| c.eval(sels, event)),
            Cond::AtLeast(n, is) => is.iter().filter(|i| sel(i)).take(*n).count() >= *n,
            Cond::All(is) => is.iter().all(sel),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Open => f.write_str("("),
            Tok::Close => f.write_str(")"),
            Tok::Word(w) => f.write_str(w),
        }
    }
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c == '(' || c == ')' || c.is_whitespace() {
            if !word.is_empty() {
                tokens.push(Tok::Word(std::mem::take(&mut word)));
            }
            match c {
                '(' => tokens.push(Tok::Open),
                ')' => tokens.push(Tok::Close),
                _ => {}
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(Tok::Word(word));
    }
    tokens
}

struct CondParser<'a> {
    tokens: Vec<Tok>,
    pos: usize,
    selections: &'a [Selection],
}

impl CondParser<'_> {
    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.pos) {
            Some(Tok::Word(w)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn or(&mut self, depth: usize) -> Result<Cond, String> {
        let mut items = vec![self.and(depth)?];
        while self.peek_word().as_deref() == Some("or") {
            self.pos += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Cond, String> {
        let mut items = vec![self.not(depth)?];
        while self.peek_word().as_deref() == Some("and") {
            self.pos += 1;
            items.push(self.not(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::And(items)
        })
    }

    fn not(&mut self, depth: usize) -> Result<Cond, String> {
        if depth > MAX_CONDITION_DEPTH {
            return Err(format!("nested deeper than {MAX_CONDITION_DEPTH} levels"));
        }
        if self.peek_word().as_deref() == Some("not") {
            self.pos += 1;
            return Ok(Cond::Not(Box::new(self.not(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Cond, String> {
        let Some(tok) = self.tokens.get(self.pos).cloned() else {
            return Err("unexpected end".to_owned());
        };
        self.pos += 1;
        match tok {
            Tok::Open => {
                let inner = self.or(depth + 1)?;
                match self.tokens.get(self.pos) {
                    Some(Tok::Close) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err("missing \")\"".to_owned()),
                }
            }
            Tok::Close => Err("unexpected \")\"".to_owned()),
            Tok::Word(word) => {
                let lower = word.to_ascii_lowercase();
                if self.peek_word().as_deref() == Some("of") {
                    self.pos += 1;
                    let quantity = if lower == "all" {
                        None
                    } else if lower == "any" {
                        Some(1)
                    } else {
                        match lower.parse::<usize>() {
                            Ok(n) if n >= 1 => Some(n),
                            _ => {
                                return Err(format!(
                                    "{word:?} before \"of\" must be \"all\" or a positive number"
                                ));
                            }
                        }
                    };
                    let Some(Tok::Word(target)) = self.tokens.get(self.pos).cloned() else {
                        return Err(
                            "\"of\" must be followed by a selection name, a pattern or \"them\""
                                .to_owned(),
                        );
                    };
                    self.pos += 1;
                    let indices = self.resolve_pattern(&target)?;
                    return Ok(match quantity {
                        None => Cond::All(indices),
                        Some(n) => Cond::AtLeast(n, indices),
                    });
                }
                match lower.as_str() {
                    "and" | "or" | "of" | "them" => Err(format!("unexpected {word:?}")),
                    "near" => Err("\"near\" (keyword proximity) is not supported".to_owned()),
                    "not" => Err("unexpected \"not\"".to_owned()),
                    _ => self
                        .selections
                        .iter()
                        .position(|s| s.name == word)
                        .map(Cond::Sel)
                        .ok_or_else(|| format!("selection {word:?} is not defined")),
                }
            }
        }
    }

    fn resolve_pattern(&self, target: &str) -> Result<Vec<usize>, String> {
        let indices: Vec<usize> = if target.eq_ignore_ascii_case("them") {
            self.selections
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.name.starts_with('_'))
                .map(|(i, _)| i)
                .collect()
        } else {
            let glob = Glob::compile(target, true, None, true);
            self.selections
                .iter()
                .enumerate()
                .filter(|(_, s)| glob.matches(&s.name))
                .map(|(i, _)| i)
                .collect()
        };
        if indices.is_empty() {
            Err(format!("{target:?} names no selection"))
        } else {
            Ok(indices)
        }
    }
}
