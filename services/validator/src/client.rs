//! The connection to the hub: signup, serving checks, and resending results the
//! hub has not acknowledged, across reconnections with exponential backoff.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use overlaps_shared::protocol::{
    CLIENT_READ_BUFFER_BYTES, CheckResult, ErrorCode, HubMessage, ValidateRequest, ValidatorMessage,
};
use overlaps_shared::signing::{self, Keypair, PayoutAddress};
use rand::Rng;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::check::Checker;
use crate::receipts::{self, HubIdentity, Receipt, ReceiptJournal};

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The socket failed or closed.
    #[error("connection: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The hub broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The hub refused the signup.
    #[error("signup refused: {0:?}: {1}")]
    Refused(ErrorCode, String),
    /// The hub closed the connection.
    #[error("closed by the hub: {0}")]
    Closed(String),
}

/// Everything a validator node needs to serve a hub.
pub struct Node {
    /// The hub's WebSocket URL.
    pub hub_url: url::Url,
    /// The identity.
    pub key: Keypair,
    /// Where rewards go.
    pub payout: PayoutAddress,
    /// Runs the checks.
    pub checker: Checker,
    /// Checks at once, at most.
    pub max_concurrent_checks: usize,
    /// Where acknowledged results are recorded.
    pub receipts: Arc<std::sync::Mutex<ReceiptJournal>>,
    /// The local address to connect to the hub from (the hub records its network:
    /// a multi-homed host picks which; dev networks give each node its own).
    pub source_address: Option<IpAddr>,
}

/// The socket's settings: reads sized for the hub's messages.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER_BYTES)
}

/// Opens the WebSocket to `url`, from `source` when given, with Nagle's algorithm
/// off: a signed result goes to the hub at once, not after the last one's ack.
async fn open_socket(url: &url::Url, source: Option<IpAddr>) -> Result<Socket, SessionError> {
    let Some(source) = source else {
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(socket_config()), true)
                .await?;
        return Ok(socket);
    };
    let io = |err: std::io::Error| SessionError::Socket(err.into());
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(80);
    let target = tokio::net::lookup_host((host, port))
        .await
        .map_err(io)?
        .find(|addr| addr.is_ipv4() == source.is_ipv4())
        .ok_or_else(|| {
            SessionError::Protocol(format!(
                "the hub has no address of the source address {source}'s family"
            ))
        })?;
    let tcp = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io)?;
    tcp.bind(SocketAddr::new(source, 0)).map_err(io)?;
    let stream = tcp.connect(target).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let (socket, _) = tokio_tungstenite::client_async_tls_with_config(
        url.as_str(),
        stream,
        Some(socket_config()),
        None,
    )
    .await?;
    Ok(socket)
}

/// A signed result, the round and deadline of its assignment, and how often the
/// hub answered `unavailable` to it.
#[derive(Debug, Clone)]
struct Answer {
    round: i64,
    deadline_ms: i64,
    unavailable: u32,
    result: CheckResult,
}

/// The first wait before resending a result the hub could not store; it doubles
/// each time, up to [`RESEND_CAP`], while the deadline allows.
const RESEND_START: Duration = Duration::from_millis(100);
const RESEND_CAP: Duration = Duration::from_secs(2);

/// Results signed but not yet acknowledged, by assignment id.
type Unacked = BTreeMap<i64, Answer>;

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

impl Node {
    /// Serves the hub until `stop` turns true, reconnecting as needed.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let node = Arc::new(self);
        let permits = Arc::new(Semaphore::new(node.max_concurrent_checks));
        // Results outlive connections: a check finishing while disconnected is sent after.
        let (results_tx, mut results_rx) = mpsc::channel::<Answer>(4096);
        let mut unacked = Unacked::new();
        let mut failures = 0u32;
        loop {
            let mut session_stop = stop.clone();
            let session = node.session(
                &permits,
                &results_tx,
                &mut results_rx,
                &mut unacked,
                &mut session_stop,
            );
            let outcome = tokio::select! {
                outcome = session => outcome,
                () = stopped(&mut stop) => return,
            };
            match outcome {
                Ok(true) => return,
                Ok(false) => failures = 0,
                Err(err) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %err, unacked = unacked.len(), "disconnected from the hub");
                }
            }
            // Full jitter: spread reconnections of many validators after a hub restart.
            let ceiling = BACKOFF_START
                .saturating_mul(2u32.saturating_pow(failures.min(16)))
                .min(BACKOFF_CAP);
            let wait = ceiling.mul_f64(rand::rng().random_range(0.5..1.0));
            tracing::info!(wait_ms = wait.as_millis() as u64, "reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                () = stopped(&mut stop) => return,
            }
        }
    }

    /// One connection. `Ok(true)`: stopped on request; `Ok(false)`: ended after a signup.
    async fn session(
        self: &Arc<Self>,
        permits: &Arc<Semaphore>,
        results_tx: &mpsc::Sender<Answer>,
        results_rx: &mut mpsc::Receiver<Answer>,
        unacked: &mut Unacked,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, SessionError> {
        let mut socket = open_socket(&self.hub_url, self.source_address).await?;
        let (hub_id, nonce) = match next_message(&mut socket).await? {
            HubMessage::Hello { hub_id, nonce, .. } => (hub_id, nonce),
            other => {
                return Err(SessionError::Protocol(format!(
                    "expected hello, got {other:?}"
                )));
            }
        };
        let mut nonce_bytes = [0u8; 32];
        hex::decode_to_slice(&nonce, &mut nonce_bytes)
            .map_err(|_| SessionError::Protocol("hello carries a malformed nonce".into()))?;
        let signup = ValidatorMessage::Signup {
            public_key: self.key.public_key().to_string(),
            payout_address: self.payout.to_string(),
            signature: hex::encode(self.key.sign(&signing::signup_bytes(
                &hub_id,
                &nonce_bytes,
                &self.payout,
            ))),
        };
        socket.send(text(&signup)).await?;
        let validator_id = match next_message(&mut socket).await? {
            HubMessage::SignedUp { validator_id } => validator_id,
            HubMessage::Error { code, message, .. } => {
                return Err(SessionError::Refused(code, message));
            }
            other => {
                return Err(SessionError::Protocol(format!(
                    "expected signed_up, got {other:?}"
                )));
            }
        };
        tracing::info!(validator_id, hub = %hub_id, resending = unacked.len(), "signed up");
        self.bind_receipts(&hub_id, validator_id);
        for answer in unacked.values() {
            socket
                .send(text(&ValidatorMessage::Result(answer.result.clone())))
                .await?;
        }

        loop {
            tokio::select! {
                frame = socket.next() => {
                    let frame = match frame {
                        Some(frame) => frame?,
                        None => return Err(SessionError::Closed("end of stream".into())),
                    };
                    match frame {
                        Message::Text(text) => {
                            let msg: HubMessage = serde_json::from_str(&text)
                                .map_err(|e| SessionError::Protocol(format!("unreadable hub message: {e}")))?;
                            self.on_hub_message(msg, &hub_id, permits, results_tx, unacked);
                        }
                        Message::Close(frame) => {
                            let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                            return Err(SessionError::Closed(reason));
                        }
                        // tungstenite answers pings by itself.
                        _ => {}
                    }
                }
                Some(answer) = results_rx.recv() => {
                    let msg = text(&ValidatorMessage::Result(answer.result.clone()));
                    unacked.insert(answer.result.assignment_id, answer);
                    socket.send(msg).await?;
                }
                () = stopped(stop) => {
                    let _ = socket.close(None).await;
                    return Ok(true);
                }
            }
        }
    }

    fn on_hub_message(
        self: &Arc<Self>,
        msg: HubMessage,
        hub_id: &str,
        permits: &Arc<Semaphore>,
        results_tx: &mpsc::Sender<Answer>,
        unacked: &mut Unacked,
    ) {
        match msg {
            HubMessage::Validate(request) => self.start_check(request, hub_id, permits, results_tx),
            HubMessage::Ack { assignment_ids } => {
                let receipts = assignment_ids
                    .iter()
                    .filter_map(|id| unacked.remove(id))
                    .map(|Answer { round, result, .. }| Receipt {
                        round,
                        assignment_id: result.assignment_id,
                        status: result.status,
                        signature: result.signature,
                    });
                self.record_receipts(receipts);
            }
            HubMessage::Error {
                code: ErrorCode::NotAdmitted,
                message,
                ..
            } => {
                // Connected, but no work until the key is admitted (staked, listed):
                // stay connected, the hub starts assigning once it is.
                tracing::warn!(%message, "this key is not admitted by the hub; it gets no checks until it is");
            }
            HubMessage::Error {
                code,
                message,
                assignment_id,
            } => {
                tracing::warn!(?code, %message, ?assignment_id, "hub refused a message");
                let Some(id) = assignment_id else { return };
                if code != ErrorCode::Unavailable {
                    // Final refusals are not resent.
                    unacked.remove(&id);
                } else if let Some(answer) = unacked.get(&id) {
                    // Not stored by a hub-side failure: resend soon while the deadline
                    // allows (it also stays for the next connection).
                    resend_later(answer.clone(), results_tx);
                }
            }
            other => tracing::debug!(?other, "ignored hub message"),
        }
    }

    /// Keeps acknowledged results for the reward check; a failed write is loud but
    /// does not stop the node (its expectation can only come out lower, never higher).
    fn record_receipts(&self, receipts: impl Iterator<Item = Receipt>) {
        if let Err(err) = receipts::lock(&self.receipts).record(receipts) {
            tracing::error!(error = %err, "could not record acknowledged results");
        }
    }

    /// Ties the receipt file to the hub and the id it gave this key.
    fn bind_receipts(&self, hub_id: &str, validator_id: i64) {
        let hub = HubIdentity {
            hub_id: hub_id.to_owned(),
            validator_id,
        };
        match receipts::lock(&self.receipts).bind(hub) {
            Ok(None) => {}
            Ok(Some(aside)) => {
                tracing::warn!(validator_id, hub = %hub_id, kept_at = %aside.display(),
                "the hub knows this key under another id (or is another hub): its earlier receipts \
                 do not apply here, a new record begins")
            }
            Err(err) => {
                tracing::error!(error = %err, "could not record the hub in the receipt file")
            }
        }
    }

    fn start_check(
        self: &Arc<Self>,
        request: ValidateRequest,
        hub_id: &str,
        permits: &Arc<Semaphore>,
        results_tx: &mpsc::Sender<Answer>,
    ) {
        let node = Arc::clone(self);
        let permits = Arc::clone(permits);
        let results = results_tx.clone();
        let hub_id = hub_id.to_owned();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let (assignment_id, round) = (request.assignment_id, request.round);
            match node.checker.check(&request).await {
                Ok(outcome) => {
                    let result = CheckResult {
                        assignment_id,
                        status: outcome.status,
                        http_status: outcome.http_status,
                        latency_ms: outcome.latency_ms,
                        failure: outcome.failure,
                        tls_expires_at_ms: outcome.tls_expires_at_ms,
                        checked_at_ms: outcome.checked_at_ms,
                        spec_hash: hex::encode(request.spec().hash()),
                        signature: String::new(),
                    }
                    .sign(&hub_id, &node.key);
                    tracing::debug!(assignment_id, status = ?result.status, "checked");
                    let answer = Answer {
                        round,
                        deadline_ms: request.deadline_ms,
                        unavailable: 0,
                        result,
                    };
                    let _ = results.send(answer).await;
                }
                Err(refused) => {
                    tracing::warn!(assignment_id, url = %request.url, %refused, "check refused")
                }
            }
        });
    }
}

/// Sends `answer` through the session's result channel again after a backoff, if
/// that is still before its deadline.
fn resend_later(mut answer: Answer, results_tx: &mpsc::Sender<Answer>) {
    let wait = RESEND_START
        .saturating_mul(2u32.saturating_pow(answer.unavailable))
        .min(RESEND_CAP);
    let due =
        chrono::Utc::now().timestamp_millis() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    if due >= answer.deadline_ms {
        return;
    }
    answer.unavailable += 1;
    let results = results_tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let _ = results.send(answer).await;
    });
}

fn text(msg: &ValidatorMessage) -> Message {
    Message::text(serde_json::to_string(msg).unwrap_or_default())
}

/// The socket to the hub.
type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The next hub message, within 15 s.
async fn next_message(socket: &mut Socket) -> Result<HubMessage, SessionError> {
    let wait = Duration::from_secs(15);
    loop {
        let frame = tokio::time::timeout(wait, socket.next())
            .await
            .map_err(|_| SessionError::Protocol("the hub did not answer in time".into()))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_err(|e| SessionError::Protocol(format!("unreadable hub message: {e}")));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(SessionError::Closed(
                    frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                ));
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => return Err(SessionError::Closed("end of stream".into())),
        }
    }
}

/// Resolves once a stop is requested.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The borrow the receiver hands out must not live across an await point.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

#[cfg(test)]
mod tests;
