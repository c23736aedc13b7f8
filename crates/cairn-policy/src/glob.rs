//! Patterns with `*` (any run of characters, also none) and `?` (exactly one character), and
//! the policy variables of resource and condition values.
//!
//! A pattern is compiled once into segments split at its `*`s. Matching anchors the first
//! segment at the start of the text and the last at its end, then finds each middle segment at
//! the leftmost place it fits. That is exact because every segment matches a fixed number of
//! characters, and it costs at most (text length × pattern length): there is no backtracking,
//! so patterns such as `a*a*a*a*a*b` cannot blow up.

use crate::Context;

/// A policy variable: a value from the request context put into a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    Username,
    Userid,
    PrincipalAccount,
}

/// Variables in the order of the error message, with their canonical spelling.
const VARS: &[(&str, Var)] = &[
    ("aws:username", Var::Username),
    ("aws:userid", Var::Userid),
    ("aws:PrincipalAccount", Var::PrincipalAccount),
];

/// What a policy variable stands for in this request; `None` when the request has no such
/// value (an empty string), in which case a pattern using it matches nothing.
fn value(var: Var, ctx: &Context) -> Option<&str> {
    let v = match var {
        Var::Username => ctx.username.as_str(),
        Var::Userid => ctx.userid.as_str(),
        Var::PrincipalAccount => ctx.principal_account.as_str(),
    };
    (!v.is_empty()).then_some(v)
}

#[derive(Debug, Clone)]
enum Unit {
    /// Literal text, and whether it is all ASCII (the fast path of case-insensitive matching).
    Lit(Box<str>, bool),
    /// `?`
    One,
    Var(Var),
}

/// How a pattern is read and compared.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opts {
    /// `*` and `?` are wildcards (else literal characters).
    pub wildcards: bool,
    /// `${...}` is a policy variable or escape (else literal text).
    pub vars: bool,
    /// Compare ignoring case: ASCII letters fold to each other, other characters by their
    /// lowercase forms; an ASCII character never matches a non-ASCII one.
    pub ci: bool,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    /// The pattern split at each `*`: one segment when there is no `*`.
    segs: Vec<Vec<Unit>>,
    ci: bool,
    has_vars: bool,
}

impl Glob {
    /// Compiles `pattern`; the error names an unknown or unterminated policy variable.
    pub(crate) fn compile(pattern: &str, opts: Opts) -> Result<Glob, String> {
        let mut segs: Vec<Vec<Unit>> = vec![Vec::new()];
        let mut lit = String::new();
        let mut has_vars = false;
        let mut pos = 0;
        while let Some(c) = pattern[pos..].chars().next() {
            let mut next = pos + c.len_utf8();
            match c {
                '*' if opts.wildcards => {
                    flush(&mut segs, &mut lit);
                    segs.push(Vec::new());
                }
                '?' if opts.wildcards => {
                    flush(&mut segs, &mut lit);
                    push(&mut segs, Unit::One);
                }
                '$' if opts.vars && pattern[next..].starts_with('{') => {
                    let body = &pattern[next + 1..];
                    let Some(end) = body.find('}') else {
                        return Err(format!(
                            "{pattern:?} has a policy variable \"${{\" without its closing \"}}\""
                        ));
                    };
                    let name = &body[..end];
                    next += 1 + end + 1;
                    match name {
                        "*" | "?" | "$" => lit.push_str(name),
                        _ => {
                            let Some(&(_, var)) =
                                VARS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
                            else {
                                return Err(format!(
                                    "{pattern:?} uses the unknown policy variable \"${{{name}}}\"; \
                                     supported: ${{aws:username}}, ${{aws:userid}}, \
                                     ${{aws:PrincipalAccount}}, and ${{*}}, ${{?}}, ${{$}} for a \
                                     literal *, ? or $"
                                ));
                            };
                            flush(&mut segs, &mut lit);
                            push(&mut segs, Unit::Var(var));
                            has_vars = true;
                        }
                    }
                }
                c => lit.push(c),
            }
            pos = next;
        }
        flush(&mut segs, &mut lit);
        Ok(Glob {
            segs,
            ci: opts.ci,
            has_vars,
        })
    }

    /// Whether `text` matches, with policy variables taken from `ctx`.
    pub(crate) fn matches(&self, text: &str, ctx: &Context) -> bool {
        if self.has_vars && !self.vars_present(ctx) {
            return false;
        }
        let m = Matcher {
            text,
            ci: self.ci,
            ctx,
        };
        let (first, rest) = match self.segs.split_first() {
            Some(split) => split,
            None => return text.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return m.forward(first, 0) == Some(text.len());
        };
        let Some(start) = m.forward(first, 0) else {
            return false;
        };
        let Some(end) = m.backward(last, text.len()) else {
            return false;
        };
        if end < start {
            return false;
        }
        let Some(bounded) = text.get(..end) else {
            return false;
        };
        let m = Matcher { text: bounded, ..m };
        let mut pos = start;
        for seg in middle {
            match m.find(seg, pos) {
                Some(after) => pos = after,
                None => return false,
            }
        }
        true
    }

    fn vars_present(&self, ctx: &Context) -> bool {
        self.segs.iter().flatten().all(|u| match u {
            Unit::Var(v) => value(*v, ctx).is_some(),
            _ => true,
        })
    }
}

fn flush(segs: &mut [Vec<Unit>], lit: &mut String) {
    if !lit.is_empty() {
        let text = std::mem::take(lit);
        let ascii = text.is_ascii();
        push(segs, Unit::Lit(text.into_boxed_str(), ascii));
    }
}

fn push(segs: &mut [Vec<Unit>], unit: Unit) {
    if let Some(seg) = segs.last_mut() {
        seg.push(unit);
    }
}

/// Case-insensitive equality of two characters, as [`Opts::ci`] describes it.
pub(crate) fn char_eq_ci(a: char, b: char) -> bool {
    if a == b {
        return true;
    }
    match (a.is_ascii(), b.is_ascii()) {
        (true, true) => a.eq_ignore_ascii_case(&b),
        (false, false) => a.to_lowercase().eq(b.to_lowercase()),
        _ => false,
    }
}

#[derive(Clone, Copy)]
struct Matcher<'t, 'c> {
    text: &'t str,
    ci: bool,
    ctx: &'c Context,
}

impl Matcher<'_, '_> {
    /// Where `seg` ends when it matches at byte `i`.
    fn forward(&self, seg: &[Unit], mut i: usize) -> Option<usize> {
        for unit in seg {
            i = match unit {
                Unit::Lit(lit, ascii) => self.lit_forward(lit, *ascii, i)?,
                Unit::Var(v) => {
                    let lit = value(*v, self.ctx)?;
                    self.lit_forward(lit, lit.is_ascii(), i)?
                }
                Unit::One => i + self.text.get(i..)?.chars().next()?.len_utf8(),
            };
        }
        Some(i)
    }

    /// Where `seg` starts when it matches ending at byte `j`.
    fn backward(&self, seg: &[Unit], mut j: usize) -> Option<usize> {
        for unit in seg.iter().rev() {
            j = match unit {
                Unit::Lit(lit, ascii) => self.lit_backward(lit, *ascii, j)?,
                Unit::Var(v) => {
                    let lit = value(*v, self.ctx)?;
                    self.lit_backward(lit, lit.is_ascii(), j)?
                }
                Unit::One => j - self.text.get(..j)?.chars().next_back()?.len_utf8(),
            };
        }
        Some(j)
    }

    /// The end of the leftmost match of `seg` starting at or after byte `from`.
    fn find(&self, seg: &[Unit], from: usize) -> Option<usize> {
        let mut pos = from;
        loop {
            // Jump straight to the next occurrence of a leading literal when case matters.
            if let (false, Some(Unit::Lit(lit, _))) = (self.ci, seg.first()) {
                pos += self.text.get(pos..)?.find(&**lit)?;
            }
            if let Some(end) = self.forward(seg, pos) {
                return Some(end);
            }
            pos += self.text.get(pos..)?.chars().next()?.len_utf8();
        }
    }

    fn lit_forward(&self, lit: &str, ascii: bool, i: usize) -> Option<usize> {
        let rest = self.text.get(i..)?;
        if !self.ci {
            return rest.starts_with(lit).then_some(i + lit.len());
        }
        if ascii {
            let head = rest.as_bytes().get(..lit.len())?;
            return head
                .eq_ignore_ascii_case(lit.as_bytes())
                .then_some(i + lit.len());
        }
        let mut chars = rest.chars();
        let mut end = i;
        for p in lit.chars() {
            let c = chars.next()?;
            if !char_eq_ci(c, p) {
                return None;
            }
            end += c.len_utf8();
        }
        Some(end)
    }

    fn lit_backward(&self, lit: &str, ascii: bool, j: usize) -> Option<usize> {
        let head = self.text.get(..j)?;
        if !self.ci {
            return head.ends_with(lit).then(|| j - lit.len());
        }
        if ascii {
            let start = j.checked_sub(lit.len())?;
            let tail = head.as_bytes().get(start..)?;
            return tail.eq_ignore_ascii_case(lit.as_bytes()).then_some(start);
        }
        let mut chars = head.chars().rev();
        let mut start = j;
        for p in lit.chars().rev() {
            let c = chars.next()?;
            if !char_eq_ci(c, p) {
                return None;
            }
            start -= c.len_utf8();
        }
        Some(start)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;

    const CS: Opts = Opts {
        wildcards: true,
        vars: false,
        ci: false,
    };
    const CI: Opts = Opts {
        wildcards: true,
        vars: false,
        ci: true,
    };
    const VARS_ON: Opts = Opts {
        wildcards: true,
        vars: true,
        ci: false,
    };

    fn m(pattern: &str, opts: Opts, text: &str) -> bool {
        Glob::compile(pattern, opts)
            .expect("pattern compiles")
            .matches(text, &Context::default())
    }

    /// The obvious exponential-time definition, for short inputs only.
    fn reference(p: &[char], t: &[char], ci: bool) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|k| reference(rest, &t[k..], ci)),
            Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..], ci),
            Some((c, rest)) => match t.split_first() {
                Some((d, t_rest)) => {
                    (if ci { char_eq_ci(*c, *d) } else { c == d }) && reference(rest, t_rest, ci)
                }
                None => false,
            },
        }
    }

    #[test]
    fn basics() {
        assert!(m("*", CS, ""));
        assert!(m("*", CS, "anything at all"));
        assert!(m("", CS, ""));
        assert!(!m("", CS, "a"));
        assert!(m("abc", CS, "abc"));
        assert!(!m("abc", CS, "abcd"));
        assert!(!m("abc", CS, "ab"));
        assert!(m("a*c", CS, "ac"));
        assert!(m("a*c", CS, "abbbc"));
        assert!(!m("a*c", CS, "abbbcd"));
        assert!(m("a?c", CS, "abc"));
        assert!(!m("a?c", CS, "ac"));
        assert!(m("?", CS, "é"), "? is one character, not one byte");
        assert!(!m("??", CS, "é"));
        assert!(m("*é?", CS, "xxéy"));
        assert!(m("a**b", CS, "ab"));
        assert!(m("*a*", CS, "bab"));
        assert!(!m("*a*", CS, "bbb"));
        assert!(!m("ab*ba", CS, "aba"), "prefix and suffix may not overlap");
        assert!(m("ab*ba", CS, "abba"));
        assert!(m("*x*y*z*", CS, "axbyczd"));
        assert!(!m("*x*y*z*", CS, "azbycxd"));
    }

    #[test]
    fn case_rules() {
        assert!(!m("Get*", CS, "getTrail"));
        assert!(m("get*", CI, "GETTRAIL"));
        assert!(m("*trail", CI, "GetTRAIL"));
        assert!(m("ÉTÉ", CI, "été"));
        assert!(!m("k", CI, "\u{212A}"), "the Kelvin sign is not an ASCII k");
        let literal = Opts {
            wildcards: false,
            vars: false,
            ci: false,
        };
        assert!(m("a*b", literal, "a*b"));
        assert!(!m("a*b", literal, "axb"));
    }

    #[test]
    fn variables() {
        let ctx = Context {
            username: "alice".into(),
            principal_account: "123456789012".into(),
            ..Context::default()
        };
        let g = Glob::compile("arn:aws:s3:::home/${aws:username}/*", VARS_ON).expect("compiles");
        assert!(g.matches("arn:aws:s3:::home/alice/notes", &ctx));
        assert!(!g.matches("arn:aws:s3:::home/bob/notes", &ctx));
        assert!(!g.matches("arn:aws:s3:::home//notes", &Context::default()));
        let g = Glob::compile("x${AWS:PRINCIPALACCOUNT}y", VARS_ON).expect("compiles");
        assert!(g.matches("x123456789012y", &ctx));
        let g = Glob::compile("a${*}b${?}c${$}", VARS_ON).expect("compiles");
        assert!(g.matches("a*b?c$", &ctx));
        assert!(!g.matches("axbycz$", &ctx));
        let err = Glob::compile("${aws:foo}", VARS_ON).expect_err("unknown variable");
        assert!(
            err.contains("${aws:foo}") && err.contains("${aws:username}"),
            "{err}"
        );
        let err = Glob::compile("a${aws:username", VARS_ON).expect_err("unterminated");
        assert!(err.contains("closing"), "{err}");
        // Without variables, `${...}` is literal text.
        assert!(m("${aws:foo}", CS, "${aws:foo}"));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let text = "a".repeat(200_000);
        let started = Instant::now();
        assert!(!m("a*a*a*a*a*a*a*b", CS, &text));
        assert!(!m("*a*a*a*a*a*a*a*b*", CS, &text));
        assert!(!m("*a?a*a?a*a*a*a*b*", CI, &text));
        assert!(m("a*a*a*a*a*a*a*a", CS, &text));
        assert!(m("*a*a*a*a*a*a*a*a*", CI, &text));
        let star_pattern = "*a".repeat(50) + "b";
        assert!(!m(&star_pattern, CS, &text));
        assert!(!m(&star_pattern, CI, &text));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    fn pattern_char() -> impl Strategy<Value = char> {
        prop_oneof![
            8 => prop::sample::select(vec!['a', 'b', '*', '?']),
            1 => prop::sample::select(vec!['A', 'é', 'É']),
        ]
    }

    fn text_char() -> impl Strategy<Value = char> {
        prop_oneof![
            8 => prop::sample::select(vec!['a', 'b']),
            1 => prop::sample::select(vec!['A', 'B', 'é', 'É', 'ß']),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn agrees_with_reference(
            p in proptest::collection::vec(pattern_char(), 0..8),
            t in proptest::collection::vec(text_char(), 0..10),
            ci in any::<bool>(),
        ) {
            let pattern: String = p.iter().collect();
            let text: String = t.iter().collect();
            let opts = Opts { wildcards: true, vars: false, ci };
            prop_assert_eq!(m(&pattern, opts, &text), reference(&p, &t, ci), "{:?} vs {:?}", pattern, text);
        }
    }
}
