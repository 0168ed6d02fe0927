//! Faults end to end: the whole hub on its own database, its own Redis server and
//! its own anvil chain (two server instances, scheduler, accounting, audit, chain,
//! verifier and four validator nodes, two on each instance), with 2-second rounds
//! and 4-round eons. Mid-round, accounting, the scheduler and server instance A are
//! SIGKILLed and restarted; later, mid-round again, the Redis server is killed and
//! started empty (nothing saved: every queue, lock, lease and presence entry gone).
//! Then the scheduler is stopped, everything settles, and the stored data must show:
//!
//! - every result a node recorded as acknowledged (its receipt file) is stored, as
//!   an answered assignment with a tick carrying the node's very signature;
//! - rounds numbered 1..N without a gap, every one closed, none closed twice (at
//!   most one `round closed` line per round across every accounting process);
//! - eons 1..E contiguous over the rounds, each committed on-chain exactly once
//!   (one transaction, one `RootCommitted`), and audited clean against the chain;
//! - no nonce reused or skipped: the verifier's transactions (and every attempt of
//!   each) hold distinct nonces, consecutive after the deploy's, and the chain's
//!   count for the operator equals them.
//!
//! The evidence is printed when a check fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use overlaps_shared::eth::{self, Middleware, U256};
use overlaps_shared::testing::e2e::{
    DEV_PAYOUT, owned_env, rows, scalar, spawn_binary, start_validator, text,
};
use overlaps_shared::testing::{
    HttpTarget, PrivateRedis, ServiceProcess, TestChain, TestDatabase, TestRedis, ValidatorKeyFile,
    free_port, install_tls_provider, service_env, wait_until,
};

/// Eons this test wants closed after the Redis restart, besides the earlier ones.
const EONS_AFTER_REDIS: i64 = 2;

/// The hub's processes by name; killed ones are kept to read their logs at the end.
struct Hub {
    env: Vec<(String, String)>,
    binds: [String; 2],
    running: BTreeMap<&'static str, ServiceProcess>,
    retired: Vec<(&'static str, ServiceProcess)>,
}

impl Hub {
    fn env_of(&self, name: &str) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        let instance = match name {
            "server-a" => 0,
            "server-b" => 1,
            _ => return env,
        };
        env.push(("SERVER_BIND".into(), self.binds[instance].clone()));
        env.push(("SERVER_INSTANCE_ID".into(), format!("faults-{name}")));
        env
    }

    fn start(&mut self, name: &'static str) {
        let binary = name.strip_prefix("server-").map_or(name, |_| "server");
        let process = spawn_binary(binary, &[], &self.env_of(name));
        self.running.insert(name, process);
    }

    fn kill(&mut self, name: &'static str) {
        let mut process = self.running.remove(name).unwrap();
        process.signal("KILL").unwrap();
        process.wait_exit(Duration::from_secs(10)).unwrap();
        self.retired.push((name, process));
    }

    /// Every line every process of `name` printed, retired ones included.
    fn output_of(&mut self, name: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for (n, process) in self.retired.iter_mut() {
            if *n == name {
                lines.extend(process.output());
            }
        }
        if let Some(process) = self.running.get_mut(name) {
            lines.extend(process.output());
        }
        lines
    }
}

/// Waits for a round opened less than 600 ms ago with checks still pending (so
/// results are in flight); returns its number.
async fn mid_round(db: &TestDatabase) -> i64 {
    wait_until("a round just opened", Duration::from_secs(30), || {
        scalar(
            db,
            "SELECT count(*) FROM rounds r WHERE r.opened_at > now() - interval '600 ms' \
             AND EXISTS (SELECT 1 FROM check_assignments a WHERE a.round_number = r.number \
                         AND a.state = 'pending')",
        ) == 1
    })
    .await;
    scalar(db, "SELECT max(number) FROM rounds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_loses_and_repeats_nothing_across_sigkills_and_an_emptied_redis() {
    install_tls_provider();
    let started = Instant::now();
    let db = TestDatabase::new().unwrap();
    let mut redis_server = PrivateRedis::start().unwrap();
    let redis = TestRedis::on(&redis_server.url());
    let chain = TestChain::start_with(&["--block-time", "1"]).unwrap();
    let contract = chain.deploy_funded(U256::exp10(19)).await.unwrap();
    let contract_hex = format!("{contract:?}");
    let rpc = eth::read_client(&chain.rpc_url()).unwrap();
    let operator = chain.key(0).address();
    // Deploying and funding took the operator's first nonces.
    let nonces_before = rpc
        .get_transaction_count(operator, None)
        .await
        .unwrap()
        .as_u64() as i64;
    let sites = [
        HttpTarget::start(200, "all healthy").await.unwrap(),
        HttpTarget::start(503, "maintenance").await.unwrap(),
    ];

    let mut env = service_env(&db, &redis);
    env.extend(owned_env(&[
        ("HUB_ID", "e2e-faults"),
        ("ROUND_SECONDS", "2"),
        ("SCHEDULER_LOCK_TTL_SECONDS", "3"),
        ("EON_ROUNDS", "4"),
        ("EON_SECONDS", "3600"),
        ("CHAIN_RPC_URL", &chain.rpc_url()),
        ("CONTRACT_ADDRESS", &contract_hex),
        ("OPERATOR_PRIVATE_KEY", eth::DEV_PRIVATE_KEYS[0]),
        ("CONFIRMATIONS", "2"),
        ("VERIFIER_SWEEP_SECONDS", "1"),
        ("CHAIN_POLL_MS", "300"),
        ("AUDIT_SWEEP_SECONDS", "5"),
        // A killed instance's sessions lapse quickly, so its nodes come back soon.
        ("WS_HEARTBEAT_SECONDS", "1"),
        ("PRESENCE_TTL_SECONDS", "4"),
    ]));
    let binds = [0, 1].map(|_| format!("127.0.0.1:{}", free_port().unwrap()));
    let mut hub = Hub {
        env,
        binds: binds.clone(),
        running: BTreeMap::new(),
        retired: Vec::new(),
    };
    for name in [
        "server-a",
        "server-b",
        "accounting",
        "chain",
        "audit",
        "verifier",
    ] {
        hub.start(name);
    }

    let mut conn = db.connect().unwrap();
    use diesel::RunQueryDsl;
    diesel::sql_query("INSERT INTO users (email) VALUES ('owner@shop.example')")
        .execute(&mut conn)
        .unwrap();
    for (n, site) in sites.iter().enumerate() {
        diesel::sql_query(format!(
            "INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum) \
             SELECT id, 'Site {n}', '{}', 2, 800, 3 FROM users",
            site.url()
        ))
        .execute(&mut conn)
        .unwrap();
    }

    // Four nodes, two on each server instance.
    let mut nodes: Vec<(ServiceProcess, ValidatorKeyFile)> = Vec::new();
    for n in 0..4 {
        let hub_url = format!("ws://{}/ws/validator", binds[n % 2]);
        nodes.push(start_validator(&hub_url, DEV_PAYOUT, &[]));
    }
    wait_until("four validators", Duration::from_secs(20), || {
        scalar(&db, "SELECT count(*) FROM validators") == 4
    })
    .await;
    hub.start("scheduler");
    wait_until("eon 1 closed", Duration::from_secs(60), || {
        scalar(&db, "SELECT count(*) FROM eons") >= 1
    })
    .await;

    // Fault 1: accounting, the scheduler and server A SIGKILLed mid-round.
    let killed_round = mid_round(&db).await;
    for name in ["accounting", "scheduler", "server-a"] {
        hub.kill(name);
    }
    eprintln!("faults_e2e: killed accounting, scheduler, server-a in round {killed_round}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for name in ["server-a", "accounting", "scheduler"] {
        hub.start(name);
    }
    wait_until(
        "three rounds closed after the restarts",
        Duration::from_secs(60),
        || {
            scalar(
                &db,
                "SELECT max(number) FROM rounds WHERE closed_at IS NOT NULL",
            ) >= killed_round + 3
        },
    )
    .await;

    // Fault 2: Redis killed mid-round and started empty.
    let redis_round = mid_round(&db).await;
    let eons_before = scalar(&db, "SELECT count(*) FROM eons");
    redis_server
        .restart_empty(Duration::from_millis(500))
        .unwrap();
    eprintln!(
        "faults_e2e: Redis restarted empty in round {redis_round} (eons closed: {eons_before})"
    );
    wait_until(
        "eons closed and results stored after the Redis restart",
        Duration::from_secs(90),
        || {
            scalar(&db, "SELECT count(*) FROM eons") >= eons_before + EONS_AFTER_REDIS
                && scalar(
                    &db,
                    &format!("SELECT count(*) FROM ticks WHERE round_number > {redis_round}"),
                ) > 0
        },
    )
    .await;

    // Settle: no new rounds; every round due before the scheduler stopped closes
    // (it hands rounds to accounting once past their deadline, so the last one or
    // two stay open until a scheduler runs again); every eon is committed and audited.
    let mut scheduler = hub.running.remove("scheduler").unwrap();
    scheduler.terminate(Duration::from_secs(10)).unwrap();
    hub.retired.push(("scheduler", scheduler));
    let due_before_stop = "deadline_at < now() - interval '1 second'".replace(
        "now()",
        &format!("'{}'::timestamptz", text(&db, "SELECT now()").unwrap()),
    );
    wait_until("every round due closed", Duration::from_secs(30), || {
        scalar(
            &db,
            &format!("SELECT count(*) FROM rounds WHERE closed_at IS NULL AND {due_before_stop}"),
        ) == 0
    })
    .await;
    let settled = || {
        scalar(
            &db,
            "SELECT count(*) FROM eons e WHERE NOT EXISTS (SELECT 1 FROM audit_reports a \
             JOIN root_commitments c ON c.eon = a.eon WHERE a.eon = e.number \
             AND a.checked->>'onchain' = 'matches' AND c.onchain_root = c.root)",
        ) == 0
            && scalar(
                &db,
                "SELECT count(*) FROM ethereum_transactions WHERE state <> 'confirmed'",
            ) == 0
    };
    let settled_in_time = tokio::task::block_in_place(|| {
        overlaps_shared::testing::poll_until(Duration::from_secs(60), settled)
    });
    // The nodes stop cleanly, their receipt files complete.
    for (node, _) in nodes.iter_mut() {
        node.terminate(Duration::from_secs(15)).unwrap();
    }

    let mut failures = Vec::new();
    if !settled_in_time {
        failures.push(format!(
            "eons not all committed, confirmed and audited against the chain: {:#?}\n{:#?}",
            rows(
                &db,
                "SELECT eon, ok, checked->>'onchain', mismatches FROM audit_reports ORDER BY eon"
            ),
            rows(
                &db,
                "SELECT eon, onchain_root = root FROM root_commitments ORDER BY eon"
            ),
        ));
    }

    // 1. Every acknowledged result is stored, as its node signed it.
    let mut acks = Vec::new();
    for (_, key) in &nodes {
        let receipts = std::fs::read_to_string(format!("{}.receipts", key.path())).unwrap();
        for line in receipts.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            if value["kind"] == "ack" {
                let id = value["assignment_id"].as_i64().unwrap();
                let signature = value["signature"].as_str().unwrap().to_owned();
                assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
                acks.push((id, value["round"].as_i64().unwrap(), signature));
            }
        }
    }
    let after_faults = acks
        .iter()
        .filter(|(_, round, _)| *round > redis_round)
        .count();
    if acks.len() < 40 || after_faults == 0 {
        failures.push(format!(
            "too few acknowledged results to judge: {} in all, {after_faults} after the Redis restart",
            acks.len()
        ));
    }
    let values: Vec<String> = acks
        .iter()
        .map(|(id, _, sig)| format!("({id}::bigint, '\\x{sig}'::bytea)"))
        .collect();
    if !values.is_empty() {
        let lost = rows(
            &db,
            &format!(
                "SELECT a.id FROM (VALUES {}) AS a(id, sig) WHERE NOT EXISTS (\
                   SELECT 1 FROM ticks t JOIN check_assignments c ON c.id = t.assignment_id \
                   WHERE t.assignment_id = a.id AND t.signature = a.sig AND c.state = 'answered')",
                values.join(",")
            ),
        );
        if !lost.is_empty() {
            failures.push(format!(
                "{} of {} acknowledged results are not stored: assignments {lost:?}",
                lost.len(),
                acks.len()
            ));
        }
    }

    // 2. Rounds 1..N, every one closed, none closed twice.
    let (first, last, count) = (
        scalar(&db, "SELECT min(number) FROM rounds"),
        scalar(&db, "SELECT max(number) FROM rounds"),
        scalar(&db, "SELECT count(*) FROM rounds"),
    );
    if first != 1 || count != last {
        failures.push(format!(
            "rounds are not 1..{last} without a gap: {first}..{last}, {count} rows; missing {:?}",
            rows(
                &db,
                &format!(
                    "SELECT n FROM generate_series(1, {last}) n \
                                 WHERE NOT EXISTS (SELECT 1 FROM rounds WHERE number = n)"
                )
            )
        ));
    }
    let unchained = rows(
        &db,
        &format!(
            "SELECT number FROM rounds WHERE (closed_at IS NULL OR chain_hash IS NULL) \
             AND {due_before_stop} ORDER BY number"
        ),
    );
    if !unchained.is_empty() {
        failures.push(format!(
            "rounds not closed into the hash chain: {unchained:?}"
        ));
    }
    let mut closes: BTreeMap<i64, usize> = BTreeMap::new();
    for line in hub.output_of("accounting") {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if value["fields"]["message"] == "round closed" || value["message"] == "round closed" {
            let round = value["fields"]["round"]
                .as_i64()
                .or(value["round"].as_i64())
                .or(value["span"]["round"].as_i64());
            if let Some(round) = round {
                *closes.entry(round).or_default() += 1;
            }
        }
    }
    let twice: Vec<_> = closes.iter().filter(|(_, n)| **n > 1).collect();
    if closes.is_empty() || !twice.is_empty() {
        failures.push(format!(
            "rounds closed more than once (round, closes): {twice:?}; {} close lines in all",
            closes.len()
        ));
    }

    // 3. Eons 1..E contiguous over the rounds, each committed once, audited clean.
    let eons = scalar(&db, "SELECT count(*) FROM eons");
    let gaps = rows(
        &db,
        "SELECT number, first_round, last_round, lag(last_round) OVER (ORDER BY number) AS previous \
         FROM eons ORDER BY number",
    );
    let broken = scalar(
        &db,
        "SELECT count(*) FROM (SELECT number, first_round, row_number() OVER (ORDER BY number) AS k, \
           coalesce(lag(last_round) OVER (ORDER BY number), 0) AS previous FROM eons) e \
         WHERE e.number <> e.k OR e.first_round <> e.previous + 1",
    );
    if eons < eons_before + EONS_AFTER_REDIS || broken != 0 {
        failures.push(format!(
            "eons skip or overlap (number, first, last, previous last): {gaps:#?}"
        ));
    }
    let commits = rows(
        &db,
        "SELECT e.number, (SELECT count(*) FROM ethereum_transactions t \
                           WHERE t.tag = 'commit_root:' || e.number) AS txs, \
                (SELECT count(*) FROM contract_events c \
                 WHERE c.kind = 'root_committed' AND c.eon = e.number) AS events, \
                (SELECT ok FROM audit_reports a WHERE a.eon = e.number) AS audited_ok \
         FROM eons e ORDER BY e.number",
    );
    let bad_commits = scalar(
        &db,
        "SELECT count(*) FROM eons e WHERE \
           (SELECT count(*) FROM ethereum_transactions t WHERE t.tag = 'commit_root:' || e.number) <> 1 \
           OR (SELECT count(*) FROM contract_events c \
               WHERE c.kind = 'root_committed' AND c.eon = e.number) <> 1 \
           OR NOT coalesce((SELECT ok FROM audit_reports a WHERE a.eon = e.number), false)",
    );
    if bad_commits != 0 {
        failures.push(format!(
            "eons not committed exactly once or not audited clean (eon, txs, events, ok): {commits:#?}\n{:#?}",
            rows(&db, "SELECT eon, mismatches FROM audit_reports WHERE NOT ok")
        ));
    }

    // 4. No nonce reused or skipped.
    let txs = scalar(&db, "SELECT count(*) FROM ethereum_transactions");
    let nonce_rows = rows(
        &db,
        "SELECT t.tag, t.nonce, t.state, array_agg(DISTINCT a.nonce) AS attempt_nonces \
         FROM ethereum_transactions t LEFT JOIN ethereum_transaction_attempts a \
           ON a.transaction_id = t.id GROUP BY t.id ORDER BY t.nonce",
    );
    let reused = scalar(
        &db,
        "SELECT count(*) FROM ethereum_transaction_attempts a JOIN ethereum_transactions t \
           ON t.id = a.transaction_id WHERE a.nonce IS DISTINCT FROM t.nonce",
    ) + scalar(
        &db,
        "SELECT count(*) - count(DISTINCT (from_address, nonce)) FROM ethereum_transactions",
    );
    let expected_nonces = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM ethereum_transactions t, \
               (SELECT row_number() OVER (ORDER BY nonce) AS k, id FROM ethereum_transactions) o \
             WHERE o.id = t.id AND t.nonce = {nonces_before} + o.k - 1"
        ),
    );
    let on_chain = rpc
        .get_transaction_count(operator, None)
        .await
        .unwrap()
        .as_u64() as i64;
    if reused != 0 || expected_nonces != txs || on_chain != nonces_before + txs {
        failures.push(format!(
            "nonces reused or skipped: {txs} transactions from nonce {nonces_before}, the chain \
             counts {on_chain}: {nonce_rows:#?}"
        ));
    }

    // What the faults cost in errors, for whoever reads the test's output.
    for name in [
        "server-a",
        "server-b",
        "scheduler",
        "accounting",
        "audit",
        "chain",
        "verifier",
    ] {
        let errors: Vec<String> = hub
            .output_of(name)
            .into_iter()
            .filter(|l| l.contains(r#""level":"ERROR""#))
            .collect();
        eprintln!(
            "faults_e2e: {name} logged {} errors {:?}",
            errors.len(),
            errors.iter().take(3).collect::<Vec<_>>()
        );
    }
    eprintln!(
        "faults_e2e: {} rounds, {eons} eons, {txs} commits, {} acknowledged results ({after_faults} \
         after the Redis restart), {} closes logged; {:.0} s",
        last,
        acks.len(),
        closes.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{}\n\nrounds: {:#?}\nlast lines of accounting: {:#?}",
        failures.join("\n\n"),
        rows(
            &db,
            "SELECT number, opened_at, closed_at, degraded FROM rounds ORDER BY number"
        ),
        hub.output_of("accounting")
            .iter()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
    );
}
