//! The hub's HTTP server: the REST API with its OpenAPI document and Swagger UI,
//! public status pages and badges, health and metrics, and the validator WebSocket. A library so tests can run
//! it in-process.

pub mod api;
mod config;
mod dispatch;
mod health;
mod hub;
mod ingest;
mod metrics;
mod middleware;
mod presence_refresh;
pub mod public;
mod ws;

use std::sync::Arc;

use actix_web::{App, HttpServer, dev::Server, web};

pub use crate::config::{ApiSettings, IngestSettings, ServerConfig, SocketLimits, WebsiteBounds};
pub use crate::hub::Hub;
pub use crate::ingest::{Ingest, Outcome};
use crate::middleware::RateLimits;

/// The HTTP server, bound: run it by awaiting `server`.
pub struct BoundServer {
    /// The future that serves until stopped.
    pub server: Server,
    /// Where it listens: `SERVER_BIND`, with the port the system chose when it is 0.
    pub address: std::net::SocketAddr,
}

/// Binds the HTTP server to `SERVER_BIND` (port 0: a free port, reported back).
pub fn build_server(hub: Arc<Hub>) -> std::io::Result<BoundServer> {
    let bind = hub.config.bind;
    let state = web::Data::new(Arc::clone(&hub));
    let infra = web::Data::new(hub.infra.clone());
    let limits = RateLimits::new(&hub.config.api, hub.config.trusted_proxies.clone());
    tokio::spawn(Arc::clone(&limits).prune_forever());
    let limits = web::Data::new(limits);
    let origins = hub.config.api.cors_allowed_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(infra.clone())
            .app_data(limits.clone())
            .configure(api::errors::extractor_errors)
            .configure(health::routes)
            .configure(metrics::routes)
            .configure(ws::routes)
            .configure(api::routes)
            .configure(public::routes)
            .configure(api::openapi::routes)
            .default_service(web::to(api::errors::not_found))
            // Outermost last: CORS answers preflights before anything else runs.
            .wrap(actix_web::middleware::from_fn(middleware::around))
            .wrap(middleware::cors(&origins))
    })
    // Signals are handled by main, which stops the server gracefully.
    .disable_signals()
    .shutdown_timeout(5)
    .bind(bind)?;
    // One address was given, so one socket is bound.
    let address = server.addrs().first().copied().unwrap_or(bind);
    Ok(BoundServer {
        server: server.run(),
        address,
    })
}

/// Starts the background work of a server instance: the `dispatch` consumer, the
/// deadline sweep and the presence refresh of its validators.
pub fn spawn_background(hub: &Arc<Hub>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(dispatch::run_worker(Arc::clone(hub))),
        tokio::spawn(dispatch::sweep_expired(Arc::clone(hub))),
        tokio::spawn(presence_refresh::refresh_forever(Arc::clone(hub))),
    ]
}

/// Makes sure `OPERATOR_API_KEY`, when set, authenticates an operator.
pub async fn ensure_configured_operator_key(hub: &Hub) -> anyhow::Result<()> {
    let Some(key) = hub.config.api.operator_api_key.clone() else {
        return Ok(());
    };
    let email = hub.config.api.operator_account_email.clone();
    let result = hub
        .infra
        .db
        .run(move |conn| {
            Ok(api::auth::ensure_operator_key(
                conn,
                &email,
                "OPERATOR_API_KEY",
                key.expose(),
                api::auth::Promotion::Never,
            ))
        })
        .await?;
    match result {
        Ok((user, _)) => {
            tracing::info!(operator = user.id, "OPERATOR_API_KEY is an operator key");
            Ok(())
        }
        Err(api::auth::OperatorKeyError::Database(err)) => Err(err.into()),
        Err(err) => Err(anyhow::anyhow!(
            "configuration: OPERATOR_API_KEY / OPERATOR_ACCOUNT_EMAIL: {err}"
        )),
    }
}

/// Creates a new operator key for the account `email` (made an operator) and
/// returns it (it is shown once) with the number of owner keys revoked to promote
/// an existing owner account: one that holds live keys is refused unless
/// `revoke_owner_keys`.
pub async fn create_operator_key(
    infra: &overlaps_shared::service::Infrastructure,
    email: &str,
    revoke_owner_keys: bool,
) -> anyhow::Result<(String, usize)> {
    let email = email.trim().to_ascii_lowercase();
    if !email.contains('@') || email.len() < 3 || email.len() > 320 {
        anyhow::bail!("--email {email:?} is not an e-mail address");
    }
    let key = api::auth::generate_key();
    let stored = key.clone();
    let revoked = infra
        .db
        .run(move |conn| {
            Ok(api::auth::ensure_operator_key(
                conn,
                &email,
                "create-operator-key",
                &stored,
                if revoke_owner_keys {
                    api::auth::Promotion::RevokingOwnerKeys
                } else {
                    api::auth::Promotion::WithoutOwnerKeys
                },
            ))
        })
        .await??;
    Ok((key, revoked.1))
}
