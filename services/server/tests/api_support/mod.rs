//! Helpers for the REST API tests: a real server binary on its own database, an
//! HTTP client, and rows written straight into the tables other services fill.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{Deployment, Server};

/// The operator key every test server starts with (`OPERATOR_API_KEY`).
pub const OPERATOR_KEY: &str = "ovl_test_operator_key_0123456789abcdef0123456789";

/// A deployment with one server, and an HTTP client for it.
pub struct Api {
    pub deployment: Deployment,
    pub server: Server,
    pub http: reqwest::Client,
}

/// An answer: status, headers and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    /// Asserts the status and, for errors, the JSON error shape and code.
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        &self.json
    }

    /// Asserts an error with `status` and `code`, shaped `{code, message, details}`.
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.json["code"], code, "{}", self.text);
        assert!(self.json["message"].is_string(), "{}", self.text);
        assert!(self.json.get("details").is_some(), "{}", self.text);
    }
}

impl Api {
    pub fn start(extra: &[(&str, &str)]) -> Self {
        // reqwest's rustls has no provider of its own here: install ring, as the binaries do.
        overlaps_shared::testing::install_tls_provider();
        let deployment = Deployment::new();
        let server = start_server(&deployment, extra);
        Api {
            deployment,
            server,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.server.bind, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, self.url(path));
        if let Some(key) = key {
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&body).unwrap());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Answer {
        self.call(Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, key, Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: Option<&str>, body: Value) -> Answer {
        self.call(Method::PATCH, path, key, Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, key, None).await
    }

    /// Signs up an owner; returns (account id, key).
    pub async fn owner(&self, email: &str) -> (i64, String) {
        let answer = self
            .post(
                "/api/v1/accounts",
                None,
                serde_json::json!({ "email": email, "name": "Owner" }),
            )
            .await;
        let body = answer.expect(201);
        (
            body["account"]["id"].as_i64().unwrap(),
            body["api_key"]["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a website for `key`; returns its id.
    pub async fn website(&self, key: &str, url: &str) -> i64 {
        let answer = self
            .post(
                "/api/v1/websites",
                Some(key),
                serde_json::json!({ "name": "site", "url": url }),
            )
            .await;
        answer.expect(201)["id"].as_i64().unwrap()
    }

    pub fn conn(&self) -> PgConnection {
        self.deployment.conn()
    }

    /// Runs SQL straight on the test database.
    pub fn sql(&self, sql: &str) {
        diesel::connection::SimpleConnection::batch_execute(&mut self.conn(), sql).unwrap();
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.deployment.count(sql)
    }

    pub fn text(&self, sql: &str) -> String {
        #[derive(QueryableByName)]
        struct T {
            #[diesel(sql_type = Text)]
            t: String,
        }
        diesel::sql_query(format!("SELECT ({sql})::text AS t"))
            .get_result::<T>(&mut self.conn())
            .unwrap()
            .t
    }

    pub fn id(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct I {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        diesel::sql_query(sql)
            .get_result::<I>(&mut self.conn())
            .unwrap()
            .id
    }
}

/// Starts a server with the operator key and generous test settings, plus `extra`.
pub fn start_server(deployment: &Deployment, extra: &[(&str, &str)]) -> Server {
    let mut env: Vec<(&str, &str)> = vec![
        ("OPERATOR_API_KEY", OPERATOR_KEY),
        ("API_RATE_LIMIT_PER_KEY", "10000"),
        ("API_RATE_LIMIT_PER_IP", "10000"),
        ("WEBSITE_MIN_INTERVAL_SECONDS", "10"),
        // These tests change rows behind the API's back (a round closed as accounting
        // closes it) and read them back at once; tests/read_cache.rs tests the cache.
        ("API_READ_CACHE_MS", "0"),
    ];
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend_from_slice(extra);
    deployment.server("api-1", &env)
}
