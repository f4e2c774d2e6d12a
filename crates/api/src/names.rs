//! Object-name validation, as `k8s.io/apimachinery/pkg/util/validation`.
//!
//! Most kinds take a DNS-1123 *subdomain* (up to 253 characters of
//! lower-case alphanumerics, '-' and '.'); namespaces, services and a few
//! others take the stricter DNS-1123 *label* (63 characters, no dots). The
//! error messages are upstream's, because users paste them into searches.

const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && is_alnum(b[0]) && is_alnum(b[b.len() - 1]) && b.iter().all(|&c| is_alnum(c) || c == b'-')
}

/// Checks a DNS-1123 label; returns upstream's messages for each problem.
pub fn validate_label(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > LABEL_MAX {
        errs.push(format!("must be no more than {LABEL_MAX} characters"));
    }
    if !label_ok(name) {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
             regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

/// Checks a DNS-1123 subdomain; returns upstream's messages for each problem.
pub fn validate_subdomain(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > SUBDOMAIN_MAX {
        errs.push(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    if name.is_empty() || !name.split('.').all(label_ok) {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
             or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
             regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_string(),
        );
    }
    errs
}

/// Checks a label or annotation key's name part and a label value, as
/// upstream's `IsQualifiedName` / `IsValidLabelValue` do (simplified: the
/// optional `prefix/` must be a subdomain, the name 63 alphanumerics, '-',
/// '_' or '.', starting and ending alphanumeric).
pub fn validate_label_key(key: &str) -> Vec<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        errs.extend(validate_subdomain(p).into_iter().map(|e| format!("prefix part {e}")));
    }
    if !qualified_part_ok(name, false) {
        errs.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    errs
}

/// Checks a label value (may be empty).
pub fn validate_label_value(value: &str) -> Vec<String> {
    if qualified_part_ok(value, true) {
        Vec::new()
    } else {
        vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into()]
    }
}

fn qualified_part_ok(s: &str, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    let b = s.as_bytes();
    s.len() <= LABEL_MAX
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        for ok in ["web", "web-1", "a.b.c", "0abc", "x"] {
            assert!(validate_subdomain(ok).is_empty(), "{ok}");
        }
        for bad in ["", "Web", "web_1", "-web", "web-", "a..b", ".a", &"a".repeat(254)] {
            assert!(!validate_subdomain(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert!(validate_label("kube-system").is_empty());
        assert!(!validate_label("a.b").is_empty());
        assert!(!validate_label(&"a".repeat(64)).is_empty());
        assert!(validate_label_key("app.kubernetes.io/name").is_empty());
        assert!(!validate_label_key("bad key").is_empty());
        assert!(validate_label_value("").is_empty());
        assert!(!validate_label_value("-x").is_empty());
    }
}
