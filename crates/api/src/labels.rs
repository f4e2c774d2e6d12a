//! Label selectors, as `k8s.io/apimachinery/pkg/labels`.
//!
//! A selector is a list of requirements that must all hold. The string form
//! is what `kubectl get -l` and `?labelSelector=` carry:
//! `app=web`, `tier!=db`, `env in (prod,staging)`, `env notin (dev)`,
//! `gpu` (key exists), `!gpu` (key absent). Workload objects carry the
//! structured form, a `LabelSelector` with `matchLabels` and
//! `matchExpressions`; both become the same [`Selector`].

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// How a requirement compares a label's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One requirement: `key op values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.contains(v)),
            Op::NotEquals | Op::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
        }
    }
}

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Matches everything.
    pub fn everything() -> Self {
        Selector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Same as [`Selector::matches`] for an optional label map.
    pub fn matches_opt(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.matches(labels.unwrap_or(&EMPTY))
    }

    /// Parses the string form. Errors name the offending part.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(s)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term)?);
        }
        Ok(Selector { requirements })
    }

    /// Converts a workload's structured selector. An absent selector
    /// selects nothing upstream; callers decide what that means for them.
    pub fn from_label_selector(sel: &LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement { key: k.clone(), op: Op::Equals, values: vec![v.clone()] });
        }
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
                return Err(format!("values: Required value: must be specified when `operator` is '{}'", e.operator));
            }
            requirements.push(Requirement { key: e.key.clone(), op, values });
        }
        Ok(Selector { requirements })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r.op {
                Op::Equals => format!("{}={}", r.key, r.values[0]),
                Op::NotEquals => format!("{}!={}", r.key, r.values[0]),
                Op::In => format!("{} in ({})", r.key, r.values.join(",")),
                Op::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Op::Exists => r.key.clone(),
                Op::DoesNotExist => format!("!{}", r.key),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits on commas that are not inside parentheses.
fn split_terms(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("unable to parse requirement: unbalanced ')' in {s:?}"));
        }
    }
    if depth != 0 {
        return Err(format!("unable to parse requirement: unbalanced '(' in {s:?}"));
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let bad = || format!("unable to parse requirement: {term:?}");
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement { key: check_key(key.trim())?, op: Op::DoesNotExist, values: vec![] });
    }
    for (sym, op) in [("!=", Op::NotEquals), ("==", Op::Equals), ("=", Op::Equals)] {
        if let Some((k, v)) = term.split_once(sym) {
            let v = v.trim();
            check_value(v)?;
            return Ok(Requirement { key: check_key(k.trim())?, op, values: vec![v.to_string()] });
        }
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim_start();
        let (op, list) = if let Some(l) = rest.strip_prefix("notin") {
            (Op::NotIn, l)
        } else if let Some(l) = rest.strip_prefix("in") {
            (Op::In, l)
        } else {
            return Err(bad());
        };
        let list = list.trim().strip_prefix('(').and_then(|l| l.strip_suffix(')')).ok_or_else(bad)?;
        let values: Vec<String> = list.split(',').map(|v| v.trim().to_string()).collect();
        for v in &values {
            check_value(v)?;
        }
        return Ok(Requirement { key: check_key(words[0])?, op, values });
    }
    Ok(Requirement { key: check_key(term)?, op: Op::Exists, values: vec![] })
}

fn check_key(key: &str) -> Result<String, String> {
    let errs = crate::names::validate_label_key(key);
    if key.is_empty() || !errs.is_empty() {
        return Err(format!("invalid label key {key:?}: {}", errs.join("; ")));
    }
    Ok(key.to_string())
}

fn check_value(v: &str) -> Result<(), String> {
    let errs = crate::names::validate_label_value(v);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid label value: {v:?}: {}", errs.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn string_selectors() {
        let web = labels(&[("app", "web"), ("env", "prod")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,env=dev", false),
            ("env in (prod,staging)", true),
            ("env notin (prod)", false),
            ("app", true),
            ("!app", false),
            ("!gpu", true),
            ("gpu!=yes", true),
        ];
        for (sel, want) in cases {
            assert_eq!(Selector::parse(sel).unwrap().matches(&web), want, "{sel:?}");
        }
        assert!(Selector::parse("app=we b").is_err());
        assert!(Selector::parse("env in (a").is_err());
        assert_eq!(Selector::parse("a=b, c in (d,e)").unwrap().to_string(), "a=b,c in (d,e)");
    }

    #[test]
    fn structured_selectors() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
        }))
        .unwrap();
        let s = Selector::from_label_selector(&sel).unwrap();
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
    }
}
