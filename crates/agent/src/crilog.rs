//! The CRI container log format: how a runtime writes a container's output
//! and how the kubelet reads it back.
//!
//! Kubernetes does not store what a container prints as raw bytes. The
//! runtime (containerd's shim, CRI-O's conmon, here [`crate::shim`]) reads
//! the container's stdout and stderr through pipes and writes each line to
//! the log file as one *record*:
//!
//! ```text
//! 2026-11-22T03:00:00.123456789Z stdout F hello world
//! 2026-11-22T03:00:00.123460001Z stderr P the first 16 KiB of a long line
//! 2026-11-22T03:00:00.123460002Z stderr F ...and the rest of it
//! ```
//!
//! A record is the time the runtime read the line (RFC 3339, nanoseconds,
//! UTC), the stream, a tag and the content. The tag is `F` for a *full* line
//! (the container wrote a newline there) and `P` for a *partial* one: a line
//! longer than the runtime's buffer is cut into several `P` records and a
//! final `F`, and output that ends without a newline ends with a `P`. The
//! newline that ends every record belongs to the file, not to the content.
//! Upstream's types are in `k8s.io/cri-api` (`LogStreamType`, `LogTag`);
//! the reader is the kubelet's `pkg/kubelet/kuberuntime/logs/logs.go`.
//!
//! Reading a log back (`kubectl logs`) joins partial records into lines,
//! adds the newline a full record stands for, and with `--timestamps`
//! prefixes each line with its first record's time, written with all nine
//! fractional digits as the kubelet does.

/// The longest content of one record; longer lines are split into
/// partial records. containerd's default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;

/// Which of the container's output streams a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: jiff::Timestamp,
    pub stream: Stream,
    /// `false` for a `P` record: the line goes on in the next record.
    pub full: bool,
    /// The content, without the file's newline.
    pub content: &'a [u8],
}

/// A timestamp as CRI logs and `kubectl logs --timestamps` show it: UTC,
/// always nine fractional digits (Go's `RFC3339NanoFixed`), so that the
/// lines of a log sort and align.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%9fZ").to_string()
}

/// Appends one record, with the file's newline, to `out`.
pub fn encode(out: &mut Vec<u8>, time: jiff::Timestamp, stream: Stream, full: bool, content: &[u8]) {
    out.extend_from_slice(format_time(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Parses one line of a log file (without its newline). `None` when the
/// line is not a CRI record.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let stream = match fields.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    // The tag field may carry more tags after a `:`; only the first means
    // anything today (upstream keeps the format forward compatible so).
    let tags = fields.next()?;
    let full = tags.split(|b| *b == b':').next()? != b"P";
    let content = fields.next().unwrap_or_default();
    Some(Record { time, stream, full, content })
}

/// Turns records back into what the container printed, record by record,
/// remembering across calls whether a line is still open (so a followed
/// log can be decoded as it grows).
#[derive(Debug, Clone)]
pub struct Decoder {
    timestamps: bool,
    /// The previous record ended its line: the next one starts a new line
    /// and gets the timestamp prefix.
    at_line_start: bool,
}

impl Decoder {
    pub fn new(timestamps: bool) -> Self {
        Decoder { timestamps, at_line_start: true }
    }

    /// Appends what one file line stands for to `out`. A line that is not a
    /// CRI record (a log written before tinykube used the format) is passed
    /// through as it is.
    pub fn push_line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let Some(record) = parse(line) else {
            out.extend_from_slice(line);
            out.push(b'\n');
            self.at_line_start = true;
            return;
        };
        if self.timestamps && self.at_line_start {
            out.extend_from_slice(format_time(record.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(record.content);
        if record.full {
            out.push(b'\n');
        }
        self.at_line_start = record.full;
    }
}

/// The offset in `data` (whole file lines) where the records of its last
/// `n` logical lines begin: a run of partial records and the full record
/// that ends them count as one line, as the container printed it. (The
/// kubelet counts file lines instead; the two differ only for lines longer
/// than [`MAX_LINE`].) A final run of partial records counts as a line.
pub fn tail_start(data: &[u8], n: usize) -> usize {
    if n == 0 {
        return data.len();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    // Walk file lines from the end; a logical line begins where the file
    // line before it is a full record (or not a record at all).
    let mut seen = 0;
    let mut end = body.len();
    loop {
        let start = body[..end].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let previous_ends_a_line = if start == 0 {
            true
        } else {
            let prev_start = body[..start - 1].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            parse(&body[prev_start..start - 1]).is_none_or(|r| r.full)
        };
        if previous_ends_a_line {
            seen += 1;
            if seen == n {
                return start;
            }
        }
        if start == 0 {
            return 0;
        }
        end = start - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        encode(&mut out, at("2026-11-22T03:00:00.1234Z"), Stream::Stdout, true, b"hello world");
        encode(&mut out, at("2026-11-22T03:00:01Z"), Stream::Stderr, false, b"");
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "2026-11-22T03:00:00.123400000Z stdout F hello world\n2026-11-22T03:00:01.000000000Z stderr P \n"
        );
        let lines: Vec<&[u8]> = out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let first = parse(lines[0]).unwrap();
        assert_eq!((first.stream, first.full, first.content), (Stream::Stdout, true, &b"hello world"[..]));
        let second = parse(lines[1]).unwrap();
        assert_eq!((second.stream, second.full, second.content), (Stream::Stderr, false, &b""[..]));
    }

    #[test]
    fn parsing_follows_the_kubelet() {
        // (line, Some((stream, full, content))); None: not a record.
        type Row = (&'static str, Option<(Stream, bool, &'static str)>);
        let table: &[Row] = &[
            ("2016-10-06T00:17:09.669794202Z stdout P log content 1", Some((Stream::Stdout, false, "log content 1"))),
            ("2016-10-06T00:17:09.669794203Z stderr F log content 2", Some((Stream::Stderr, true, "log content 2"))),
            // Lenient time (fewer digits, an offset), extra tags, spaces kept.
            ("2016-10-06T02:17:09.6+02:00 stdout F:x  two  spaces", Some((Stream::Stdout, true, " two  spaces"))),
            ("2016-10-06T00:17:09Z stdout F", Some((Stream::Stdout, true, ""))),
            ("2016-10-06T00:17:09Z stdin F no", None),
            ("hello from an old raw log", None),
            ("", None),
        ];
        for (line, want) in table {
            let got = parse(line.as_bytes()).map(|r| (r.stream, r.full, String::from_utf8_lossy(r.content).into_owned()));
            assert_eq!(got, want.map(|(s, f, c)| (s, f, c.to_string())), "{line:?}");
        }
        assert_eq!(parse(b"2016-10-06T02:17:09.6+02:00 stdout F x").unwrap().time, at("2016-10-06T00:17:09.6Z"), "offsets are honoured");
    }

    const LOG: &str = "\
2026-01-01T00:00:01.000000000Z stdout F one
2026-01-01T00:00:02.000000000Z stderr P tw
2026-01-01T00:00:03.000000000Z stderr F o
2026-01-01T00:00:04.000000000Z stdout F three
2026-01-01T00:00:05.000000000Z stdout P no newline
";

    fn decode(data: &str, timestamps: bool) -> String {
        let mut d = Decoder::new(timestamps);
        let mut out = Vec::new();
        for line in data.lines() {
            d.push_line(line.as_bytes(), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decoding_joins_partial_records_and_prefixes_lines() {
        assert_eq!(decode(LOG, false), "one\ntwo\nthree\nno newline");
        assert_eq!(
            decode(LOG, true),
            "2026-01-01T00:00:01.000000000Z one\n\
             2026-01-01T00:00:02.000000000Z two\n\
             2026-01-01T00:00:04.000000000Z three\n\
             2026-01-01T00:00:05.000000000Z no newline"
        );
        assert_eq!(decode("raw line\n", true), "raw line\n");
    }

    #[test]
    fn tail_counts_logical_lines() {
        for (n, want) in [
            (0, ""),
            (1, "no newline"),
            (2, "three\nno newline"),
            (3, "two\nthree\nno newline"),
            (4, "one\ntwo\nthree\nno newline"),
            (9, "one\ntwo\nthree\nno newline"),
        ] {
            assert_eq!(decode(&LOG[tail_start(LOG.as_bytes(), n)..], false), want, "tail {n}");
        }
        assert_eq!(tail_start(b"", 3), 0);
        let raw = b"a\nb\nc\n";
        assert_eq!(&raw[tail_start(raw, 2)..], b"b\nc\n");
    }
}
