//! End to end: the real server binary and real validator processes check a local
//! HTTP target; the ticks they sign land in PostgreSQL and verify.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Text};
use overlaps_shared::jobs;
use overlaps_shared::models::Tick;
use overlaps_shared::presence::Presence;
use overlaps_shared::protocol::{CheckStatus, FailureReason};
use overlaps_shared::schema::{ticks, validators};
use overlaps_shared::signing::{self, PublicKey, ResultFields};
use overlaps_shared::testing::{
    DNS_SLOW_NAME, HttpTarget, ServiceProcess, TestDatabase, TestDnsServer, TestRedis,
    ValidatorKeyFile, free_port, service_env, spawn_server, workspace_binary,
};

const VALIDATOR: &str = env!("CARGO_BIN_EXE_validator");
const HUB_ID: &str = "e2e-hub";
const PAYOUT: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";

struct Server {
    #[allow(dead_code)]
    _process: ServiceProcess,
    ws_url: String,
}

fn start_server(db: &TestDatabase, redis: &TestRedis, instance: &str) -> Server {
    start_server_with(db, redis, instance, &[])
}

fn start_server_with(
    db: &TestDatabase,
    redis: &TestRedis,
    instance: &str,
    extra: &[(&str, &str)],
) -> Server {
    let mut env = service_env(db, redis);
    env.extend([
        ("SERVER_INSTANCE_ID".to_owned(), instance.to_owned()),
        ("HUB_ID".to_owned(), HUB_ID.to_owned()),
    ]);
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let (process, bind) = spawn_server(&workspace_binary("server"), &env);
    Server {
        _process: process,
        ws_url: format!("ws://{bind}/ws/validator"),
    }
}

struct Node {
    process: ServiceProcess,
    /// Removed when the node is dropped.
    _key_file: ValidatorKeyFile,
}

fn start_validator(hub: &str) -> Node {
    start_validator_with(hub, &[])
}

fn start_validator_with(hub: &str, extra_args: &[&str]) -> Node {
    let key_file = ValidatorKeyFile::generate(VALIDATOR);
    let mut args = vec!["run", "--allow-private-targets"];
    args.extend_from_slice(extra_args);
    let mut process = ServiceProcess::spawn(
        VALIDATOR,
        &args,
        &[
            ("VALIDATOR_KEY_FILE", key_file.path()),
            ("HUB_URL", hub),
            ("PAYOUT_ADDRESS", PAYOUT),
        ],
    )
    .unwrap();
    assert!(
        process.wait_ready(Duration::from_secs(30)).is_some(),
        "{:?}",
        process.output()
    );
    Node {
        process,
        _key_file: key_file,
    }
}

async fn wait_online(
    presence: &Presence,
    count: usize,
) -> Vec<overlaps_shared::presence::OnlineValidator> {
    for _ in 0..200 {
        let online = presence.online().await.unwrap();
        if online.len() == count {
            return online;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} validators never came online");
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn website(conn: &mut PgConnection, url: &str) -> i64 {
    let owner = diesel::sql_query(
        "INSERT INTO users (email) VALUES ('o-' || gen_random_uuid() || '@x.io') RETURNING id",
    )
    .get_result::<Id>(conn)
    .unwrap()
    .id;
    diesel::sql_query(
        "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum, keyword) \
         VALUES ($1, $2, 60, 3000, 2, 'healthy') RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .bind::<Text, _>(url)
    .get_result::<Id>(conn)
    .unwrap()
    .id
}

/// Opens round `number` and assigns every site to every online validator.
fn assign_round(
    conn: &mut PgConnection,
    number: i64,
    sites: &[i64],
    online: &[overlaps_shared::presence::OnlineValidator],
) -> Vec<(i64, String)> {
    let deadline = Utc::now() + chrono::Duration::seconds(20);
    diesel::sql_query("INSERT INTO rounds (number, seed, deadline_at) VALUES ($1, $2, $3)")
        .bind::<BigInt, _>(number)
        .bind::<Bytea, _>(vec![7u8; 32])
        .bind::<diesel::sql_types::Timestamptz, _>(deadline)
        .execute(conn)
        .unwrap();
    let mut out = Vec::new();
    for site in sites {
        for v in online {
            let id = diesel::sql_query(
                "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at) \
                 VALUES ($1, $2, $3, $4, now(), $5) RETURNING id",
            )
            .bind::<BigInt, _>(number)
            .bind::<BigInt, _>(*site)
            .bind::<BigInt, _>(v.validator_id)
            .bind::<Text, _>(&v.server_instance)
            .bind::<diesel::sql_types::Timestamptz, _>(deadline)
            .get_result::<Id>(conn)
            .unwrap()
            .id;
            out.push((id, v.server_instance.clone()));
        }
    }
    out
}

async fn dispatch(redis: &TestRedis, round: i64, assignments: &[(i64, String)]) {
    use apalis::prelude::TaskSink;
    let mut instances: Vec<&String> = assignments.iter().map(|(_, i)| i).collect();
    instances.sort();
    instances.dedup();
    for instance in instances {
        let ids = assignments
            .iter()
            .filter(|(_, i)| i == instance)
            .map(|(id, _)| *id)
            .collect();
        let mut queue =
            jobs::dispatch_storage(redis.connect().await.unwrap(), redis.keys(), instance);
        queue
            .push(jobs::Dispatch {
                round,
                server_instance: instance.clone(),
                assignment_ids: ids,
            })
            .await
            .unwrap();
    }
}

async fn wait_answered(db: &TestDatabase, expected: i64) -> Vec<Tick> {
    let mut conn = db.connect().unwrap();
    for _ in 0..300 {
        let stored: i64 = ticks::table.count().get_result(&mut conn).unwrap();
        if stored >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ticks::table
        .select(Tick::as_select())
        .load(&mut conn)
        .unwrap()
}

/// Re-verifies a stored tick's signature from stored data alone, as the audit will.
fn verify_tick(conn: &mut PgConnection, tick: &Tick) {
    let key: Vec<u8> = validators::table
        .find(tick.validator_id)
        .select(validators::public_key)
        .first(conn)
        .unwrap();
    let key = PublicKey::from_bytes(&key).unwrap();
    // Rebuilt by hand from the stored row (not through `Tick::signed_fields`): a
    // v2 result signs its status code and the spec hash after the v1 fields.
    let fields = ResultFields {
        assignment_id: tick.assignment_id,
        status_code: CheckStatus::from_name(&tick.status).unwrap().code(),
        http_status: tick.http_status.map(|s| s as u16),
        latency_ms: tick.latency_ms as u32,
        failure_code: tick
            .failure
            .as_deref()
            .and_then(FailureReason::from_name)
            .map_or(0, |f| f.code()),
        tls_expires_at_ms: tick.tls_expires_at.map(|t| t.timestamp_millis()),
        checked_at_ms: tick.checked_at.timestamp_millis(),
        layout: signing::ResultLayout::V2 {
            spec_hash: tick.spec_hash.clone().unwrap().try_into().unwrap(),
        },
    };
    assert_eq!(tick.protocol_version, 2);
    key.verify(&signing::result_bytes(HUB_ID, &fields), &tick.signature)
        .unwrap_or_else(|e| panic!("tick {} does not verify: {e}", tick.assignment_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_validators_check_a_local_target_and_their_signed_ticks_are_stored() {
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let server = start_server(&db, &redis, "s1");
    let healthy = HttpTarget::start(200, "all healthy here").await.unwrap();
    let failing = HttpTarget::start(503, "maintenance").await.unwrap();
    let missing_keyword = HttpTarget::start(200, "nothing to see").await.unwrap();
    let _nodes = [
        start_validator(&server.ws_url),
        start_validator(&server.ws_url),
    ];
    let presence = Presence::new(redis.connect().await.unwrap(), redis.keys());
    let online = wait_online(&presence, 2).await;

    let mut conn = db.connect().unwrap();
    let closed_port = format!("http://127.0.0.1:{}/", free_port().unwrap());
    let sites = [
        website(&mut conn, &healthy.url()),
        website(&mut conn, &failing.url()),
        website(&mut conn, &missing_keyword.url()),
        website(&mut conn, &closed_port),
    ];
    let assignments = assign_round(&mut conn, 1, &sites, &online);
    dispatch(&redis, 1, &assignments).await;
    let stored = wait_answered(&db, 8).await;
    assert_eq!(stored.len(), 8, "stored {stored:?}");
    assert_eq!(healthy.hits(), 2);

    for tick in &stored {
        verify_tick(&mut conn, tick);
    }
    let by_site = |site: i64| {
        stored
            .iter()
            .filter(move |t| t.website_id == site)
            .collect::<Vec<_>>()
    };
    for t in by_site(sites[0]) {
        assert_eq!(
            (t.status.as_str(), t.http_status, t.failure.as_deref()),
            ("up", Some(200), None)
        );
    }
    for t in by_site(sites[1]) {
        assert_eq!(
            (t.status.as_str(), t.http_status, t.failure.as_deref()),
            ("down", Some(503), Some("http_status"))
        );
    }
    for t in by_site(sites[2]) {
        assert_eq!(
            (t.status.as_str(), t.failure.as_deref()),
            ("down", Some("keyword_missing"))
        );
    }
    for t in by_site(sites[3]) {
        assert_eq!(
            (t.status.as_str(), t.http_status, t.failure.as_deref()),
            ("down", None, Some("connect"))
        );
    }
    let answered =
        diesel::sql_query("SELECT count(*) AS id FROM check_assignments WHERE state = 'answered'")
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
    assert_eq!(answered, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignments_reach_validators_through_the_instance_holding_their_socket() {
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let one = start_server(&db, &redis, "s1");
    let two = start_server(&db, &redis, "s2");
    let target = HttpTarget::start(200, "healthy").await.unwrap();
    let _nodes = [
        start_validator(&one.ws_url),
        start_validator(&one.ws_url),
        start_validator(&two.ws_url),
        start_validator(&two.ws_url),
    ];
    let presence = Presence::new(redis.connect().await.unwrap(), redis.keys());
    let online = wait_online(&presence, 4).await;
    let per_instance = |name: &str| online.iter().filter(|v| v.server_instance == name).count();
    assert_eq!((per_instance("s1"), per_instance("s2")), (2, 2));

    let mut conn = db.connect().unwrap();
    let site = website(&mut conn, &target.url());
    let assignments = assign_round(&mut conn, 1, &[site], &online);
    dispatch(&redis, 1, &assignments).await;
    let stored = wait_answered(&db, 4).await;
    assert_eq!(stored.len(), 4);
    let mut validators: Vec<i64> = stored.iter().map(|t| t.validator_id).collect();
    validators.sort();
    let mut expected: Vec<i64> = online.iter().map(|v| v.validator_id).collect();
    expected.sort();
    assert_eq!(validators, expected);
    for tick in &stored {
        verify_tick(&mut conn, tick);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_reconnects_after_the_hub_restarts_and_serves_again() {
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let bind = format!("127.0.0.1:{}", free_port().unwrap());
    // A short TTL: the killed server's session lock and presence lapse quickly.
    let settings = [
        ("SERVER_BIND", bind.as_str()),
        ("PRESENCE_TTL_SECONDS", "2"),
    ];
    let server = start_server_with(&db, &redis, "s1", &settings);
    let target = HttpTarget::start(200, "healthy").await.unwrap();
    let mut node = start_validator(&server.ws_url);
    let signups = |node: &mut Node| {
        node.process
            .output()
            .iter()
            .filter(|l| l.contains("signed up"))
            .count()
    };
    for _ in 0..100 {
        if signups(&mut node) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The hub dies without closing anything, and comes back on the same address.
    drop(server);
    let mut restarted = start_server_with(&db, &redis, "s1", &settings);
    for _ in 0..600 {
        if signups(&mut node) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(signups(&mut node) >= 2, "{:?}", node.process.output());

    let presence = Presence::new(redis.connect().await.unwrap(), redis.keys());
    let online = wait_online(&presence, 1).await;
    let mut conn = db.connect().unwrap();
    let site = website(&mut conn, &target.url());
    let assignments = assign_round(&mut conn, 1, &[site], &online);
    dispatch(&redis, 1, &assignments).await;
    let stored = wait_answered(&db, 1).await;
    assert_eq!(stored.len(), 1, "{:?}", restarted._process.output());
    verify_tick(&mut conn, &stored[0]);
}

/// A site row with `assertions` (a `SiteAssertions` object) and no keyword.
fn site_with(conn: &mut PgConnection, url: &str, keyword: Option<&str>, assertions: &str) -> i64 {
    let site = website(conn, url);
    diesel::sql_query("UPDATE websites SET keyword = $2, assertions = $3::jsonb WHERE id = $1")
        .bind::<BigInt, _>(site)
        .bind::<diesel::sql_types::Nullable<Text>, _>(keyword)
        .bind::<Text, _>(assertions)
        .execute(conn)
        .unwrap();
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nodes_evaluate_the_assertions_sent_and_sign_their_spec() {
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let server = start_server(&db, &redis, "s1");
    let erroring = HttpTarget::start(200, "healthy, but: database error")
        .await
        .unwrap();
    let json = HttpTarget::start(200, r#"{"status":"failing"}"#)
        .await
        .unwrap();
    let slow = HttpTarget::start_delayed(200, r#"{"status":"ok"}"#, Duration::from_millis(700))
        .await
        .unwrap();
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = format!("tcp://127.0.0.1:{}", port.local_addr().unwrap().port());
    tokio::spawn(async move { while port.accept().await.is_ok() {} });
    let _nodes = [
        start_validator(&server.ws_url),
        start_validator(&server.ws_url),
    ];
    let presence = Presence::new(redis.connect().await.unwrap(), redis.keys());
    let online = wait_online(&presence, 2).await;

    let mut conn = db.connect().unwrap();
    let sites = [
        site_with(
            &mut conn,
            &erroring.url(),
            Some("error"),
            r#"{"keyword_absent": true}"#,
        ),
        site_with(
            &mut conn,
            &json.url(),
            None,
            r#"{"json_path": "$.status", "json_expected": "\"ok\""}"#,
        ),
        site_with(
            &mut conn,
            &slow.url(),
            None,
            r#"{"json_path": "$.status", "json_expected": "\"ok\"", "max_response_ms": 300}"#,
        ),
        site_with(&mut conn, &tcp, None, "{}"),
    ];
    let assignments = assign_round(&mut conn, 1, &sites, &online);
    dispatch(&redis, 1, &assignments).await;
    let stored = wait_answered(&db, 8).await;
    assert_eq!(stored.len(), 8, "stored {stored:?}");
    for tick in &stored {
        // Signed over v2 bytes with the spec hash the hub recorded when sending.
        verify_tick(&mut conn, tick);
        let recorded: Vec<u8> = overlaps_shared::schema::check_assignments::table
            .find(tick.assignment_id)
            .select(overlaps_shared::schema::check_assignments::spec_hash)
            .first::<Option<Vec<u8>>>(&mut conn)
            .unwrap()
            .unwrap();
        assert_eq!(tick.spec_hash.as_deref(), Some(&recorded[..]));
    }
    let of = |site: i64| -> Vec<(&str, Option<&str>)> {
        stored
            .iter()
            .filter(|t| t.website_id == site)
            .map(|t| (t.status.as_str(), t.failure.as_deref()))
            .collect()
    };
    assert_eq!(of(sites[0]), vec![("down", Some("keyword_present")); 2]);
    assert_eq!(of(sites[1]), vec![("down", Some("json_mismatch")); 2]);
    assert_eq!(of(sites[2]), vec![("degraded", Some("too_slow")); 2]);
    assert_eq!(of(sites[3]), vec![("up", None); 2]);
    assert!(
        stored
            .iter()
            .filter(|t| t.website_id == sites[2])
            .all(|t| t.latency_ms > 300 && t.http_status == Some(200))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nodes_check_dns_records_through_their_configured_resolver() {
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let server = start_server(&db, &redis, "s1");
    let dns = TestDnsServer::start(Duration::from_millis(500))
        .await
        .unwrap();
    let resolver = dns.addr().to_string();
    let _nodes = [
        start_validator_with(&server.ws_url, &["--dns-server", &resolver]),
        start_validator_with(&server.ws_url, &["--dns-server", &resolver]),
    ];
    let presence = Presence::new(redis.connect().await.unwrap(), redis.keys());
    let online = wait_online(&presence, 2).await;

    let mut conn = db.connect().unwrap();
    let slow = format!("dns://{DNS_SLOW_NAME}/A");
    let sites = [
        site_with(
            &mut conn,
            "dns://www.example.test/A",
            Some("192.0.2.11"),
            "{}",
        ),
        site_with(
            &mut conn,
            "dns://example.test/MX",
            Some("mx9.example.test"),
            "{}",
        ),
        site_with(&mut conn, &slow, None, r#"{"max_response_ms": 200}"#),
        site_with(&mut conn, "dns://nope.example.test/AAAA", None, "{}"),
    ];
    let assignments = assign_round(&mut conn, 1, &sites, &online);
    dispatch(&redis, 1, &assignments).await;
    let stored = wait_answered(&db, 8).await;
    assert_eq!(stored.len(), 8, "stored {stored:?}");
    for tick in &stored {
        // Signed over v2 bytes with the spec hash (kind dns, the expected answer
        // included) the hub recorded when sending.
        verify_tick(&mut conn, tick);
        let recorded: Vec<u8> = overlaps_shared::schema::check_assignments::table
            .find(tick.assignment_id)
            .select(overlaps_shared::schema::check_assignments::spec_hash)
            .first::<Option<Vec<u8>>>(&mut conn)
            .unwrap()
            .unwrap();
        assert_eq!(tick.spec_hash.as_deref(), Some(&recorded[..]));
        assert_eq!(tick.http_status, None);
    }
    let of = |site: i64| -> Vec<(&str, Option<&str>)> {
        stored
            .iter()
            .filter(|t| t.website_id == site)
            .map(|t| (t.status.as_str(), t.failure.as_deref()))
            .collect()
    };
    assert_eq!(of(sites[0]), vec![("up", None); 2]);
    assert_eq!(of(sites[1]), vec![("down", Some("dns_mismatch")); 2]);
    assert_eq!(of(sites[2]), vec![("degraded", Some("too_slow")); 2]);
    assert_eq!(of(sites[3]), vec![("down", Some("dns")); 2]);
    assert!(
        stored
            .iter()
            .filter(|t| t.website_id == sites[2])
            .all(|t| t.latency_ms > 200)
    );
}
