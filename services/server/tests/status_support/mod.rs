//! A published status page over real signed results: three validators with real
//! Ed25519 keys sign each result exactly as a validator does (`result_bytes` over
//! the stored fields, hub id `test-hub`), results are stored as ingest stores
//! them, and rounds are closed by accounting's own `close_round` (statuses,
//! incidents, rollups), so the page shows what the hub really settled.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bigdecimal::BigDecimal;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Timestamptz};
use overlaps_accounting::close;
use overlaps_accounting::config::ClosePolicy;
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::signing::{Keypair, ResultFields, ResultRecord, result_bytes};
use serde_json::json;

use crate::api_support::Api;
use crate::common::HUB_ID;

/// The page's slug.
pub const SLUG: &str = "acme";
/// A site name that is markup: it must render inert.
pub const HOSTILE_NAME: &str = "<script>alert('owned')</script>";

/// What each round's three validators answer about the shop: round 3 opens the
/// incident (second down in a row, one validator dissenting), round 4 resolves it.
pub const SHOP_ROUNDS: [[&str; 3]; 5] = [
    ["up", "up", "up"],
    ["down", "down", "down"],
    ["down", "up", "down"],
    ["up", "up", "up"],
    ["up", "up", "up"],
];

/// The round that opened the incident and the one that resolved it.
pub const OPENED_ROUND: i64 = 3;
/// See [`OPENED_ROUND`].
pub const RESOLVED_ROUND: i64 = 4;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The world: an owner with a published page of two sites and one private site.
pub struct World {
    pub owner_key: String,
    pub shop: i64,
    pub hostile: i64,
    pub private: i64,
    pub page_id: i64,
    pub validators: Vec<(i64, Keypair)>,
    pub incident: i64,
}

fn policy() -> ClosePolicy {
    ClosePolicy {
        reward_per_check: BigDecimal::from(1_000),
        confirmations_down: 2,
        confirmations_up: 1,
        reputation_gain: 10,
        reputation_loss: 50,
        tls_warning_days: 14,
        canary_penalty_bp: 5_000,
    }
}

/// Stores round `n` (opened at `opened`) with one signed result per validator
/// and site, `statuses[i]` being validator `i`'s answer about `site`.
pub fn signed_round(
    api: &Api,
    n: i64,
    opened: DateTime<Utc>,
    answers: &[(i64, [&str; 3])],
    validators: &[(i64, Keypair)],
) {
    let mut conn = api.conn();
    diesel::sql_query(
        "INSERT INTO rounds (number, seed, opened_at, deadline_at) VALUES ($1, $2, $3, $4)",
    )
    .bind::<BigInt, _>(n)
    .bind::<Bytea, _>(vec![n as u8; 32])
    .bind::<Timestamptz, _>(opened)
    .bind::<Timestamptz, _>(opened + Duration::seconds(30))
    .execute(&mut conn)
    .unwrap();
    for (site, statuses) in answers {
        for ((validator, key), status) in validators.iter().zip(statuses) {
            let assignment = diesel::sql_query(
                "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at, state, answered_at) \
                 VALUES ($1, $2, $3, 'api-1', $4, $5, 'answered', $4) RETURNING id",
            )
            .bind::<BigInt, _>(n)
            .bind::<BigInt, _>(*site)
            .bind::<BigInt, _>(*validator)
            .bind::<Timestamptz, _>(opened + Duration::seconds(5))
            .bind::<Timestamptz, _>(opened + Duration::seconds(30))
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
            let up = *status == "up";
            let checked_at = opened + Duration::seconds(6);
            let http_status = if up { Some(200) } else { Some(503) };
            let failure = (!up).then(|| "http_status".to_owned());
            // Signed under overlaps/v2, over the spec the hub would have sent.
            let spec_hash = [*site as u8; 32];
            let fields = ResultFields::from_record(ResultRecord {
                assignment_id: assignment,
                status,
                http_status,
                latency_ms: 120,
                failure: failure.as_deref(),
                tls_expires_at: None,
                checked_at,
                protocol_version: 2,
                spec_hash: Some(&spec_hash),
            });
            let signature = key.sign(&result_bytes(HUB_ID, &fields));
            diesel::insert_into(ticks::table)
                .values(&Tick {
                    assignment_id: assignment,
                    round_number: n,
                    website_id: *site,
                    validator_id: *validator,
                    status: (*status).into(),
                    http_status,
                    latency_ms: 120,
                    failure,
                    tls_expires_at: None,
                    // Millisecond precision, as the signed bytes carry it.
                    checked_at: DateTime::from_timestamp_millis(checked_at.timestamp_millis())
                        .unwrap(),
                    received_at: Utc::now(),
                    signature: signature.to_vec(),
                    protocol_version: 2,
                    spec_hash: Some(spec_hash.to_vec()),
                })
                .execute(&mut conn)
                .unwrap();
        }
    }
}

/// Closes round `n` exactly as accounting does.
pub fn close(api: &Api, n: i64, at: DateTime<Utc>) {
    let closed = close::close_round(&mut api.conn(), n, at, &policy()).unwrap();
    assert!(closed.is_some(), "round {n} closed");
}

impl World {
    /// Builds the world on `api`'s server and publishes the page through the API.
    pub async fn new(api: &Api) -> Self {
        let (_, owner_key) = api.owner("owner@example.com").await;
        let shop = create_site(api, &owner_key, "Shop", "https://shop.example/").await;
        let hostile = create_site(api, &owner_key, HOSTILE_NAME, "https://blog.example/").await;
        let private = create_site(api, &owner_key, "Back office", "https://office.example/").await;
        let mut conn = api.conn();
        let validators: Vec<(i64, Keypair)> = (1..=3u8)
            .map(|n| {
                let key = Keypair::from_seed(&[n; 32]);
                let id = diesel::sql_query(
                    "INSERT INTO validators (public_key, reputation) VALUES ($1, 5000) RETURNING id",
                )
                .bind::<Bytea, _>(key.public_key().to_bytes().to_vec())
                .get_result::<Id>(&mut conn)
                .unwrap()
                .id;
                (id, key)
            })
            .collect();
        let start = Utc::now() - Duration::minutes(10);
        for (i, shop_answers) in SHOP_ROUNDS.iter().enumerate() {
            let n = i as i64 + 1;
            let opened = start + Duration::seconds(30 * (n - 1));
            signed_round(
                api,
                n,
                opened,
                &[
                    (shop, *shop_answers),
                    (hostile, ["up", "up", "up"]),
                    (private, ["down", "down", "down"]),
                ],
                &validators,
            );
            close(api, n, opened + Duration::seconds(31));
        }
        let incident = api.id(&format!(
            "SELECT id FROM incidents WHERE website_id = {shop} AND opened_round = {OPENED_ROUND} \
             AND resolved_round = {RESOLVED_ROUND}"
        ));
        let page = api
            .post(
                "/api/v1/status-pages",
                Some(&owner_key),
                json!({"slug": SLUG, "title": "Acme & Co <services>",
                       "description": "Checked by independent validators.",
                       "website_ids": [shop, hostile]}),
            )
            .await;
        let page_id = page.expect(201)["id"].as_i64().unwrap();
        World {
            owner_key,
            shop,
            hostile,
            private,
            page_id,
            validators,
            incident,
        }
    }
}

async fn create_site(api: &Api, key: &str, name: &str, url: &str) -> i64 {
    let answer = api
        .post(
            "/api/v1/websites",
            Some(key),
            json!({ "name": name, "url": url }),
        )
        .await;
    answer.expect(201)["id"].as_i64().unwrap()
}
