//! Local HTTP and SMTP endpoints: a target for checks and sinks for alerts.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use crate::{Error, Result};

/// A local HTTP target for checks: answers every request with `status` and `body`.
pub struct HttpTarget {
    addr: std::net::SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Reads an HTTP request's head (at most 8 KiB) from `stream`; `None` when the
/// peer goes away first.
pub async fn read_request_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 8192];
    let mut read = 0;
    while read < buf.len() {
        match stream.read(&mut buf[read..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => read += n,
        }
        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Some(String::from_utf8_lossy(&buf[..read]).into_owned())
}

impl HttpTarget {
    /// Starts serving on a free port of 127.0.0.1.
    pub async fn start(status: u16, body: &str) -> Result<Self> {
        Self::start_delayed(status, body, Duration::ZERO).await
    }

    /// Like [`HttpTarget::start`], answering each request only `delay` after it
    /// arrived (a slow site).
    pub async fn start_delayed(status: u16, body: &str, delay: Duration) -> Result<Self> {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = std::sync::Arc::new(std::sync::Mutex::new((status, body.to_owned())));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (shared, counter) = (state.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let shared = shared.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    // The body of a GET/HEAD is empty: the head is the request.
                    if read_request_head(&mut stream).await.is_none() {
                        return;
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let (status, body) = shared
                        .lock()
                        .map(|g| g.clone())
                        .unwrap_or((500, String::new()));
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(HttpTarget {
            addr,
            state,
            hits,
            task,
        })
    }

    /// `http://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Changes what every later request gets.
    pub fn set(&self, status: u16, body: &str) {
        if let Ok(mut guard) = self.state.lock() {
            *guard = (status, body.to_owned());
        }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request an [`HttpSink`] received.
#[derive(Debug, Clone)]
pub struct SinkRequest {
    /// Request line, e.g. `POST /hook HTTP/1.1`.
    pub request_line: String,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl SinkRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTP server recording every request (a Slack or webhook sink), answering
/// with a settable status.
pub struct HttpSink {
    addr: std::net::SocketAddr,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    received: std::sync::Arc<std::sync::Mutex<Vec<SinkRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpSink {
    /// Starts recording on a free port of 127.0.0.1, answering 200.
    pub async fn start() -> Result<Self> {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (status_in, received_in) = (status.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (status, received) = (status_in.clone(), received_in.clone());
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 8192];
                    let request = loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&data[..end]).into_owned();
                        let mut lines = head.split("\r\n");
                        let request_line = lines.next().unwrap_or_default().to_owned();
                        let headers: Vec<(String, String)> = lines
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                            .collect();
                        let length = headers
                            .iter()
                            .find(|(k, _)| k == "content-length")
                            .and_then(|(_, v)| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if data.len() >= end + 4 + length {
                            break SinkRequest {
                                request_line,
                                headers,
                                body: data[end + 4..end + 4 + length].to_vec(),
                            };
                        }
                    };
                    if let Ok(mut all) = received.lock() {
                        all.push(request);
                    }
                    let code = status.load(Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Ok(HttpSink {
            addr,
            status,
            received,
            task,
        })
    }

    /// `http://127.0.0.1:port/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers later requests with `status`.
    pub fn respond_with(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<SinkRequest> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real SMTP server (Python's aiosmtpd, as `./run.sh test` installs it) storing
/// every message in a Maildir.
pub struct SmtpSink {
    process: Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.port)
            .finish()
    }
}

impl SmtpSink {
    /// Starts aiosmtpd on a free port; waits until it accepts connections.
    pub fn start() -> Result<Self> {
        let port = free_port()?;
        let maildir =
            std::env::temp_dir().join(format!("overlaps-mail-{}", uuid::Uuid::new_v4().simple()));
        let process = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let sink = SmtpSink {
            process,
            port,
            maildir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(15) {
                return Err(Error::Io(std::io::Error::other(
                    "aiosmtpd did not start (is it installed? ./run.sh test installs it)",
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(sink)
    }

    /// `smtp://127.0.0.1:port` (plain, as for a dev sink).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The raw messages received so far.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
