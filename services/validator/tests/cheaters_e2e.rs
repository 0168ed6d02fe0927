//! The trust model end to end: the real server, scheduler, accounting and canary
//! server, two honest validator nodes (the real binary) and three cheating clients
//! written from the protocol alone — one that never checks and always answers
//! `up`, one that copies (polls every public route of the open round, as the owner
//! of the monitored site too, and answers what it finds, else `up`), and one that
//! answers at random — over `CHEATERS_ROUNDS` (100) short rounds with canaries.
//!
//! Honest checking must earn strictly the most per assignment; each cheater at most
//! half of what an honest node earns; and the copier must never see another
//! validator's result of a round that is still open.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use futures::{SinkExt, StreamExt};
use overlaps_shared::protocol::{CheckResult, CheckStatus, HubMessage, ValidatorMessage};
use overlaps_shared::signing::{self, Keypair, PayoutAddress};
use overlaps_shared::testing::e2e::{
    distinct_loopback, scalar, spawn_binary as spawn, spawn_hub_server, start_validator,
};
use overlaps_shared::testing::{
    HttpTarget, TestDatabase, TestRedis, free_port, service_env, wait_until,
};
use tokio_tungstenite::tungstenite::Message;

const PAYOUT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const HUB: &str = "e2e-cheaters";

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// How a cheating client answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Strategy {
    /// Never checks: always `up`.
    Lazy,
    /// Copies whatever the public routes show of the open round, else `up`.
    Copier,
    /// A coin toss.
    Random,
}

/// What the copier could see: results of open rounds it found (must stay 0).
#[derive(Default)]
struct Peeks {
    polls: AtomicUsize,
    leaks: AtomicUsize,
}

/// Everything public about round `round` and the owner's site, polled as the
/// owner; counts every other validator's result of the open round it finds.
async fn peek(
    http: &reqwest::Client,
    api: &str,
    owner_key: &str,
    site: i64,
    round: i64,
    own_id: i64,
    peeks: &Peeks,
) -> Vec<String> {
    let routes = [
        format!("/api/v1/rounds/{round}/assignments?limit=200"),
        format!("/api/v1/rounds/{round}"),
        format!("/api/v1/rounds/{round}/canaries"),
        "/api/v1/rounds?limit=5".to_owned(),
        "/api/v1/validators?limit=200".to_owned(),
        format!("/api/v1/websites/{site}/ticks?limit=200"),
        format!("/api/v1/websites/{site}/status"),
        format!("/api/v1/websites/{site}/incidents"),
        format!("/api/v1/websites/{site}/latency"),
        "/metrics".to_owned(),
    ];
    let mut seen = Vec::new();
    for route in routes {
        let Ok(answer) = http
            .get(format!("{api}{route}"))
            .bearer_auth(owner_key)
            .send()
            .await
        else {
            continue;
        };
        peeks.polls.fetch_add(1, Ordering::Relaxed);
        let Ok(text) = answer.text().await else {
            continue;
        };
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        for item in body["items"].as_array().into_iter().flatten() {
            // A round's assignment with another validator's result, or a tick of it.
            let others_result = item["validator_id"].as_i64() != Some(own_id)
                && (item["result"]["status"].is_string()
                    || (item["round_number"].as_i64() == Some(round)
                        && item["status"].is_string()));
            let of_this_round = route.contains(&format!("/{round}/")) || route.contains("ticks");
            if others_result && of_this_round {
                let status = item["result"]["status"]
                    .as_str()
                    .or(item["status"].as_str())
                    .unwrap_or_default();
                seen.push(status.to_owned());
            }
        }
    }
    if !seen.is_empty() {
        peeks.leaks.fetch_add(seen.len(), Ordering::Relaxed);
    }
    seen
}

/// Connects, signs up with `key` and answers every `validate` by `strategy`
/// until the socket closes.
#[allow(clippy::too_many_arguments)]
async fn cheat(
    strategy: Strategy,
    key: Keypair,
    ws: String,
    api: String,
    owner_key: String,
    site: i64,
    peeks: Arc<Peeks>,
    ids: tokio::sync::mpsc::UnboundedSender<(Strategy, i64)>,
) {
    // Each cheater is its own operator, on a network of its own (one party's keys on
    // one network would share a single seat per quorum).
    let local: std::net::IpAddr = distinct_loopback().parse().unwrap();
    let hub: std::net::SocketAddr = ws
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.bind(std::net::SocketAddr::new(local, 0)).unwrap();
    let stream = tcp.connect(hub).await.unwrap();
    let (socket, _) = tokio_tungstenite::client_async(
        ws.as_str(),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let (mut sink, mut stream) = socket.split();
    let (out, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<ValidatorMessage>();
    tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let text = serde_json::to_string(&message).unwrap();
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
    });
    let key = Arc::new(key);
    let http = reqwest::Client::new();
    let mut own_id = 0;
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        let Ok(message) = serde_json::from_str::<HubMessage>(&text) else {
            continue;
        };
        match message {
            HubMessage::Hello { hub_id, nonce, .. } => {
                let mut nonce_bytes = [0u8; 32];
                hex::decode_to_slice(nonce, &mut nonce_bytes).unwrap();
                let payout: PayoutAddress = PAYOUT.parse().unwrap();
                assert_eq!(hub_id, HUB);
                let signature = key.sign(&signing::signup_bytes(&hub_id, &nonce_bytes, &payout));
                out.send(ValidatorMessage::Signup {
                    public_key: key.public_key().to_string(),
                    payout_address: PAYOUT.into(),
                    signature: hex::encode(signature),
                })
                .unwrap();
            }
            HubMessage::SignedUp { validator_id } => {
                own_id = validator_id;
                ids.send((strategy, validator_id)).unwrap();
            }
            HubMessage::Validate(request) => {
                let (out, key, http, api, owner_key, peeks) = (
                    out.clone(),
                    Arc::clone(&key),
                    http.clone(),
                    api.clone(),
                    owner_key.clone(),
                    Arc::clone(&peeks),
                );
                tokio::spawn(async move {
                    let status = match strategy {
                        Strategy::Lazy => CheckStatus::Up,
                        Strategy::Random => {
                            if rand::random::<bool>() {
                                CheckStatus::Up
                            } else {
                                CheckStatus::Down
                            }
                        }
                        Strategy::Copier => {
                            // Poll until shortly before the deadline, then answer the
                            // majority of what was seen, or `up`.
                            let mut seen = Vec::new();
                            while Utc::now().timestamp_millis() < request.deadline_ms - 350 {
                                seen.extend(
                                    peek(
                                        &http,
                                        &api,
                                        &owner_key,
                                        site,
                                        request.round,
                                        own_id,
                                        &peeks,
                                    )
                                    .await,
                                );
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            let down = seen.iter().filter(|s| *s == "down").count();
                            if down * 2 > seen.len() {
                                CheckStatus::Down
                            } else {
                                CheckStatus::Up
                            }
                        }
                    };
                    let up = status == CheckStatus::Up;
                    let result = CheckResult {
                        assignment_id: request.assignment_id,
                        status,
                        http_status: Some(if up { 200 } else { 503 }),
                        latency_ms: 40,
                        failure: (!up)
                            .then_some(overlaps_shared::protocol::FailureReason::HttpStatus),
                        tls_expires_at_ms: None,
                        checked_at_ms: Utc::now().timestamp_millis(),
                        spec_hash: hex::encode(request.spec().hash()),
                        signature: String::new(),
                    }
                    .sign(HUB, &key);
                    let _ = out.send(ValidatorMessage::Result(result));
                });
            }
            _ => {}
        }
    }
}

/// Earned (smallest unit, after forfeits) and assignments of closed rounds.
fn earnings(db: &TestDatabase, validator: i64) -> (i64, i64) {
    let earned = scalar(
        db,
        &format!(
            "SELECT COALESCE(sum(c.amount), 0) / 1000000 FROM validator_credits c \
             WHERE c.validator_id = {validator}"
        ),
    );
    let assignments = scalar(
        db,
        &format!(
            "SELECT count(*) FROM check_assignments a JOIN rounds r ON r.number = a.round_number \
             WHERE a.validator_id = {validator} AND r.closed_at IS NOT NULL"
        ),
    );
    (earned, assignments)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn honest_checking_earns_the_most_and_lazy_copying_random_at_most_half() {
    overlaps_shared::testing::install_tls_provider();
    let rounds: i64 = std::env::var("CHEATERS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let site = HttpTarget::start(200, "all healthy").await.unwrap();
    let (http_port, tls_port, refused_port) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let secret = hex::encode(rand::random::<[u8; 32]>());

    let mut env = service_env(&db, &redis);
    let settings = [
        ("HUB_ID", HUB.to_owned()),
        ("ROUND_SECONDS", "2".into()),
        ("SCHEDULER_LOCK_TTL_SECONDS", "3".into()),
        ("EON_ROUNDS", "20".into()),
        ("REWARD_PER_CHECK", "1000000".into()),
        ("CANARY_SECRET", secret),
        ("CANARY_HTTP_URL", format!("http://127.0.0.1:{http_port}")),
        ("CANARY_TLS_URL", format!("https://127.0.0.1:{tls_port}")),
        (
            "CANARY_REFUSED_URL",
            format!("http://127.0.0.1:{refused_port}"),
        ),
        ("CANARY_HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
        ("CANARY_TLS_LISTEN", format!("127.0.0.1:{tls_port}")),
        ("CANARY_HOLD_SECONDS", "5".into()),
        ("CANARY_RATE_BP", "5000".into()),
        ("CANARY_CHAIN_ROUNDS", "32".into()),
        ("CANARY_TIMEOUT_MS", "600".into()),
    ];
    env.extend(settings.map(|(k, v)| (k.to_owned(), v)));
    let (_server, bind) = spawn_hub_server(&env);
    let _accounting = spawn("accounting", &[], &env);
    let _canary = spawn("canary", &[], &env);
    let api = format!("http://{bind}");

    // The copier owns the monitored site, so the owner's routes are open to it.
    let http = reqwest::Client::new();
    let account: serde_json::Value = serde_json::from_str(
        &http
            .post(format!("{api}/api/v1/accounts"))
            .header("content-type", "application/json")
            .body(r#"{"email": "copier@shop.example", "name": "Copier"}"#)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let owner_key = account["api_key"]["key"].as_str().unwrap().to_owned();
    let owner = account["account"]["id"].as_i64().unwrap();
    let website = diesel::sql_query(
        "INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum, keyword) \
         VALUES ($1, 'Shop', $2, 2, 800, 5, 'healthy') RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .bind::<Text, _>(site.url())
    .get_result::<Id>(&mut db.connect().unwrap())
    .unwrap()
    .id;

    // Two honest nodes, then the three cheaters.
    let ws = format!("ws://{bind}/ws/validator");
    let _honest: Vec<_> = (0..2).map(|_| start_validator(&ws, PAYOUT, &[])).collect();
    let peeks = Arc::new(Peeks::default());
    let (ids_tx, mut ids_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cheaters = Vec::new();
    for strategy in [Strategy::Lazy, Strategy::Copier, Strategy::Random] {
        cheaters.push(tokio::spawn(cheat(
            strategy,
            Keypair::generate(),
            ws.clone(),
            api.clone(),
            owner_key.clone(),
            website,
            Arc::clone(&peeks),
            ids_tx.clone(),
        )));
    }
    let mut cheater_ids = HashMap::new();
    for _ in 0..3 {
        let (strategy, id) = tokio::time::timeout(Duration::from_secs(20), ids_rx.recv())
            .await
            .unwrap()
            .unwrap();
        cheater_ids.insert(strategy, id);
    }
    wait_until("five validators signed up", Duration::from_secs(20), || {
        scalar(&db, "SELECT count(*) FROM validators") == 5
    })
    .await;
    // Presence is refreshed by the heartbeat; give every node a moment to appear.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _scheduler = spawn("scheduler", &[], &env);

    wait_until(
        &format!("{rounds} rounds closed"),
        Duration::from_secs(u64::try_from(rounds).unwrap() * 2 + 120),
        || {
            scalar(
                &db,
                "SELECT count(*) FROM rounds WHERE closed_at IS NOT NULL",
            ) >= rounds
        },
    )
    .await;

    // Every validator's earnings per assignment over the closed rounds.
    let honest_ids: Vec<i64> = {
        let cheaters: Vec<i64> = cheater_ids.values().copied().collect();
        let all: Vec<Id> = diesel::sql_query("SELECT id FROM validators ORDER BY id")
            .load(&mut db.connect().unwrap())
            .unwrap();
        all.into_iter()
            .map(|v| v.id)
            .filter(|id| !cheaters.contains(id))
            .collect()
    };
    let closed = scalar(
        &db,
        "SELECT count(*) FROM rounds WHERE closed_at IS NOT NULL",
    );
    let canaries = scalar(
        &db,
        "SELECT count(*) FROM canary_assignments WHERE outcome IS NOT NULL",
    );
    let per_assignment = |id: i64| {
        let (earned, assignments) = earnings(&db, id);
        (
            earned,
            assignments,
            earned as f64 / assignments.max(1) as f64,
        )
    };
    println!(
        "cheaters_e2e: rounds_closed={closed} canaries_judged={canaries} eon_rounds=20 canary_rate_bp=5000 \
         copier_polls={} copier_leaks={}",
        peeks.polls.load(Ordering::Relaxed),
        peeks.leaks.load(Ordering::Relaxed)
    );
    let mut honest_rates = Vec::new();
    for (n, id) in honest_ids.iter().enumerate() {
        let (earned, assignments, rate) = per_assignment(*id);
        let failed = scalar(
            &db,
            &format!(
                "SELECT count(*) FROM canary_assignments WHERE validator_id = {id} AND outcome = 'failed'"
            ),
        );
        println!(
            "cheaters_e2e: validator=honest-{} earned_checks={earned} assignments={assignments} \
             per_assignment={rate:.3} canaries_failed={failed}",
            n + 1
        );
        honest_rates.push(rate);
    }
    let honest_floor = honest_rates.iter().copied().fold(f64::INFINITY, f64::min);
    for strategy in [Strategy::Lazy, Strategy::Copier, Strategy::Random] {
        let id = cheater_ids[&strategy];
        let (earned, assignments, rate) = per_assignment(id);
        let failed = scalar(
            &db,
            &format!(
                "SELECT count(*) FROM canary_assignments WHERE validator_id = {id} AND outcome = 'failed'"
            ),
        );
        println!(
            "cheaters_e2e: validator={strategy:?} earned_checks={earned} assignments={assignments} \
             per_assignment={rate:.3} ratio_to_honest={:.3} canaries_failed={failed}",
            rate / honest_floor
        );
        assert!(
            assignments > rounds / 2,
            "{strategy:?} took part ({assignments})"
        );
        assert!(
            rate < honest_floor,
            "{strategy:?} earns {rate:.3} per assignment, an honest node {honest_floor:.3}"
        );
        assert!(
            rate <= honest_floor / 2.0,
            "{strategy:?} earns more than half of an honest node ({rate:.3} vs {honest_floor:.3})"
        );
    }
    assert_eq!(
        peeks.leaks.load(Ordering::Relaxed),
        0,
        "the copier saw results of open rounds"
    );
    assert!(peeks.polls.load(Ordering::Relaxed) > 100);
    // Honest nodes really checked: they passed canaries of every failure mode.
    let modes = scalar(
        &db,
        &format!(
            "SELECT count(DISTINCT mode) FROM canary_assignments WHERE outcome = 'passed' \
             AND validator_id IN ({})",
            honest_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    assert_eq!(modes, 6, "honest nodes passed canaries of all six modes");
    for task in cheaters {
        task.abort();
    }
}
