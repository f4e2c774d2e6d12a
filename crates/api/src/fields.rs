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
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, negated) = if let Some((f, v)) = raw.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = raw.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = raw.split_once('=') {
                (f, v, false)
            } else {
                return Err(format!("invalid selector: '{raw}'; can't understand '{raw}'"));
            };
            terms.push(Term { field: field.trim().into(), value: value.trim().into(), negated });
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
}
