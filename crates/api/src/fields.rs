//! Field selectors, as `k8s.io/apimachinery/pkg/fields`: `key=value` and
//! `key!=value` terms joined by commas, over a small set of fields each kind
//! supports (`metadata.name`, `metadata.namespace`, `spec.nodeName`,
//! `status.phase`, ...). Which fields a kind supports, and their values for
//! one object, is the api-server's business; this module only parses and
//! matches.

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub terms: Vec<Term>,
}

impl FieldSelector {
    /// Parses the string form as upstream's `fields.ParseSelector`:
    /// terms split on unescaped commas (empty ones skipped), each split at
    /// its first `!=`, `==` or `=`. Nothing is trimmed — ` a=b` names the
    /// field " a" — and an empty value is allowed (`metadata.name==`). In
    /// a value, `\,`, `\=` and `\\` stand for the character; a bare `,` or
    /// `=` there is an error.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = split_terms(s);
        // Upstream sorts the terms, so equal selectors compare equal.
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, value)) = split_term(part) else {
                return Err(format!("invalid selector: '{s}'; can't understand '{part}'"));
            };
            terms.push(Term { field: field.to_string(), value: unescape_value(value)?, negated: op == "!=" });
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether an object matches, given a function that returns the
    /// object's value for a field name (`None` for an unsupported field;
    /// callers reject those before matching).
    pub fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let v = value_of(&t.field).unwrap_or_default();
            (v == t.value) != t.negated
        })
    }

    /// The value a term pins a field to (`spec.nodeName=n1` → `Some("n1")`).
    pub fn equality(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.field == field && !t.negated).map(|t| t.value.as_str())
    }
}

/// The comma-separated terms; a backslash-escaped comma is data, kept
/// with its backslash for [`unescape_value`].
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `field`, operator and raw value, split at the first operator; `!=` and
/// `==` are tried before `=` at each position.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// Undoes the escaping of a value, with upstream's errors (which print
/// an unescaped character as its code point, `61` for `=`).
fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid field selector: invalid escape sequence: \\{c}"));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: {}", c as u32)),
            _ => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        let obj = |f: &str| match f {
            "spec.nodeName" => Some("n1".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        assert!(s.matches(obj));
        assert_eq!(s.equality("spec.nodeName"), Some("n1"));
        assert!(FieldSelector::parse("nonsense").is_err());
        assert!(FieldSelector::parse("").unwrap().matches(|_| None));
        assert!(!FieldSelector::parse("spec.nodeName=").unwrap().matches(obj));
    }

    /// What upstream accepts, and the exact errors of what it refuses
    /// (`k8s.io/apimachinery/pkg/fields/selector.go`).
    #[test]
    fn upstream_grammar() {
        let term = |f: &str, v: &str, negated| Term { field: f.into(), value: v.into(), negated };
        let accepted: &[(&str, Vec<Term>)] = &[
            ("metadata.name==", vec![term("metadata.name", "", false)]),
            ("metadata.name=a,", vec![term("metadata.name", "a", false)]),
            (",,a=b", vec![term("a", "b", false)]),
            ("b!=1,a=2", vec![term("a", "2", false), term("b", "1", true)]),
            (" a = b", vec![term(" a ", " b", false)]),
            (r"a=x\,y\=z\\", vec![term("a", r"x,y=z\", false)]),
        ];
        for (input, want) in accepted {
            assert_eq!(&FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}")).terms, want, "{input:?}");
        }
        let refused: &[(&str, &str)] = &[
            ("nonsense", "invalid selector: 'nonsense'; can't understand 'nonsense'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            ("a==b=c", "invalid field selector: unescaped character in value: 61"),
            ("a=b==", "invalid field selector: unescaped character in value: 61"),
            (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
            (r"a=b\", r"invalid field selector: invalid escape sequence: \"),
        ];
        for (input, want) in refused {
            assert_eq!(FieldSelector::parse(input).err().as_deref(), Some(*want), "{input:?}");
        }
    }
}
