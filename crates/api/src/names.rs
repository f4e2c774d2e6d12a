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

/// The `(e.g. 'a',  or 'b', regex used for validation is '...')` tail
/// upstream's `RegexError` adds to a message, double space and all.
fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    let shown: String = examples.iter().enumerate().map(|(i, e)| if i > 0 { format!(" or '{e}', ") } else { format!("'{e}', ") }).collect();
    format!("{msg} (e.g. {shown}regex used for validation is '{regex}')")
}

const QUALIFIED_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

fn qualified_name_part() -> String {
    regex_error(&format!("name part {QUALIFIED_NAME_MSG}"), QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
}

/// Upstream's `IsQualifiedName`: an optional DNS subdomain prefix and `/`,
/// then a name of at most 63 alphanumerics, '-', '_' or '.'. Label keys,
/// annotation keys, finalizers and resource names are qualified names.
pub fn validate_label_key(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let mut errs = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(validate_subdomain(prefix).into_iter().map(|e| format!("prefix part {e}")));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            )]
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > LABEL_MAX {
        errs.push(format!("name part must be no more than {LABEL_MAX} characters"));
    }
    if !qualified_part_ok(name) {
        errs.push(qualified_name_part());
    }
    errs
}

/// Upstream's `IsQualifiedName`, under the name its callers use.
pub fn validate_qualified_name(value: &str) -> Vec<String> {
    validate_label_key(value)
}

/// Upstream's `IsValidLabelValue`: empty, or a qualified name's name part.
pub fn validate_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_MAX {
        errs.push(format!("must be no more than {LABEL_MAX} characters"));
    }
    if !value.is_empty() && !qualified_part_ok(value) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn qualified_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Upstream's `IsDNS1035Label`: a DNS label that starts with a letter, the
/// rule for Service names (a service name becomes an environment variable
/// prefix, which cannot start with a digit).
pub fn validate_dns1035_label(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > LABEL_MAX {
        errs.push(format!("must be no more than {LABEL_MAX} characters"));
    }
    if !label_ok(name) || !name.as_bytes()[0].is_ascii_lowercase() {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            "[a-z]([-a-z0-9]*[a-z0-9])?",
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Upstream's `IsConfigMapKey`: the keys of ConfigMaps and Secrets become
/// file names in a volume, so they may not walk out of it.
pub fn validate_config_map_key(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > SUBDOMAIN_MAX {
        errs.push(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    if key.is_empty() || !key.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match key {
        "." => errs.push("must not be '.'".into()),
        ".." => errs.push("must not be '..'".into()),
        k if k.starts_with("..") => errs.push("must not start with '..'".into()),
        _ => {}
    }
    errs
}

/// Upstream's `IsValidPortNum`.
pub fn validate_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".into()]
    }
}

/// Upstream's `IsValidPortName`: an IANA service name, which is what a
/// named port (`targetPort: http`) refers to.
pub fn validate_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if port.is_empty() || !port.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// Upstream's `IsValidPercent`: digits and a trailing '%'.
pub fn validate_percent(value: &str) -> Vec<String> {
    let digits = value.strip_suffix('%').unwrap_or_default();
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        Vec::new()
    } else {
        vec![regex_error("a valid percent string must be a numeric string followed by an ending '%'", "[0-9]+%", &["1%", "93%"])]
    }
}

/// Upstream's `IsRelaxedEnvVarName` (the `RelaxedEnvironmentVariableValidation`
/// rule, on by default since 1.32): any printable ASCII but '='.
pub fn validate_env_var_name(name: &str) -> Vec<String> {
    if !name.is_empty() && name.bytes().all(|c| (b' '..=b'~').contains(&c) && c != b'=') {
        Vec::new()
    } else {
        vec!["a valid environment variable name must consist only of printable ASCII characters other than '='".into()]
    }
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
