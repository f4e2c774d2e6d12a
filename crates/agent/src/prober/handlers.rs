//! The four probe handlers: one check each, with upstream's outputs.
//!
//! Upstream keeps these in `pkg/probe/{exec,http,tcp,grpc}`, apart from
//! the kubelet, because they know nothing about pods: a command and its
//! exit code, a URL and its status code, an address that accepts a
//! connection. The texts they return are what users read in `kubectl
//! describe pod` after "Liveness probe failed: ", so they follow upstream
//! (which are Go's error strings): `HTTP probe failed with statuscode:
//! 500`, `dial tcp 127.0.0.1:8080: connect: connection refused`,
//! `command "sleep 10" timed out`, or the command's own output.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::ExecSync;

/// The most output a probe keeps (upstream's `maxReadLength`, 10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;
/// The kubelet's User-Agent on HTTP probes: `kube-probe/<major>.<minor>`.
pub const USER_AGENT: &str = "kube-probe/1.32";

/// What one check found (upstream's `probe.Result` with its output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A success worth mentioning: an HTTP redirect that was not followed.
    Warning(String),
    /// The container failed the check; the text says how.
    Failure(String),
    /// The check could not be made at all (a port name that does not
    /// exist, a handler this agent does not support): no verdict.
    Error(String),
}

/// `exec`: what the runtime's `ExecSync` of `command` in the container
/// means: exit code 0 is success, anything else failure with the command's
/// output; a command that outlived its timeout was killed and fails.
pub fn exec(command: &[String], result: ExecSync) -> Outcome {
    match result {
        ExecSync::Exited { code: 0, .. } => Outcome::Success,
        ExecSync::Exited { output, .. } => Outcome::Failure(String::from_utf8_lossy(&output).into_owned()),
        ExecSync::TimedOut => Outcome::Failure(format!("command {:?} timed out", command.join(" "))),
        // A container runtime reports a command it cannot start as a
        // failed exec ("OCI runtime exec failed: ... executable file not
        // found in $PATH"), so the probe fails rather than errors.
        ExecSync::NotStarted(why) => Outcome::Failure(why),
    }
}

/// An `httpGet` probe's request, its port already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    pub host: String,
    pub port: u16,
    /// As given, `/` when empty; may carry a query.
    pub path: String,
    /// `httpHeaders`, in order; they override the defaults by name.
    pub headers: Vec<(String, String)>,
}

impl HttpGet {
    /// The URL, as Go's `url.URL` prints it in errors.
    pub fn url(&self) -> String {
        format!("http://{}{}", host_port(&self.host, self.port), self.path_or_root())
    }

    fn path_or_root(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    /// The HTTP/1.1 request bytes: the kubelet's default headers
    /// (`Host`, `User-Agent: kube-probe/1.32`, `Accept: */*`) unless the
    /// probe sets its own, then the probe's headers, and `Connection:
    /// close` since each probe uses one connection.
    pub fn request(&self) -> String {
        let has = |name: &str| self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let mut req = format!("GET {} HTTP/1.1\r\n", self.path_or_root());
        if !has("host") {
            req.push_str(&format!("Host: {}\r\n", host_port(&self.host, self.port)));
        }
        if !has("user-agent") {
            req.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
        }
        if !has("accept") {
            req.push_str("Accept: */*\r\n");
        }
        for (name, value) in &self.headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        req
    }
}

/// `host:port`, with brackets around an IPv6 address (Go's `JoinHostPort`).
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An I/O error in Go's words: `connection refused`, not `Connection
/// refused (os error 111)`.
fn go_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Connects as Go's dialer does, with its error texts.
async fn dial(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {}", go_error(&e))),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// `tcpSocket`: success when the port accepts a connection, which is
/// closed at once.
pub async fn tcp_socket(host: &str, port: u16, timeout: Duration) -> Outcome {
    match dial(host, port, timeout).await {
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(e),
    }
}

/// `httpGet` over plain HTTP: a status from 200 to 299 is success, 300
/// to 399 success with a warning (redirects are not followed), anything
/// else failure. Connection errors and timeouts fail too, as upstream
/// ("Convert errors into failures to catch timeouts").
pub async fn http_get(req: &HttpGet, timeout: Duration) -> Outcome {
    let url = req.url();
    let deadline = tokio::time::Instant::now() + timeout;
    let fail = |why: String| Outcome::Failure(format!("Get {url:?}: {why}"));
    let mut stream = match dial(&req.host, req.port, timeout).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let exchange = async {
        stream.write_all(req.request().as_bytes()).await?;
        read_response(&mut stream).await
    };
    let (head, body) = match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => return fail("context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into()),
        Ok(Err(e)) => return fail(go_error(&e)),
        Ok(Ok(None)) => return fail("EOF".into()),
        Ok(Ok(Some(response))) => response,
    };
    let Some(status) = status_code(&head) else {
        let line = head.lines().next().unwrap_or_default();
        return fail(format!("net/http: HTTP/1.x transport connection broken: malformed HTTP response {line:?}"));
    };
    match status {
        200..=299 => Outcome::Success,
        300..=399 => Outcome::Warning(format!("Probe terminated redirects, Response body: {body}")),
        // Upstream keeps the body out of this message on purpose: it may
        // hold secrets and events are widely readable.
        _ => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
    }
}

/// Reads the response head and up to [`MAX_OUTPUT`] bytes of body (or up
/// to `Content-Length`); `None` if the connection closed before a head.
async fn read_response(stream: &mut TcpStream) -> std::io::Result<Option<(String, String)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("response head too long"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let content_length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok()).flatten()
    });
    let want = content_length.unwrap_or(MAX_OUTPUT).min(MAX_OUTPUT);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < want {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(want);
    Ok(Some((head, String::from_utf8_lossy(&body).into_owned())))
}

/// The status code of `HTTP/1.1 200 OK`.
fn status_code(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-route HTTP server on 127.0.0.1:0 that answers every request
    /// with `status` and hands each request it saw to the test.
    async fn server(status: &'static str) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                    let body = "body text";
                    let reply = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        (port, rx)
    }

    fn get(port: u16, path: &str) -> HttpGet {
        HttpGet { host: "127.0.0.1".into(), port, path: path.into(), headers: vec![] }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn http_get_judges_by_status_code() {
        for (status, want) in [
            ("200 OK", Outcome::Success),
            ("204 No Content", Outcome::Success),
            ("302 Found", Outcome::Warning("Probe terminated redirects, Response body: body text".into())),
            ("500 Internal Server Error", Outcome::Failure("HTTP probe failed with statuscode: 500".into())),
            ("404 Not Found", Outcome::Failure("HTTP probe failed with statuscode: 404".into())),
        ] {
            let (port, _) = server(status).await;
            assert_eq!(http_get(&get(port, "/healthz"), SECOND).await, want, "{status}");
        }
    }

    #[tokio::test]
    async fn http_get_sends_the_kubelets_headers_and_the_probes_own() {
        let (port, mut seen) = server("200 OK").await;
        let mut req = get(port, "/ready?full=1");
        req.headers = vec![("X-Probe".into(), "yes".into()), ("accept".into(), "application/json".into())];
        assert_eq!(http_get(&req, SECOND).await, Outcome::Success);
        let request = seen.recv().await.unwrap();
        assert!(request.starts_with("GET /ready?full=1 HTTP/1.1\r\n"), "{request}");
        assert!(request.contains(&format!("Host: 127.0.0.1:{port}\r\n")), "{request}");
        assert!(request.contains("User-Agent: kube-probe/1.32\r\n"), "{request}");
        assert!(request.contains("X-Probe: yes\r\n"), "{request}");
        assert!(request.contains("accept: application/json\r\n") && !request.contains("Accept: */*"), "the probe's Accept wins: {request}");
        // An empty path asks for the root.
        assert_eq!(http_get(&get(port, ""), SECOND).await, Outcome::Success);
        assert!(seen.recv().await.unwrap().starts_with("GET / HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn refused_connections_fail_in_gos_words() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let refused = format!("dial tcp 127.0.0.1:{port}: connect: connection refused");
        assert_eq!(tcp_socket("127.0.0.1", port, SECOND).await, Outcome::Failure(refused.clone()));
        assert_eq!(
            http_get(&get(port, "/healthz"), SECOND).await,
            Outcome::Failure(format!("Get \"http://127.0.0.1:{port}/healthz\": {refused}"))
        );
    }

    #[tokio::test]
    async fn tcp_socket_succeeds_on_a_listening_port() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(tcp_socket("127.0.0.1", port, SECOND).await, Outcome::Success);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        // Accepts (the kernel does, via the backlog) but never replies.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let began = std::time::Instant::now();
        let out = http_get(&get(port, "/"), Duration::from_millis(300)).await;
        assert_eq!(
            out,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
        assert!(began.elapsed() < Duration::from_secs(2));
        drop(l);
    }

    #[tokio::test]
    async fn exec_succeeds_on_exit_zero_and_fails_with_the_output_otherwise() {
        async fn exec(command: &[String], env: &[(String, String)], _dir: Option<&str>, timeout: Duration) -> Outcome {
            let ctx = crate::runtime::hostexec::Context { env: env.to_vec(), working_dir: None, netns: None };
            super::exec(command, crate::runtime::hostexec::exec_sync(command, &ctx, timeout, MAX_OUTPUT).await)
        }
        let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        let env = vec![("PATH".to_string(), std::env::var("PATH").unwrap_or_default()), ("WHO".to_string(), "app".to_string())];
        assert_eq!(exec(&sh("exit 0"), &env, None, SECOND).await, Outcome::Success);
        assert_eq!(exec(&sh("exit 1"), &env, None, SECOND).await, Outcome::Failure(String::new()));
        assert_eq!(
            exec(&sh("echo not $WHO; echo ready >&2; exit 3"), &env, None, SECOND).await,
            Outcome::Failure("not app\nready\n".into())
        );
        assert_eq!(
            exec(&sh("sleep 5"), &env, None, Duration::from_millis(200)).await,
            Outcome::Failure("command \"sh -c sleep 5\" timed out".into())
        );
        assert_eq!(
            exec(&["no-such-probe-command".to_string()], &env, None, SECOND).await,
            Outcome::Failure("exec: \"no-such-probe-command\": executable file not found in $PATH".into())
        );
    }

    #[test]
    fn urls_bracket_ipv6_hosts() {
        let req = HttpGet { host: "::1".into(), port: 8080, path: "/h".into(), headers: vec![] };
        assert_eq!(req.url(), "http://[::1]:8080/h");
    }
}
