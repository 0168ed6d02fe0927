//! Helpers for the server's tests: a real server binary on its own database and
//! Redis prefix, a raw WebSocket client, and rows to dispatch.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use apalis::prelude::TaskSink;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Text};
use futures::{SinkExt, StreamExt};
use overlaps_shared::jobs::{self, Dispatch};
use overlaps_shared::protocol::{CheckResult, CheckStatus, HubMessage, ValidatorMessage};
use overlaps_shared::signing::{self, Keypair, PayoutAddress};
use overlaps_shared::testing::{
    ServiceProcess, TestDatabase, TestRedis, service_env, spawn_server,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

pub const BIN: &str = env!("CARGO_BIN_EXE_server");
pub const HUB_ID: &str = "test-hub";
pub const PAYOUT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

/// One deployment: a database, a Redis prefix, and server instances on them.
pub struct Deployment {
    pub db: TestDatabase,
    pub redis: TestRedis,
}

/// A running server instance.
pub struct Server {
    pub process: ServiceProcess,
    pub bind: String,
    pub instance: String,
}

impl Server {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/validator", self.bind)
    }
}

impl Deployment {
    pub fn new() -> Self {
        Deployment {
            db: TestDatabase::new().unwrap(),
            redis: TestRedis::new().unwrap(),
        }
    }

    /// Starts a server instance named `instance` with extra settings.
    pub fn server(&self, instance: &str, extra: &[(&str, &str)]) -> Server {
        let mut env = service_env(&self.db, &self.redis);
        env.push(("SERVER_INSTANCE_ID".into(), instance.into()));
        env.push(("HUB_ID".into(), HUB_ID.into()));
        env.push(("LOG_LEVEL".into(), "info".into()));
        for (k, v) in extra {
            env.push(((*k).into(), (*v).into()));
        }
        let (process, bind) = spawn_server(BIN, &env);
        Server {
            process,
            bind,
            instance: instance.into(),
        }
    }

    pub fn conn(&self) -> PgConnection {
        self.db.connect().unwrap()
    }

    /// An owner and a website checked at `url`.
    pub fn website(&self, url: &str) -> i64 {
        let mut conn = self.conn();
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let owner = diesel::sql_query(
            "INSERT INTO users (email) VALUES ('owner-' || gen_random_uuid() || '@example.com') RETURNING id",
        )
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
        diesel::sql_query(
            "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) \
             VALUES ($1, $2, 60, 2000, 2) RETURNING id",
        )
        .bind::<BigInt, _>(owner)
        .bind::<Text, _>(url)
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id
    }

    /// Opens round `number` with the given deadline.
    pub fn round(&self, number: i64, deadline: DateTime<Utc>) {
        diesel::sql_query(
            "INSERT INTO rounds (number, seed, opened_at, deadline_at) VALUES ($1, $2, now() - interval '1 second', $3)",
        )
        .bind::<BigInt, _>(number)
        .bind::<Bytea, _>(vec![number as u8; 32])
        .bind::<diesel::sql_types::Timestamptz, _>(deadline)
        .execute(&mut self.conn())
        .unwrap();
    }

    /// Assigns `website` to `validator` in `round` through `instance`.
    pub fn assign(
        &self,
        round: i64,
        website: i64,
        validator: i64,
        instance: &str,
        deadline: DateTime<Utc>,
    ) -> i64 {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        diesel::sql_query(
            "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at) \
             VALUES ($1, $2, $3, $4, now(), $5) RETURNING id",
        )
        .bind::<BigInt, _>(round)
        .bind::<BigInt, _>(website)
        .bind::<BigInt, _>(validator)
        .bind::<Text, _>(instance)
        .bind::<diesel::sql_types::Timestamptz, _>(deadline)
        .get_result::<Id>(&mut self.conn())
        .unwrap()
        .id
    }

    /// Pushes a `dispatch` job to `instance`'s queue.
    pub async fn dispatch(&self, instance: &str, round: i64, assignment_ids: Vec<i64>) {
        let conn = self.redis.connect().await.unwrap();
        let mut queue = jobs::dispatch_storage(conn, self.redis.keys(), instance);
        queue
            .push(Dispatch {
                round,
                server_instance: instance.into(),
                assignment_ids,
            })
            .await
            .unwrap();
    }

    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        diesel::sql_query(format!("SELECT ({sql}) AS n"))
            .get_result::<Count>(&mut self.conn())
            .unwrap()
            .n
    }

    pub fn assignment_state(&self, id: i64) -> String {
        #[derive(QueryableByName)]
        struct State {
            #[diesel(sql_type = Text)]
            state: String,
        }
        diesel::sql_query("SELECT state FROM check_assignments WHERE id = $1")
            .bind::<BigInt, _>(id)
            .get_result::<State>(&mut self.conn())
            .unwrap()
            .state
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw validator connection.
pub struct Client {
    pub socket: Socket,
    pub hub_id: String,
    pub nonce: [u8; 32],
}

impl Client {
    /// Connects and reads `hello`.
    pub async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self::greeted(socket).await
    }

    /// Opens the WebSocket from the local address `local` (e.g. 127.0.0.2, another
    /// client address on loopback); the hub's refusal as it comes.
    pub async fn connect_from(
        url: &str,
        local: std::net::IpAddr,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        Self::connect_with(url, local, &[]).await
    }

    /// As [`Client::connect_from`], with extra request headers (e.g. `X-Forwarded-For`).
    pub async fn connect_with(
        url: &str,
        local: std::net::IpAddr,
        headers: &[(&'static str, &str)],
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let authority = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let server: std::net::SocketAddr = authority.parse().unwrap();
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.bind(std::net::SocketAddr::new(local, 0))
            .unwrap_or_else(|e| panic!("cannot bind the client to {local}: {e}"));
        let stream = tcp.connect(server).await.unwrap();
        let (socket, _) = tokio_tungstenite::client_async(
            request,
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        )
        .await?;
        Ok(Self::greeted(socket).await)
    }

    /// Reads `hello` on a fresh socket.
    async fn greeted(socket: Socket) -> Self {
        let mut client = Client {
            socket,
            hub_id: String::new(),
            nonce: [0; 32],
        };
        match client.recv().await {
            HubMessage::Hello {
                hub_id,
                nonce,
                protocol,
            } => {
                assert_eq!(protocol, "overlaps/v2");
                client.hub_id = hub_id;
                hex::decode_to_slice(nonce, &mut client.nonce).unwrap();
            }
            other => panic!("expected hello, got {other:?}"),
        }
        client
    }

    /// The signup message for `key` over this connection's nonce.
    pub fn signup_message(&self, key: &Keypair) -> ValidatorMessage {
        let payout: PayoutAddress = PAYOUT.parse().unwrap();
        ValidatorMessage::Signup {
            public_key: key.public_key().to_string(),
            payout_address: PAYOUT.into(),
            signature: hex::encode(key.sign(&signing::signup_bytes(
                &self.hub_id,
                &self.nonce,
                &payout,
            ))),
        }
    }

    /// Signs up and returns the validator id.
    pub async fn signup(&mut self, key: &Keypair) -> i64 {
        let msg = self.signup_message(key);
        self.send(&msg).await;
        match self.recv().await {
            HubMessage::SignedUp { validator_id } => validator_id,
            other => panic!("expected signed_up, got {other:?}"),
        }
    }

    pub async fn send(&mut self, msg: &ValidatorMessage) {
        self.send_text(&serde_json::to_string(msg).unwrap()).await;
    }

    pub async fn send_result(&mut self, result: CheckResult) {
        self.send(&ValidatorMessage::Result(result)).await;
    }

    /// The code of the next message, which must be an error.
    pub async fn error(&mut self) -> overlaps_shared::protocol::ErrorCode {
        match self.recv().await {
            HubMessage::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text.to_owned()))
            .await
            .unwrap();
    }

    /// The next hub message (pings skipped), within 10 s.
    pub async fn recv(&mut self) -> HubMessage {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("a hub message within 10 s")
                .expect("socket open")
                .expect("frame");
            match frame {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(frame) => panic!("closed by the hub: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Waits for the hub to close the connection; returns its close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return None,
                Err(_) => panic!("the hub did not close the connection within 10 s"),
            }
        }
    }
}

/// The spec hash of a check of `url` on a site as [`Deployment::website`] makes it
/// (GET, 2,000 ms, default assertions): what an honest result for it signs.
pub fn spec_hash_of(url: &str) -> String {
    spec_hash_for(url, 2000)
}

/// The spec hash of a GET of `url` with `timeout_ms` and default assertions (a site
/// created through the API with only its URL has 5,000 ms).
pub fn spec_hash_for(url: &str, timeout_ms: u32) -> String {
    let spec = overlaps_shared::check_spec::CheckSpec {
        url: url.into(),
        method: "GET".into(),
        timeout_ms,
        accepted_status: overlaps_shared::check_spec::DEFAULT_ACCEPTED.to_vec(),
        keyword: None,
        json: None,
        max_response_ms: None,
    };
    hex::encode(spec.hash())
}

/// A signed result for `assignment_id` (a check of `https://example.com/`).
pub fn signed_result(key: &Keypair, assignment_id: i64, status: CheckStatus) -> CheckResult {
    CheckResult {
        assignment_id,
        status,
        http_status: Some(if status == CheckStatus::Up { 200 } else { 503 }),
        latency_ms: 42,
        failure: (status == CheckStatus::Down)
            .then_some(overlaps_shared::protocol::FailureReason::HttpStatus),
        tls_expires_at_ms: None,
        checked_at_ms: Utc::now().timestamp_millis(),
        spec_hash: spec_hash_of("https://example.com/"),
        signature: String::new(),
    }
    .sign(HUB_ID, key)
}
