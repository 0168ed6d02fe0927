//! The canary endpoints: a plain HTTP listener whose every path behaves as the
//! mode sealed in it says (see `overlaps_shared::canary`), and a TLS listener with
//! a self-signed certificate that no validator may trust. The third failure the
//! hub sends, a refused connection, needs only an address where nothing listens.
//!
//! The server holds no schedule and no round keys: the path alone tells it how to
//! behave, read with the long-term `CANARY_SECRET` it shares with the hub.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use overlaps_shared::canary::{CanaryMode, CanarySecret, KEYWORDS};
use overlaps_shared::config::{ConfigError, Env, LogConfig, invalid};

/// Everything `canary` reads from the environment.
#[derive(Debug, Clone)]
pub struct CanaryConfig {
    /// `LOG_FORMAT`, `RUST_LOG`.
    pub log: LogConfig,
    /// `CANARY_SECRET`: shared with the scheduler; reads each path's mode.
    pub secret: CanarySecret,
    /// `CANARY_HTTP_LISTEN`: the plain HTTP listener.
    pub http_listen: SocketAddr,
    /// `CANARY_TLS_LISTEN`: the listener with the untrusted certificate.
    pub tls_listen: SocketAddr,
    /// `CANARY_HOLD_SECONDS`: how long a `timeout` canary holds the request.
    pub hold: Duration,
}

impl CanaryConfig {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secret = env
            .raw("CANARY_SECRET")
            .ok_or_else(|| ConfigError::Missing {
                var: "CANARY_SECRET".into(),
            })?
            // Parsed by hand: an error must not print the secret.
            .parse::<CanarySecret>()
            .map_err(|reason| invalid("CANARY_SECRET", "(hidden)", reason))?;
        // The dev secret is public: a prod canary would let anyone read its modes.
        let app_env = env.optional("APP_ENV", overlaps_shared::config::AppEnv::Dev)?;
        overlaps_shared::dev_values::refuse_in_prod(
            env,
            app_env,
            &[overlaps_shared::dev_values::DevValue::CanarySecret],
        )?;
        Ok(CanaryConfig {
            log: LogConfig::from_env(env)?,
            secret,
            http_listen: env.optional("CANARY_HTTP_LISTEN", ([127, 0, 0, 1], 8091).into())?,
            tls_listen: env.optional("CANARY_TLS_LISTEN", ([127, 0, 0, 1], 8092).into())?,
            hold: Duration::from_secs(env.ranged("CANARY_HOLD_SECONDS", 120, 1..=3600)?),
        })
    }
}

/// Why the endpoints could not start.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The self-signed certificate could not be made.
    #[error("certificate: {0}")]
    Certificate(String),
}

struct Behaviour {
    secret: CanarySecret,
    hold: Duration,
}

/// The page of a site that is up: every keyword a canary may ask for.
fn ok_page() -> String {
    format!(
        "<!doctype html><html><head><title>{}</title></head><body><h1>{}</h1><p>{}</p>\
         <a href=\"/login\">{}</a> <a href=\"/contact\">{}</a></body></html>",
        KEYWORDS[4], KEYWORDS[0], KEYWORDS[2], KEYWORDS[1], KEYWORDS[3]
    )
}

async fn respond(request: HttpRequest, behaviour: web::Data<Arc<Behaviour>>) -> HttpResponse {
    let html = "text/html; charset=utf-8";
    match behaviour.secret.mode_of_path(request.path()) {
        Some(CanaryMode::Ok) => HttpResponse::Ok().content_type(html).body(ok_page()),
        Some(CanaryMode::ServerError) => HttpResponse::ServiceUnavailable()
            .content_type(html)
            .body("<!doctype html><html><body><h1>503 Service Unavailable</h1></body></html>"),
        Some(CanaryMode::KeywordMissing) => HttpResponse::Ok()
            .content_type(html)
            .body("<!doctype html><html><body><p>Under maintenance.</p></body></html>"),
        Some(CanaryMode::Timeout) => {
            tokio::time::sleep(behaviour.hold).await;
            HttpResponse::Ok().content_type(html).body(ok_page())
        }
        // Those two are never sent here (the hub points them elsewhere), nor is any
        // path the secret did not seal: an ordinary 404.
        Some(CanaryMode::Refused | CanaryMode::BadTls) | None => HttpResponse::NotFound()
            .content_type(html)
            .body("<!doctype html><html><body><h1>Not Found</h1></body></html>"),
    }
}

fn tls_config() -> Result<rustls::ServerConfig, CanaryError> {
    let bad = |e: &dyn std::fmt::Display| CanaryError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(|e| bad(&e))?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(|e| bad(&e))?
        .self_signed(&key)
        .map_err(|e| bad(&e))?;
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], private)
        .map_err(|e| bad(&e))
}

/// Binds both listeners; the returned server runs them until stopped.
pub fn serve(config: &CanaryConfig) -> Result<Server, CanaryError> {
    let behaviour = Arc::new(Behaviour {
        secret: config.secret.clone(),
        hold: config.hold,
    });
    let tls = tls_config()?;
    let bind = |addr: SocketAddr| move |source| CanaryError::Bind { addr, source };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(Arc::clone(&behaviour)))
            .default_service(web::to(respond))
    })
    .workers(1)
    .shutdown_timeout(1)
    .bind(config.http_listen)
    .map_err(bind(config.http_listen))?
    .bind_rustls_0_23(config.tls_listen, tls)
    .map_err(bind(config.tls_listen))?;
    Ok(server.run())
}
