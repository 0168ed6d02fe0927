//! The hub's HTTP server, as a library so tests can run it in-process.

mod config;
mod health;

use actix_web::{App, HttpServer, dev::Server, web};
use overlaps_shared::service::Infrastructure;

pub use crate::config::ServerConfig;

/// Binds the HTTP server; the returned future runs it.
pub fn build_server(config: &ServerConfig, infra: Infrastructure) -> std::io::Result<Server> {
    let infra = web::Data::new(infra);
    let server =
        HttpServer::new(move || App::new().app_data(infra.clone()).configure(health::routes))
            // Signals are handled by main, which stops the server gracefully.
            .disable_signals()
            .shutdown_timeout(5)
            .bind(config.bind)?
            .run();
    Ok(server)
}
