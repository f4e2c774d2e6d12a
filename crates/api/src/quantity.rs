//! Resource quantities: `100m` of cpu, `128Mi` of memory.
//!
//! Kubernetes writes amounts of a resource as a `Quantity` string: a decimal
//! number followed by a suffix that scales it, as `resource.Quantity` in
//! `k8s.io/apimachinery/pkg/api/resource` parses it:
//!
//! - decimal SI: `n` (10⁻⁹), `u` (10⁻⁶), `m` (10⁻³), none, `k` (10³), `M`,
//!   `G`, `T`, `P`, `E` (10¹⁸);
//! - binary SI: `Ki` (2¹⁰), `Mi`, `Gi`, `Ti`, `Pi`, `Ei` (2⁶⁰);
//! - a decimal exponent: `1e3`, `5E-1`.
//!
//! So `0.5` cpu is `500m`, `1.5Gi` of memory is 1 610 612 736 bytes, and
//! `1G` is 10⁹ bytes, not 2³⁰. Components never do arithmetic on the
//! strings: the scheduler compares integers — millicores for cpu, bytes for
//! memory — exactly as upstream's `MilliValue()` and `Value()` give them,
//! rounding a fraction up (a request of `0.1` byte still needs one byte).
//!
//! Where tinykube simplifies: quantities are parsed into integers on demand
//! instead of being kept as an arbitrary-precision decimal with a preferred
//! format, so the formatting helpers here cover only what components write
//! (a kubelet's `16384000Ki` of memory, `2` or `1500m` of cpu).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The grammar upstream quotes when a quantity does not parse.
const FORMAT_ERROR: &str = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// More significant digits than this cannot be represented exactly in the
/// 128-bit arithmetic below; no real request comes close.
const MAX_DIGITS: usize = 30;

/// A parsed quantity: `(-1)^negative × mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

/// Parses the number and suffix of a quantity string.
fn parse(s: &str) -> Result<Parsed, String> {
    let err = |detail: &str| format!("invalid quantity {s:?}: {detail}");
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
        None => return Err(err(FORMAT_ERROR)),
    };
    // The numeric part: digits, at most one '.', more digits.
    let numeric_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(numeric_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(err(FORMAT_ERROR));
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(err("too many significant digits"));
    }
    let mantissa: u128 =
        if significant.is_empty() { 0 } else { significant.parse().map_err(|_| err("unable to parse numeric part of quantity"))? };
    let fraction_digits = i32::try_from(fraction.len()).map_err(|_| err("too many digits"))?;

    let (exp10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            // `e3`, `E-2`: a decimal exponent. A bare `E` was Exa, above.
            let exponent =
                suffix.strip_prefix(['e', 'E']).filter(|e| !e.is_empty()).ok_or_else(|| err("unable to parse quantity's suffix"))?;
            let exponent: i32 = exponent.parse().map_err(|_| err("unable to parse quantity's suffix"))?;
            if exponent.abs() > 100 {
                return Err(err("exponent out of range"));
            }
            (exponent, 0)
        }
    };
    Ok(Parsed { negative, mantissa, exp10: exp10 - fraction_digits, exp2 })
}

/// The quantity times `10^scale`, rounded up in magnitude to an integer.
fn scaled(q: &Quantity, scale: i32) -> Result<i64, String> {
    let p = parse(&q.0)?;
    let too_large = || format!("quantity {:?} is too large", q.0);
    if p.mantissa == 0 {
        return Ok(0);
    }
    let numerator = p.mantissa.checked_mul(1u128 << p.exp2).ok_or_else(too_large)?;
    let exp = p.exp10 + scale;
    let magnitude = if exp >= 0 {
        let factor = 10u128.checked_pow(exp.unsigned_abs()).ok_or_else(too_large)?;
        numerator.checked_mul(factor).ok_or_else(too_large)?
    } else {
        match 10u128.checked_pow(exp.unsigned_abs()) {
            // Round up: any non-zero remainder adds one unit.
            Some(denominator) => numerator.div_ceil(denominator),
            // A divisor beyond 10^38 leaves a positive fraction below one unit.
            None => 1,
        }
    };
    let magnitude = i64::try_from(magnitude).map_err(|_| too_large())?;
    Ok(if p.negative { -magnitude } else { magnitude })
}

/// Checks that `q` is a well-formed quantity.
pub fn validate(q: &Quantity) -> Result<(), String> {
    parse(&q.0).map(|_| ())
}

/// A cpu quantity in millicores (`100m` → 100, `0.5` → 500, `2` → 2000),
/// rounded up as upstream's `MilliValue()`.
pub fn cpu_millis(q: &Quantity) -> Result<i64, String> {
    scaled(q, 3)
}

/// A memory (or any countable) quantity in whole units — bytes for memory,
/// pods for `pods` — rounded up as upstream's `Value()`.
pub fn bytes(q: &Quantity) -> Result<i64, String> {
    scaled(q, 0)
}

/// A byte count in the form the kubelet reports memory capacity:
/// `16384000Ki`. A count that is not a whole number of KiB is written as
/// plain bytes, since a quantity must not round a capacity.
pub fn format_bytes_as_ki(bytes: i64) -> String {
    if bytes % 1024 == 0 {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// Millicores in canonical form: whole cores as `2`, otherwise `1500m`.
pub fn format_cpu_millis(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    #[test]
    fn cpu_quantities_in_millicores() {
        let cases: &[(&str, i64)] = &[
            ("100m", 100),
            ("0.5", 500),
            (".5", 500),
            ("2", 2000),
            ("2.", 2000),
            ("1.5", 1500),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("0.0001", 1), // rounded up, as MilliValue does
            ("1500u", 2),
            ("250000n", 1),
            ("+3", 3000),
            ("-1", -1000),
            ("0", 0),
            ("0m", 0),
            ("1k", 1_000_000),
        ];
        for (s, want) in cases {
            assert_eq!(cpu_millis(&q(s)), Ok(*want), "cpu {s}");
        }
    }

    #[test]
    fn memory_quantities_in_bytes() {
        let cases: &[(&str, i64)] = &[
            ("128Mi", 128 * 1024 * 1024),
            ("1.5Gi", 1_610_612_736),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("500k", 500_000),
            ("16384000Ki", 16_384_000 * 1024),
            ("1e3", 1000),
            ("1E", 1_000_000_000_000_000_000),
            ("1Ei", 1 << 60),
            ("0.5Ki", 512),
            ("100m", 1), // a tenth of a byte still needs a byte
            ("123", 123),
            ("1T", 1_000_000_000_000),
            ("2Ti", 2 << 40),
            ("1P", 1_000_000_000_000_000),
            ("1Pi", 1 << 50),
        ];
        for (s, want) in cases {
            assert_eq!(bytes(&q(s)), Ok(*want), "memory {s}");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for s in ["", "abc", "1.2.3", ".", "-", "1x", "1Ki2", "1e", "1eX", "Mi", "1 Gi", "1Gib", "10Ei", "1e100"] {
            assert!(bytes(&q(s)).is_err(), "{s:?} should not parse to bytes");
        }
        assert!(validate(&q("250m")).is_ok());
        assert!(validate(&q("12Q")).is_err());
    }

    #[test]
    fn formatting_as_components_write_it() {
        let cases: &[(i64, &str)] = &[(16_384_000 * 1024, "16384000Ki"), (1024, "1Ki"), (0, "0Ki"), (1000, "1000")];
        for (n, want) in cases {
            assert_eq!(format_bytes_as_ki(*n), *want);
        }
        let cases: &[(i64, &str)] = &[(2000, "2"), (1500, "1500m"), (100, "100m"), (0, "0")];
        for (m, want) in cases {
            assert_eq!(format_cpu_millis(*m), *want);
        }
        // Round trips through the parser.
        assert_eq!(bytes(&q(&format_bytes_as_ki(8 << 30))), Ok(8 << 30));
        assert_eq!(cpu_millis(&q(&format_cpu_millis(1500))), Ok(1500));
    }
}
