//! How Go prints values, so that messages read as upstream's.
//!
//! Kubernetes' error messages and files show strings as Go's `%q` (and
//! `strconv.Quote`) prints them; users search for those messages, so the
//! api-server and the agent quote the same way.

/// Go's `strconv.Quote`: printable characters as they are, `"` and `\`
/// escaped, the rest as `\n`, `\x1b`, `\u00a0`, `\U0001f600`-style escapes.
/// Go decides "printable" from Unicode tables Rust's standard library does
/// not carry; controls, spaces other than ' ' and the common invisible
/// format characters are escaped here, which covers what annotations hold.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if c == ' ' || !(c.is_control() || c.is_whitespace() || is_format(c)) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// The invisible "format" characters (Unicode category Cf) one meets in
/// text: soft hyphen, zero-width spaces and joiners, direction marks, BOM.
fn is_format(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}'
        | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting() {
        for (input, want) in [
            ("plain", r#""plain""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\u{1b}[0m\u{7f}", r#""\x1b[0m\x7f""#),
            ("zero\u{200b}width", r#""zero\u200bwidth""#),
            ("日本 😀", "\"日本 😀\""),
            ("\u{a}\u{b}\u{c}\u{d}\u{7}\u{8}", r#""\n\v\f\r\a\b""#),
        ] {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }
}
