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
    /// `gt`: the label's value, as an integer, is greater.
    GreaterThan,
    /// `lt`: the label's value, as an integer, is less.
    LessThan,
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
            Op::GreaterThan | Op::LessThan => {
                let (Some(have), Some(want)) =
                    (value.and_then(|v| v.parse::<i64>().ok()), self.values.first().and_then(|v| v.parse::<i64>().ok()))
                else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
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

    /// Parses the string form with upstream's grammar and error messages
    /// (`labels.Parse`): a lexer turns the text into tokens, and a
    /// recursive-descent parser reads `[!] KEY [op VALUE | in|notin (VALUES)]`
    /// requirements separated by commas. `in ()` is the set holding the
    /// empty value, as upstream reads it; a stray comma is an error.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parser = Parser { tokens: lex(s), position: 0 };
        let mut requirements = parser.parse()?;
        // Upstream sorts by key so that equal selectors print the same.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
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
            .map(|r| (r, r.values.first().map(String::as_str).unwrap_or_default()))
            .map(|(r, first)| match r.op {
                Op::Equals => format!("{}={first}", r.key),
                Op::NotEquals => format!("{}!={first}", r.key),
                Op::In => format!("{} in ({})", r.key, r.values.join(",")),
                Op::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Op::Exists => r.key.clone(),
                Op::DoesNotExist => format!("!{}", r.key),
                Op::GreaterThan => format!("{}>{first}", r.key),
                Op::LessThan => format!("{}<{first}", r.key),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A token of the selector language, as upstream's lexer produces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A run of special symbols that is no operator (`=!=`, `<>`...).
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    /// `!`
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// The literals that are tokens of their own; anything else is an
/// identifier (a key or a value).
fn literal_token(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the selector into tokens, ending with [`Token::EndOfString`].
/// Like upstream's lexer it works on bytes: identifiers end at whitespace
/// or a special symbol, and a run of special symbols is read greedily as
/// the longest operator it starts with.
fn lex(s: &str) -> Vec<(Token, String)> {
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < bytes.len() && is_whitespace(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() {
            out.push((Token::EndOfString, String::new()));
            return out;
        }
        let start = pos;
        if is_special_symbol(bytes[pos]) {
            let mut last: Option<(Token, usize)> = None;
            while pos < bytes.len() && is_special_symbol(bytes[pos]) {
                pos += 1;
                match literal_token(&s[start..pos]) {
                    Some(token) => last = Some((token, pos)),
                    None if last.is_some() => {
                        pos -= 1;
                        break;
                    }
                    None => {}
                }
            }
            match last {
                Some((token, end)) => {
                    pos = end;
                    out.push((token, s[start..end].to_string()));
                }
                None => out.push((Token::Error, format!("error expected: keyword found '{}'", &s[start..pos]))),
            }
        } else {
            while pos < bytes.len() && !is_special_symbol(bytes[pos]) && !is_whitespace(bytes[pos]) {
                pos += 1;
            }
            // Special symbols and whitespace are ASCII, so `start..pos`
            // falls on character boundaries.
            let word = &s[start..pos];
            out.push((literal_token(word).unwrap_or(Token::Identifier), word.to_string()));
        }
    }
}

/// Where the parser is: `in` and `notin` are operators after a key but
/// plain identifiers where a value is expected (`a in (in)`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// Upstream's recursive-descent parser over the lexed tokens.
struct Parser {
    tokens: Vec<(Token, String)>,
    position: usize,
}

/// The binary operators, as upstream lists them in its errors.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn peek(&self, context: Context) -> (Token, String) {
        let (token, literal) = self.tokens.get(self.position).cloned().unwrap_or((Token::EndOfString, String::new()));
        match token {
            Token::In | Token::NotIn if context == Context::Values => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn next(&mut self, context: Context) -> (Token, String) {
        let item = self.peek(context);
        self.position = (self.position + 1).min(self.tokens.len());
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.peek(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (token, literal) = self.next(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (after, literal) = self.peek(Context::Values);
                            if after != Token::Identifier && after != Token::DoesNotExist {
                                return Err(format!("found '{literal}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{literal}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => return Err(format!("found '{literal}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, unary) = self.key_and_inferred_operator()?;
        if let Some(op) = unary {
            return Ok(Requirement { key, op, values: vec![] });
        }
        let op = self.operator()?;
        let values = match op {
            Op::In | Op::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        // Upstream's `NewRequirement` collects every problem, then joins
        // them as an aggregate: one alone, several in brackets.
        let mut problems = Vec::new();
        if matches!(op, Op::GreaterThan | Op::LessThan) {
            for (i, v) in values.iter().enumerate().filter(|(_, v)| v.parse::<i64>().is_err()) {
                problems.push(format!("values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"));
            }
        }
        for (i, v) in values.iter().enumerate() {
            let errs = crate::names::validate_label_value(v);
            if !errs.is_empty() {
                problems.push(format!("values[{i}][{key}]: Invalid value: {v:?}: {}", errs.join("; ")));
            }
        }
        match problems.as_slice() {
            [] => {}
            [one] => return Err(one.clone()),
            many => return Err(format!("[{}]", many.join(", "))),
        }
        Ok(Requirement { key, op, values })
    }

    /// The key, and `Exists` or `DoesNotExist` when no binary operator
    /// follows it.
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Op>), String> {
        let (mut token, mut literal) = self.next(Context::Values);
        let negated = token == Token::DoesNotExist;
        if negated {
            (token, literal) = self.next(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let errs = crate::names::validate_label_key(&literal);
        if !errs.is_empty() {
            // Upstream validates the key against a nil field path here.
            return Err(format!("<nil>: Invalid value: {literal:?}: {}", errs.join("; ")));
        }
        let (after, _) = self.peek(Context::Values);
        let unary = if negated {
            Some(Op::DoesNotExist)
        } else if matches!(after, Token::EndOfString | Token::Comma) {
            Some(Op::Exists)
        } else {
            None
        };
        Ok((literal, unary))
    }

    fn operator(&mut self) -> Result<Op, String> {
        let (token, literal) = self.next(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Op::In,
            Token::Equals | Token::DoubleEquals => Op::Equals,
            Token::GreaterThan => Op::GreaterThan,
            Token::LessThan => Op::LessThan,
            Token::NotIn => Op::NotIn,
            Token::NotEquals => Op::NotEquals,
            _ => return Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `(a,b,c)`; empty members are the empty value, so `()` and `(,)` are
    /// both the set `{""}`. The set comes back sorted, as upstream's.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.next(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.peek(Context::Values);
        let mut set = std::collections::BTreeSet::new();
        match token {
            Token::Identifier | Token::Comma => {
                self.identifier_list(&mut set)?;
                if self.next(Context::Values).0 != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
            }
            Token::ClosedPar => {
                self.next(Context::Values);
                set.insert(String::new());
            }
            _ => return Err(format!("found '{literal}', expected: ',', ')' or identifier")),
        }
        Ok(set.into_iter().collect())
    }

    fn identifier_list(&mut self, set: &mut std::collections::BTreeSet<String>) -> Result<(), String> {
        loop {
            let (token, literal) = self.next(Context::Values);
            match token {
                Token::Identifier => {
                    set.insert(literal);
                    let (after, literal) = self.peek(Context::Values);
                    match after {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(()),
                        _ => return Err(format!("found '{literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    match self.peek(Context::Values).0 {
                        Token::ClosedPar => {
                            set.insert(String::new());
                            return Ok(());
                        }
                        Token::Comma => {
                            self.next(Context::Values);
                            set.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The one value of `=`, `==`, `!=`, `>` or `<`; nothing before a
    /// comma or the end is the empty value.
    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(Context::Values).0, Token::EndOfString | Token::Comma) {
            return Ok(String::new());
        }
        let (token, literal) = self.next(Context::Values);
        if token == Token::Identifier {
            Ok(literal)
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
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
        assert_eq!(Selector::parse("a=b, c in (d,e)").unwrap().to_string(), "a=b,c in (d,e)");
        assert_eq!(Selector::parse("z,a").unwrap().to_string(), "a,z", "sorted by key, as upstream");
    }

    /// Selectors upstream accepts, some surprising: `in ()` is the set of
    /// the empty value, `==` with nothing after it is the empty value,
    /// `in` may be a value.
    #[test]
    fn edge_cases_upstream_accepts() {
        let cases: &[(&str, &str)] = &[
            ("a in ()", "a in ()"),
            ("a in (,)", "a in ()"),
            ("a in (x,,y)", "a in (,x,y)"),
            ("a=", "a="),
            ("a==b", "a=b"),
            ("a in (in,notin)", "a in (in,notin)"),
            ("  a  ,  !b  ", "a,!b"),
            ("a>1,b<2", "a>1,b<2"),
            ("x in (b,a)", "x in (a,b)"),
        ];
        for (input, printed) in cases {
            let parsed = Selector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(parsed.to_string(), *printed, "{input:?}");
        }
        assert!(Selector::parse("a in ()").unwrap().matches(&labels(&[("a", "")])));
        assert!(Selector::parse("a>1").unwrap().matches(&labels(&[("a", "2")])));
        assert!(!Selector::parse("a<1").unwrap().matches(&labels(&[("a", "x")])));
    }

    /// Each malformed selector and the exact message upstream's parser
    /// gives (`k8s.io/apimachinery/pkg/labels/selector.go`, 1.32).
    #[test]
    fn malformed_selectors_fail_with_upstreams_messages() {
        const KEY: &str =
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        const VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        let cases: &[(&str, String)] = &[
            (",,", "found ',', expected: !, identifier, or 'end of string'".into()),
            ("a=b,", "found '', expected: identifier after ','".into()),
            ("a=b,,c", "found ',', expected: identifier after ','".into()),
            ("=a", "found '=', expected: !, identifier, or 'end of string'".into()),
            ("a=b c", "found 'c', expected: ',' or 'end of string'".into()),
            ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".into()),
            ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'".into()),
            ("a in b", "unable to parse requirement: found 'b' expected: '('".into()),
            ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".into()),
            ("a in (b,=)", "unable to parse requirement: found '=', expected: ',', or identifier".into()),
            ("a=(b)", "unable to parse requirement: found '(', expected: identifier".into()),
            ("a=!=b", "unable to parse requirement: found '!=', expected: identifier".into()),
            ("a<>1", "unable to parse requirement: found '>', expected: identifier".into()),
            ("!", "unable to parse requirement: found '', expected: identifier".into()),
            ("!!a", "unable to parse requirement: found '!', expected: identifier".into()),
            ("a=>", "unable to parse requirement: found '>', expected: identifier".into()),
            (
                "a>b",
                "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
                    .into(),
            ),
            ("-a", format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {KEY}")),
            ("a=-b", format!("unable to parse requirement: values[0][a]: Invalid value: \"-b\": {VALUE}")),
            ("a in (ok,-b)", format!("unable to parse requirement: values[0][a]: Invalid value: \"-b\": {VALUE}")),
        ];
        for (input, want) in cases {
            assert_eq!(Selector::parse(input).err().as_deref(), Some(want.as_str()), "{input:?}");
        }
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
