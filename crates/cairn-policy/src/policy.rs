//! Policy documents: the grammar and its validation.

use crate::Context;
use crate::condition::{self, Condition, split_arn};
use crate::error::PolicyError;
use crate::glob::{Glob, Opts};
use crate::json::{Json, member};

/// The longest policy document accepted, in characters (IAM's quota for a managed policy).
pub const MAX_POLICY_CHARS: usize = 10_240;

const VERSION_2012: &str = "2012-10-17";
const VERSION_2008: &str = "2008-10-17";

const POLICY_ELEMENTS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_ELEMENTS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Principal",
    "NotPrincipal",
];

/// A parsed and validated identity policy. Parsing compiles every pattern, so evaluation
/// does not allocate.
#[derive(Debug, Clone)]
pub struct Policy {
    text: String,
    version: &'static str,
    id: Option<String>,
    pub(crate) statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// `Action`/`NotAction` or `Resource`/`NotResource`.
#[derive(Debug, Clone)]
pub(crate) struct Targets {
    negated: bool,
    patterns: Vec<Glob>,
}

impl Targets {
    fn matches(&self, text: &str, ctx: &Context) -> bool {
        self.patterns.iter().any(|g| g.matches(text, ctx)) != self.negated
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    action: Targets,
    resource: Targets,
    conditions: Vec<Condition>,
}

impl Statement {
    /// Whether the statement applies to the request (its effect aside).
    pub(crate) fn applies(&self, action: &str, resource: &str, ctx: &Context) -> bool {
        self.action.matches(action, ctx)
            && self.resource.matches(resource, ctx)
            && self.conditions.iter().all(|c| c.holds(ctx))
    }
}

impl Policy {
    /// Parses and validates an identity policy document. The error says what is wrong and
    /// where (see [`PolicyError`]).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_CHARS {
            let length = text.chars().count();
            if length > MAX_POLICY_CHARS {
                return Err(PolicyError::TooLarge {
                    length,
                    limit: MAX_POLICY_CHARS,
                });
            }
        }
        let doc: Json = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        })?;
        let Json::Object(top) = &doc else {
            return Err(PolicyError::at(
                "",
                format!("a policy document is a JSON object, not {}", doc.kind()),
            ));
        };
        check_members(
            top,
            "",
            POLICY_ELEMENTS,
            "a policy has Version, Id and Statement",
        )?;
        let version = match member(top, "Version") {
            None => VERSION_2008,
            Some(Json::String(v)) if v == VERSION_2012 => VERSION_2012,
            Some(Json::String(v)) if v == VERSION_2008 => VERSION_2008,
            Some(v) => {
                let shown = match v {
                    Json::String(s) => format!("{s:?}"),
                    other => other.kind().to_owned(),
                };
                return Err(PolicyError::at(
                    "Version",
                    format!(
                        "{shown} is not a policy language version; use \"{VERSION_2012}\" (or \
                         the older \"{VERSION_2008}\")"
                    ),
                ));
            }
        };
        let id = match member(top, "Id") {
            None => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(PolicyError::at(
                    "Id",
                    format!("must be a string, not {}", v.kind()),
                ));
            }
        };
        let vars = version == VERSION_2012;
        let statements = match member(top, "Statement") {
            None => {
                return Err(PolicyError::at(
                    "Statement",
                    "missing: a policy has at least one statement",
                ));
            }
            Some(Json::Array(list)) if list.is_empty() => {
                return Err(PolicyError::at(
                    "Statement",
                    "the list is empty: a policy has at least one statement",
                ));
            }
            Some(Json::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, s)| parse_statement(s, &format!("Statement[{i}]"), vars))
                .collect::<Result<Vec<_>, _>>()?,
            Some(s @ Json::Object(_)) => vec![parse_statement(s, "Statement", vars)?],
            Some(v) => {
                return Err(PolicyError::at(
                    "Statement",
                    format!(
                        "must be a statement object or an array of them, not {}",
                        v.kind()
                    ),
                ));
            }
        };
        for (i, s) in statements.iter().enumerate() {
            let Some(sid) = s.sid.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            if let Some(first) = statements[..i]
                .iter()
                .position(|o| o.sid.as_deref() == Some(sid))
            {
                return Err(PolicyError::at(
                    &format!("Statement[{i}].Sid"),
                    format!(
                        "{sid:?} is also the Sid of Statement[{first}]; statement IDs must be \
                         unique within a policy"
                    ),
                ));
            }
        }
        Ok(Policy {
            text: text.to_owned(),
            version,
            id,
            statements,
        })
    }

    /// The document as it was given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `Version`: "2012-10-17" or "2008-10-17" (also when the document has none). Policy
    /// variables are substituted only under "2012-10-17", as in AWS.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// `Id`, when the document has one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// How many statements the policy has.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text)
    }
}

/// Refuses duplicated and unknown members (suggesting the right spelling when only the case
/// is wrong: element names are case-sensitive).
fn check_members(
    members: &[(String, Json)],
    loc: &str,
    allowed: &[&str],
    expected: &str,
) -> Result<(), PolicyError> {
    for (i, (name, _)) in members.iter().enumerate() {
        let here = child(loc, name);
        if members[..i].iter().any(|(n, _)| n == name) {
            return Err(PolicyError::at(&here, "the element appears twice"));
        }
        if !allowed.contains(&name.as_str()) {
            let hint = allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))
                .map(|a| format!(" (element names are case-sensitive: did you mean {a:?}?)"))
                .unwrap_or_default();
            return Err(PolicyError::at(
                &here,
                format!("unknown element {name:?}{hint}; {expected}"),
            ));
        }
    }
    Ok(())
}

fn child(loc: &str, name: &str) -> String {
    if loc.is_empty() {
        name.to_owned()
    } else {
        format!("{loc}.{name}")
    }
}

fn parse_statement(v: &Json, loc: &str, vars: bool) -> Result<Statement, PolicyError> {
    let Json::Object(fields) = v else {
        return Err(PolicyError::at(
            loc,
            format!("a statement is a JSON object, not {}", v.kind()),
        ));
    };
    check_members(
        fields,
        loc,
        STATEMENT_ELEMENTS,
        "a statement has Sid, Effect, Action or NotAction, Resource or NotResource, and \
         Condition",
    )?;
    for name in ["Principal", "NotPrincipal"] {
        if member(fields, name).is_some() {
            return Err(PolicyError::at(
                &child(loc, name),
                "Policy document should not specify a principal.",
            ));
        }
    }
    let sid = match member(fields, "Sid") {
        None => None,
        Some(Json::String(s)) => {
            if !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(PolicyError::at(
                    &child(loc, "Sid"),
                    format!("{s:?} is not a valid Sid: use only letters A-Z, a-z and digits 0-9"),
                ));
            }
            Some(s.clone())
        }
        Some(v) => {
            return Err(PolicyError::at(
                &child(loc, "Sid"),
                format!("must be a string, not {}", v.kind()),
            ));
        }
    };
    let effect = match member(fields, "Effect") {
        None => {
            return Err(PolicyError::at(
                loc,
                "missing Effect: a statement has \"Effect\": \"Allow\" or \"Deny\"",
            ));
        }
        Some(Json::String(s)) if s == "Allow" => Effect::Allow,
        Some(Json::String(s)) if s == "Deny" => Effect::Deny,
        Some(v) => {
            let shown = match v {
                Json::String(s) => format!("{s:?}"),
                other => other.kind().to_owned(),
            };
            return Err(PolicyError::at(
                &child(loc, "Effect"),
                format!("{shown} is not an effect: use \"Allow\" or \"Deny\" (case-sensitive)"),
            ));
        }
    };
    let action = targets(fields, loc, "Action", "NotAction", |s, at| {
        parse_action(s).map_err(|m| PolicyError::at(at, m))
    })?;
    let resource = targets(fields, loc, "Resource", "NotResource", |s, at| {
        parse_resource(s, vars).map_err(|m| PolicyError::at(at, m))
    })?;
    let conditions = match member(fields, "Condition") {
        None => Vec::new(),
        Some(c) => condition::parse(c, &child(loc, "Condition"), vars)?,
    };
    Ok(Statement {
        sid,
        effect,
        action,
        resource,
        conditions,
    })
}

/// Reads exactly one of `name` / `not_name`: a string or a non-empty array of strings, each
/// compiled by `compile(text, location)`.
fn targets(
    fields: &[(String, Json)],
    loc: &str,
    name: &str,
    not_name: &str,
    compile: impl Fn(&str, &str) -> Result<Glob, PolicyError>,
) -> Result<Targets, PolicyError> {
    let (element, v, negated) = match (member(fields, name), member(fields, not_name)) {
        (Some(v), None) => (name, v, false),
        (None, Some(v)) => (not_name, v, true),
        (None, None) => {
            return Err(PolicyError::at(
                loc,
                format!("missing {name} or {not_name}: a statement has one of them"),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(PolicyError::at(
                loc,
                format!("has both {name} and {not_name}: use one of them"),
            ));
        }
    };
    let here = child(loc, element);
    let patterns = match v {
        Json::String(s) => vec![compile(s, &here)?],
        Json::Array(items) if items.is_empty() => {
            return Err(PolicyError::at(
                &here,
                format!(
                    "the list is empty: name at least one {}",
                    name.to_lowercase()
                ),
            ));
        }
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{here}[{i}]");
                let Json::String(s) = item else {
                    return Err(PolicyError::at(
                        &at,
                        format!("must be a string, not {}", item.kind()),
                    ));
                };
                out.push(compile(s, &at)?);
            }
            out
        }
        other => {
            return Err(PolicyError::at(
                &here,
                format!(
                    "must be a string or an array of strings, not {}",
                    other.kind()
                ),
            ));
        }
    };
    Ok(Targets { negated, patterns })
}

fn parse_action(s: &str) -> Result<Glob, String> {
    const OPTS: Opts = Opts {
        wildcards: true,
        vars: false,
        ci: true,
    };
    if s == "*" {
        return Glob::compile(s, OPTS);
    }
    let Some((service, action)) = s.split_once(':').filter(|(_, a)| !a.is_empty()) else {
        return Err(format!(
            "{s:?} is not <service>:<action> (such as \"cloudtrail:LookupEvents\") nor \"*\""
        ));
    };
    if service.is_empty()
        || !service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "{s:?}: the service prefix {service:?} may only have letters, digits and '-' \
             (such as \"cloudtrail\", \"cloudtrail-data\", \"s3\")"
        ));
    }
    if !action
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'?' | b'-' | b'_'))
    {
        return Err(format!(
            "{s:?}: the action {action:?} may only have letters, digits and the wildcards '*' \
             and '?'"
        ));
    }
    Glob::compile(&s.to_ascii_lowercase(), OPTS)
}

fn parse_resource(s: &str, vars: bool) -> Result<Glob, String> {
    let opts = Opts {
        wildcards: true,
        vars,
        ci: false,
    };
    if s != "*" && (!s.starts_with("arn:") || split_arn(s, vars).len() < 6) {
        return Err(format!(
            "{s:?} is not \"*\" nor an ARN \
             (arn:<partition>:<service>:<region>:<account>:<resource>, wildcards allowed)"
        ));
    }
    Glob::compile(s, opts)
}
