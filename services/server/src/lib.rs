//! The hub's HTTP server: health, the validator WebSocket and (later) the REST API.
//! A library so tests can run it in-process.

mod config;
mod dispatch;
mod health;
mod hub;
mod ingest;
mod ws;

use std::sync::Arc;

use actix_web::{App, HttpServer, dev::Server, web};

pub use crate::config::{IngestSettings, ServerConfig, SocketLimits};
pub use crate::hub::Hub;
pub use crate::ingest::{Ingest, Outcome};

/// Binds the HTTP server; the returned future runs it.
pub fn build_server(hub: Arc<Hub>) -> std::io::Result<Server> {
    let bind = hub.config.bind;
    let state = web::Data::new(Arc::clone(&hub));
    let infra = web::Data::new(hub.infra.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(infra.clone())
            .configure(health::routes)
            .configure(ws::routes)
    })
    // Signals are handled by main, which stops the server gracefully.
    .disable_signals()
    .shutdown_timeout(5)
    .bind(bind)?
    .run();
    Ok(server)
}

/// Starts the background work of a server instance: the `dispatch` consumer and
/// the deadline sweep.
pub fn spawn_background(hub: &Arc<Hub>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(dispatch::run_worker(Arc::clone(hub))),
        tokio::spawn(dispatch::sweep_expired(Arc::clone(hub))),
    ]
}
