//! One validator connection, from `hello` to close.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_ws::{CloseCode, CloseReason, Message, MessageStream, ProtocolError, Session};
use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use governor::{Quota, RateLimiter};
use overlaps_shared::protocol::{ErrorCode, HubMessage, PROTOCOL, ValidatorMessage};
use rand::RngCore;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::signup::{SignedUp, sign_up};
use crate::hub::{ConnectionSlot, Frame, Hub, SessionHandle};
use crate::ingest::Outcome;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Messages queued for one validator before dispatch calls it slow.
const OUTBOX_CAPACITY: usize = 1024;

/// Where the connection stands.
enum State {
    /// `hello` sent; only `signup` is accepted.
    AwaitingSignup { nonce: [u8; 32] },
    /// Signed up: results are accepted.
    SignedUp(Box<SignedUp>),
}

/// Why the loop ended.
enum Ending {
    /// The validator closed or the socket broke.
    Gone,
    /// We close it, with a reason the validator can read.
    Close(CloseCode, String),
}

/// Runs one connection until it closes, then releases everything it held.
pub async fn run(hub: Arc<Hub>, mut socket: Session, stream: MessageStream, slot: ConnectionSlot) {
    let connection_id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("validator_socket", connection_id, ip = %slot.ip(), validator_id = tracing::field::Empty);
    async move {
        let mut nonce = [0u8; 32];
        rand::rng().fill_bytes(&mut nonce);
        let hello = HubMessage::Hello {
            protocol: PROTOCOL.into(),
            hub_id: hub.config.hub_id.clone(),
            nonce: hex::encode(nonce),
        };
        if send(&mut socket, &hello).await.is_err() {
            return;
        }
        let mut connection = Connection {
            hub: Arc::clone(&hub),
            socket,
            state: State::AwaitingSignup { nonce },
            ip: slot.ip(),
            network: slot.network(),
            connection_id,
            in_flight: JoinSet::new(),
            outbox: mpsc::channel(OUTBOX_CAPACITY),
        };
        let ending = connection.serve(stream).await;
        // Boxed for the same reason as the signup: it runs once, at the end.
        Box::pin(connection.finish(ending)).await;
        drop(slot);
    }
    .instrument(span)
    .await;
}

struct Connection {
    hub: Arc<Hub>,
    socket: Session,
    state: State,
    /// The client address, to count its failed signups.
    ip: IpAddr,
    /// The client's network (its /24 or /48), recorded in presence for the
    /// scheduler's spread rule.
    network: String,
    connection_id: u64,
    /// Results submitted to the ingest whose outcome is not sent yet.
    in_flight: JoinSet<()>,
    /// Messages for the validator from dispatch and from settled results.
    outbox: (mpsc::Sender<Frame>, mpsc::Receiver<Frame>),
}

async fn send(socket: &mut Session, msg: &HubMessage) -> Result<(), actix_ws::Closed> {
    socket.text(Frame::of(msg).into_text()).await
}

fn error(code: ErrorCode, message: impl Into<String>, assignment_id: Option<i64>) -> HubMessage {
    HubMessage::Error {
        code,
        message: message.into(),
        assignment_id,
    }
}

impl Connection {
    async fn serve(&mut self, stream: MessageStream) -> Ending {
        let limits = self.hub.config.limits.clone();
        let mut stream = stream.max_frame_size(limits.max_frame_bytes);
        let per_second = NonZeroU32::new(limits.max_messages_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let limiter = RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst));
        let mut heartbeat = tokio::time::interval(limits.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let stopping = self.hub.open.stopping();
        // A socket that never signs up would otherwise live as long as it answers pings.
        let signup_deadline = tokio::time::sleep(limits.signup_deadline);
        tokio::pin!(signup_deadline);

        loop {
            let awaiting_signup = matches!(self.state, State::AwaitingSignup { .. });
            let lease_lost = async {
                match &mut self.state {
                    State::SignedUp(signed) => signed.lease.lost().await,
                    State::AwaitingSignup { .. } => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = stream.recv() => {
                    let Some(frame) = frame else { return Ending::Gone };
                    last_heard = Instant::now();
                    let frame = match frame {
                        Ok(frame) => frame,
                        Err(ProtocolError::Overflow) => {
                            return Ending::Close(
                                CloseCode::Size,
                                format!("frame larger than {} bytes", limits.max_frame_bytes),
                            );
                        }
                        Err(err) => return Ending::Close(CloseCode::Protocol, err.to_string()),
                    };
                    // Every frame counts, pings and pongs included: each costs the hub work.
                    if limiter.check().is_err() {
                        let _ = send(&mut self.socket, &error(
                            ErrorCode::RateLimited,
                            format!("more than {} messages per second", limits.max_messages_per_second),
                            None,
                        )).await;
                        return Ending::Close(CloseCode::Policy, "rate limit exceeded".into());
                    }
                    match frame {
                        Message::Text(text) => {
                            if let Some(ending) = self.on_text(&text).await {
                                return ending;
                            }
                        }
                        Message::Binary(_) | Message::Continuation(_) => {
                            self.reply(error(ErrorCode::BinaryNotSupported, "send one JSON message per text frame", None)).await;
                        }
                        Message::Ping(bytes) => {
                            if self.socket.pong(&bytes).await.is_err() {
                                return Ending::Gone;
                            }
                        }
                        Message::Close(_) => return Ending::Gone,
                        Message::Pong(_) | Message::Nop => {}
                    }
                }
                Some(frame) = self.outbox.1.recv() => {
                    if self.socket.text(frame.into_text()).await.is_err() {
                        return Ending::Gone;
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > limits.heartbeat * 3 {
                        return Ending::Close(CloseCode::Away, "heartbeat timeout".into());
                    }
                    // Presence is refreshed for every session at once
                    // (`presence_refresh`), not here.
                    if self.socket.ping(b"").await.is_err() {
                        return Ending::Gone;
                    }
                }
                () = lease_lost => {
                    return Ending::Close(CloseCode::Policy, "session lock lost; reconnect".into());
                }
                () = &mut signup_deadline, if awaiting_signup => {
                    return Ending::Close(
                        CloseCode::Policy,
                        format!("no signup within {} s", limits.signup_deadline.as_secs()),
                    );
                }
                () = stopping.cancelled() => {
                    return Ending::Close(CloseCode::Restart, "hub stopping; reconnect".into());
                }
            }
        }
    }

    async fn reply(&mut self, msg: HubMessage) {
        let _ = send(&mut self.socket, &msg).await;
    }

    /// Handles one text frame; `Some` ends the connection.
    async fn on_text(&mut self, text: &str) -> Option<Ending> {
        let msg = match serde_json::from_str::<ValidatorMessage>(text) {
            Ok(msg) => msg,
            Err(err) => {
                // Tell apart JSON that is broken from JSON of an unknown kind.
                let code = match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(value)
                        if !matches!(
                            value.get("type").and_then(|t| t.as_str()),
                            Some("signup" | "result")
                        ) =>
                    {
                        ErrorCode::UnknownMessage
                    }
                    _ => ErrorCode::MalformedJson,
                };
                self.reply(error(code, err.to_string(), None)).await;
                return None;
            }
        };
        match msg {
            ValidatorMessage::Signup {
                public_key,
                payout_address,
                signature,
            } => {
                // Boxed: once per connection, and its state (database and Redis
                // calls) would otherwise sit in every idle connection's task.
                Box::pin(self.on_signup(&public_key, &payout_address, &signature)).await
            }
            ValidatorMessage::Result(result) => {
                self.on_result(result).await;
                None
            }
        }
    }

    async fn on_signup(
        &mut self,
        public_key: &str,
        payout: &str,
        signature: &str,
    ) -> Option<Ending> {
        let State::AwaitingSignup { nonce } = &self.state else {
            self.reply(error(
                ErrorCode::AlreadySignedUp,
                "this connection is already signed up",
                None,
            ))
            .await;
            return None;
        };
        let nonce = *nonce;
        if self.hub.failed_signups.blocked_for(self.ip).is_some() {
            return Some(self.refuse_failed_signups().await);
        }
        match sign_up(&self.hub, &nonce, public_key, payout, signature).await {
            Ok(signed) => {
                let validator_id = signed.validator_id;
                tracing::Span::current().record("validator_id", validator_id);
                self.hub.sessions.insert(
                    validator_id,
                    SessionHandle {
                        connection_id: self.connection_id,
                        outbox: self.outbox.0.clone(),
                        network: self.network.clone(),
                    },
                );
                let announced = self
                    .hub
                    .presence
                    .announce(
                        validator_id,
                        &self.hub.config.instance_id,
                        &self.network,
                        self.hub.config.limits.presence_ttl,
                    )
                    .await;
                if let Err(err) = announced {
                    tracing::warn!(error = %err, "presence announce failed");
                }
                self.state = State::SignedUp(Box::new(signed));
                tracing::info!(validator_id, "validator signed up");
                self.reply(HubMessage::SignedUp { validator_id }).await;
                self.tell_if_not_admitted(validator_id).await;
                None
            }
            Err((code, message)) => {
                tracing::info!(?code, %message, "signup refused");
                // A refused proof (bad key, address or signature) counts against the
                // address; a taken key or a hub-side failure does not.
                let failed = matches!(
                    code,
                    ErrorCode::BadKey | ErrorCode::BadPayoutAddress | ErrorCode::BadSignature
                );
                if failed && self.hub.failed_signups.record_failure(self.ip).is_err() {
                    return Some(self.refuse_failed_signups().await);
                }
                self.reply(error(code, message.clone(), None)).await;
                // A second live session for a key is closed, not kept waiting.
                (code == ErrorCode::KeyInUse).then_some(Ending::Close(CloseCode::Policy, message))
            }
        }
    }

    /// Says `not_admitted`, with why, to a key the scheduler will not select. The
    /// connection stays: the scheduler decides at every round, so a key admitted
    /// later (its stake confirmed, the operator listing it) gets work without
    /// reconnecting.
    async fn tell_if_not_admitted(&mut self, validator_id: i64) {
        let policy = self.hub.config.admission.clone();
        let standing = self
            .hub
            .infra
            .db
            .run(move |conn| policy.standings(conn, &[validator_id], Utc::now()))
            .await;
        match standing.map(|s| s.into_iter().next()) {
            Ok(Some(standing)) => {
                if let Some(refusal) = standing.refusal {
                    tracing::info!(%refusal, "validator not admitted");
                    self.reply(error(ErrorCode::NotAdmitted, refusal, None))
                        .await;
                }
            }
            Ok(None) => {}
            // Only the notice is lost: the scheduler applies admission itself.
            Err(err) => tracing::warn!(error = %err, "could not read the validator's admission"),
        }
    }

    /// Tells the validator its address is over the failed-signup budget; closes.
    async fn refuse_failed_signups(&mut self) -> Ending {
        let max = self.hub.config.limits.max_failed_signups_per_minute;
        tracing::warn!(ip = %self.ip, "signup refused: too many failed signups from this address");
        self.reply(error(
            ErrorCode::RateLimited,
            format!("more than {max} failed signups per minute from this address"),
            None,
        ))
        .await;
        Ending::Close(
            CloseCode::Policy,
            "rate_limited: too many failed signups from this address".into(),
        )
    }

    async fn on_result(&mut self, result: overlaps_shared::protocol::CheckResult) {
        let assignment_id = Some(result.assignment_id);
        let State::SignedUp(signed) = &self.state else {
            self.reply(error(
                ErrorCode::NotSignedUp,
                "sign up before sending results",
                assignment_id,
            ))
            .await;
            return;
        };
        if let Err(reason) = result.validate_shape() {
            self.reply(error(ErrorCode::InvalidResult, reason, assignment_id))
                .await;
            return;
        }
        // A check cannot end after its result arrived; the other bound (not before
        // the assignment was due) is checked against the stored assignment.
        let skew = self.hub.config.ingest.clock_skew;
        if result.checked_at_ms > (Utc::now() + skew).timestamp_millis() {
            self.reply(error(
                ErrorCode::InvalidResult,
                "checked_at_ms is later than the hub received the result",
                assignment_id,
            ))
            .await;
            return;
        }
        // Identity comes from the key bound to this socket, never from the message;
        // the ingest checks the signature with its batch, off this socket's worker.
        let signature = match result.signature_bytes() {
            Ok(signature) => signature,
            Err(err) => {
                self.reply(error(
                    ErrorCode::BadSignature,
                    err.to_string(),
                    assignment_id,
                ))
                .await;
                return;
            }
        };
        let (validator_id, key) = (signed.validator_id, signed.key);
        let ingest = self.hub.ingest.clone();
        let outbox = self.outbox.0.clone();
        self.in_flight.spawn_local(async move {
            let id = result.assignment_id;
            let reply = match ingest.submit(validator_id, key, result, signature).await {
                Outcome::Stored => HubMessage::Ack {
                    assignment_ids: vec![id],
                },
                Outcome::Refused(code, message) => error(code, message, Some(id)),
                Outcome::Unavailable => {
                    error(ErrorCode::Unavailable, "not stored; resend later", Some(id))
                }
            };
            let _ = outbox.send(Frame::of(&reply)).await;
        });
        // Reap finished submissions so the set stays small.
        while self.in_flight.try_join_next().is_some() {}
    }

    /// Closes the socket and releases the session, presence and pending assignments.
    async fn finish(mut self, ending: Ending) {
        // Let results already submitted settle, and deliver their acks if we still can.
        let settle = async { while self.in_flight.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(5), settle).await;
        while let Ok(frame) = self.outbox.1.try_recv() {
            if self.socket.text(frame.into_text()).await.is_err() {
                break;
            }
        }
        let reason = match ending {
            Ending::Gone => None,
            Ending::Close(code, description) => {
                tracing::info!(?code, %description, "closing validator connection");
                Some(CloseReason {
                    code,
                    description: Some(description),
                })
            }
        };
        let _ = self.socket.close(reason).await;

        if let State::SignedUp(signed) = self.state {
            let validator_id = signed.validator_id;
            self.hub.sessions.remove(validator_id, self.connection_id);
            let instance = self.hub.config.instance_id.clone();
            if let Err(err) = self.hub.presence.withdraw(validator_id, &instance).await {
                tracing::warn!(error = %err, "presence withdraw failed");
            }
            let released = self
                .hub
                .infra
                .db
                .run(move |conn| release_pending(conn, validator_id, &instance))
                .await;
            match released {
                Ok(0) => {}
                Ok(missed) => tracing::info!(
                    validator_id,
                    missed,
                    "pending assignments released as missed"
                ),
                Err(err) => tracing::error!(error = %err, "could not release pending assignments"),
            }
            if let Err(err) = signed.lease.release().await {
                tracing::warn!(error = %err, "session lock release failed");
            }
            tracing::info!(validator_id, "validator disconnected");
        }
    }
}

/// Marks a disconnected validator's open assignments on this instance as missed.
pub fn release_pending(
    conn: &mut PgConnection,
    validator_id: i64,
    instance: &str,
) -> overlaps_shared::Result<usize> {
    Ok(diesel::sql_query(
        "UPDATE check_assignments SET state = 'missed' \
         WHERE validator_id = $1 AND server_instance = $2 AND state = 'pending'",
    )
    .bind::<BigInt, _>(validator_id)
    .bind::<Text, _>(instance)
    .execute(conn)?)
}
