//! Which rules each account has: the default pack and the rules folder (shared by every
//! account, each rule can be disabled per account) and the account's own rules, kept in
//! `rules/rules.json` in the data directory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::rule::{Kind, Origin, Rule, RuleError, RuleSet, RuleSpec, Severity, validate_name};

/// Most custom rules per account.
pub const MAX_RULES_PER_ACCOUNT: usize = 500;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct AccountRules {
    custom: Vec<RuleSpec>,
    /// Shared rules (default pack, folder) turned off in this account.
    disabled: BTreeSet<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Saved {
    accounts: BTreeMap<String, AccountRules>,
}

struct Inner {
    saved: Saved,
    cache: HashMap<String, RuleSet>,
}

/// A rules-folder file Cairn could not load, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub file: PathBuf,
    pub reason: String,
}

/// The rules of every account.
pub struct Registry {
    path: Option<PathBuf>,
    shared: Vec<Arc<Rule>>,
    refused: Vec<Refused>,
    inner: RwLock<Inner>,
}

fn not_found(name: &str) -> RuleError {
    RuleError {
        code: "RuleNotFoundException",
        message: format!("there is no rule named {name:?} in this account"),
    }
}

/// The name a folder rule gets: `sigma-` and its file name without extension, with anything
/// but letters, digits, `.`, `_` and `-` made `-`.
pub fn folder_rule_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(crate::rule::MAX_NAME_LEN - 6)
        .collect();
    format!("sigma-{clean}")
}

/// Loads a folder of Sigma rules as shared rules; files that cannot be evaluated are
/// returned with the reason.
pub fn load_folder(dir: &Path) -> (Vec<RuleSpec>, Vec<Refused>) {
    let mut specs = Vec::new();
    let mut refused = Vec::new();
    let mut files = Vec::new();
    collect_yaml(dir, &mut files, &mut refused, 0);
    files.sort();
    let mut names = BTreeSet::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                refused.push(Refused {
                    file,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let sigma = match crate::SigmaRule::parse(&text) {
            Ok(s) => s,
            Err(e) => {
                refused.push(Refused {
                    file,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let name = folder_rule_name(&file);
        if !names.insert(name.clone()) {
            refused.push(Refused {
                file,
                reason: format!("another file already gives the rule name {name:?}"),
            });
            continue;
        }
        specs.push(RuleSpec {
            name,
            description: sigma.title.clone(),
            severity: sigma
                .level
                .as_deref()
                .and_then(Severity::parse)
                .unwrap_or(Severity::Medium),
            kind: Kind::Sigma,
            source: text,
            threshold: None,
            enabled: true,
            origin: Origin::Folder,
            file: Some(file.display().to_string()),
            updated_ms: 0,
        });
    }
    (specs, refused)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>, refused: &mut Vec<Refused>, depth: usize) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            refused.push(Refused {
                file: dir.to_owned(),
                reason: format!("cannot read the folder: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth < 8 {
                collect_yaml(&path, files, refused, depth + 1);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            files.push(path);
        }
    }
}

impl Registry {
    /// Opens the registry in `data_dir` (None: in memory, for tools and tests) with the
    /// shared rules given.
    pub fn open(
        data_dir: Option<&Path>,
        shared: Vec<RuleSpec>,
        refused: Vec<Refused>,
    ) -> Result<Registry, RuleError> {
        let path = data_dir.map(|d| d.join("rules").join("rules.json"));
        let saved = match &path {
            None => Saved::default(),
            Some(p) => match std::fs::read(p) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RuleError {
                    code: "InternalFailure",
                    message: format!("{} cannot be read: {e}", p.display()),
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
                Err(e) => {
                    return Err(RuleError {
                        code: "InternalFailure",
                        message: format!("{}: {e}", p.display()),
                    });
                }
            },
        };
        let mut compiled = Vec::new();
        let mut refused = refused;
        for spec in shared {
            let file = spec.file.clone().unwrap_or_else(|| spec.name.clone());
            match Rule::compile(spec) {
                Ok(r) => compiled.push(Arc::new(r)),
                Err(e) => refused.push(Refused {
                    file: PathBuf::from(file),
                    reason: e.message,
                }),
            }
        }
        Ok(Registry {
            path,
            shared: compiled,
            refused,
            inner: RwLock::new(Inner {
                saved,
                cache: HashMap::new(),
            }),
        })
    }

    /// Shared rules that could not be loaded.
    pub fn refused(&self) -> &[Refused] {
        &self.refused
    }

    /// The shared rules (default pack, then folder).
    pub fn shared(&self) -> &[Arc<Rule>] {
        &self.shared
    }

    /// The enabled rules of an account, compiled (cached until the account's rules change).
    pub fn rules_for(&self, account: &str) -> RuleSet {
        if let Some(set) = self.inner.read().cache.get(account) {
            return set.clone();
        }
        let mut inner = self.inner.write();
        let set = self.build(&inner.saved, account);
        inner.cache.insert(account.to_owned(), set.clone());
        set
    }

    fn build(&self, saved: &Saved, account: &str) -> RuleSet {
        let mine = saved.accounts.get(account);
        let mut out: Vec<Arc<Rule>> = self
            .shared
            .iter()
            .filter(|r| mine.is_none_or(|m| !m.disabled.contains(&r.spec.name)))
            .cloned()
            .collect();
        if let Some(m) = mine {
            for spec in m.custom.iter().filter(|s| s.enabled) {
                match Rule::compile(spec.clone()) {
                    Ok(r) => out.push(Arc::new(r)),
                    Err(e) => {
                        tracing::error!(account, rule = %spec.name, error = %e, "a stored rule no longer compiles; it is not run")
                    }
                }
            }
        }
        Arc::new(out)
    }

    /// Every rule of an account, enabled or not, shared ones first.
    pub fn list(&self, account: &str) -> Vec<RuleSpec> {
        let inner = self.inner.read();
        let mine = inner.saved.accounts.get(account);
        let mut out: Vec<RuleSpec> = self
            .shared
            .iter()
            .map(|r| {
                let mut s = r.spec.clone();
                s.enabled = mine.is_none_or(|m| !m.disabled.contains(&s.name));
                s
            })
            .collect();
        if let Some(m) = mine {
            out.extend(m.custom.iter().cloned());
        }
        out
    }

    pub fn get(&self, account: &str, name: &str) -> Result<RuleSpec, RuleError> {
        self.list(account)
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| not_found(name))
    }

    /// Adds or replaces one of the account's own rules (validated and compiled first).
    /// Returns whether it replaced one.
    pub fn put(&self, account: &str, mut spec: RuleSpec, now_ms: i64) -> Result<bool, RuleError> {
        validate_name(&spec.name)?;
        spec.origin = Origin::Custom;
        spec.file = None;
        spec.updated_ms = now_ms;
        Rule::compile(spec.clone())?;
        self.change(account, |rules| {
            let count = rules.custom.len();
            match rules.custom.iter_mut().find(|s| s.name == spec.name) {
                Some(old) => {
                    *old = spec;
                    Ok(true)
                }
                None if count >= MAX_RULES_PER_ACCOUNT => Err(RuleError {
                    code: "RuleLimitExceededException",
                    message: format!(
                        "an account has at most {MAX_RULES_PER_ACCOUNT} rules of its own"
                    ),
                }),
                None => {
                    rules.custom.push(spec);
                    Ok(false)
                }
            }
        })
    }

    /// Turns a rule on or off in an account.
    pub fn set_enabled(
        &self,
        account: &str,
        name: &str,
        enabled: bool,
        now_ms: i64,
    ) -> Result<(), RuleError> {
        let shared = self.shared.iter().any(|r| r.spec.name == name);
        self.change(account, |rules| {
            if shared {
                if enabled {
                    rules.disabled.remove(name);
                } else {
                    rules.disabled.insert(name.to_owned());
                }
                return Ok(());
            }
            let spec = rules
                .custom
                .iter_mut()
                .find(|s| s.name == name)
                .ok_or_else(|| not_found(name))?;
            spec.enabled = enabled;
            spec.updated_ms = now_ms;
            Ok(())
        })
    }

    /// Deletes one of the account's own rules (shared ones can only be disabled).
    pub fn delete(&self, account: &str, name: &str) -> Result<(), RuleError> {
        if self.shared.iter().any(|r| r.spec.name == name) {
            return Err(RuleError {
                code: "InvalidParameterException",
                message: format!(
                    "{name:?} is a shared rule (default pack or rules folder): disable it instead"
                ),
            });
        }
        self.change(account, |rules| {
            let before = rules.custom.len();
            rules.custom.retain(|s| s.name != name);
            if rules.custom.len() == before {
                return Err(not_found(name));
            }
            Ok(())
        })
    }

    fn change<T>(
        &self,
        account: &str,
        f: impl FnOnce(&mut AccountRules) -> Result<T, RuleError>,
    ) -> Result<T, RuleError> {
        let mut inner = self.inner.write();
        let mut saved = inner.saved.clone();
        let out = f(saved.accounts.entry(account.to_owned()).or_default())?;
        self.persist(&saved)?;
        inner.saved = saved;
        inner.cache.remove(account);
        Ok(out)
    }

    fn persist(&self, saved: &Saved) -> Result<(), RuleError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(saved).map_err(|e| RuleError {
            code: "InternalFailure",
            message: e.to_string(),
        })?;
        crate::write_atomically(path, &bytes).map_err(|e| RuleError {
            code: "InternalFailure",
            message: format!("cannot save the rules in {}: {e}", path.display()),
        })
    }
}
