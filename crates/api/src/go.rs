//! How Go prints and reads values, so that messages and flags read as
//! upstream's.
//!
//! Kubernetes' error messages and files show strings as Go's `%q` (and
//! `strconv.Quote`) prints them; users search for those messages, so the
//! api-server and the agent quote the same way. Its command-line flags take
//! durations in Go's `time.ParseDuration` form (`5s`, `1m30s`, `300ms`), and
//! so do tinykube's flags that stand for them.

use std::time::Duration;

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

/// Go's `time.ParseDuration`: a sequence of decimal numbers, each with a
/// unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`), such as `40s`, `1m30s`,
/// `1.5h` or `300ms`; `0` alone needs no unit. Errors read as Go's. A
/// negative duration, which Go accepts, is refused: nothing here waits a
/// negative time.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", quote(s));
    let rest = match s.strip_prefix('-') {
        Some(_) if s != "-0" => return Err(format!("time: negative duration {} is not allowed here", quote(s))),
        Some(r) => r,
        None => s.strip_prefix('+').unwrap_or(s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = rest;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per_unit: f64 = match unit {
            "" => return Err(format!("time: missing unit in duration {}", quote(s))),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("time: unknown unit {} in duration {}", quote(other), quote(s))),
        };
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let nanos = value * nanos_per_unit;
        // Go's duration is an int64 of nanoseconds: about 292 years.
        if !nanos.is_finite() || nanos > i64::MAX as f64 {
            return Err(invalid());
        }
        total += Duration::from_nanos(nanos.round() as u64);
        rest = next;
    }
    if total.as_nanos() > i64::MAX as u128 {
        return Err(invalid());
    }
    Ok(total)
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

    #[test]
    fn go_durations() {
        let ok = [
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("40s", Duration::from_secs(40)),
            ("1m", Duration::from_secs(60)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("300ms", Duration::from_millis(300)),
            ("+2s", Duration::from_secs(2)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            ("10µs", Duration::from_micros(10)),
            (".5s", Duration::from_millis(500)),
        ];
        for (input, want) in ok {
            assert_eq!(parse_duration(input), Ok(want), "{input}");
        }
        let bad = [
            ("", "time: invalid duration \"\""),
            ("5", "time: missing unit in duration \"5\""),
            ("1d", "time: unknown unit \"d\" in duration \"1d\""),
            ("s", "time: invalid duration \"s\""),
            ("1..2s", "time: invalid duration \"1..2s\""),
            ("-5s", "time: negative duration \"-5s\" is not allowed here"),
            ("3000000h", "time: invalid duration \"3000000h\""),
        ];
        for (input, want) in bad {
            assert_eq!(parse_duration(input).unwrap_err(), want, "{input}");
        }
    }
}
