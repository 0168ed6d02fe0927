//! The OpenAPI 3.1 document of every route, and Swagger UI at `/docs` with its
//! assets built into the binary (no CDN).

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{
    accounts, admission, canaries, channels, confirmations, eons, maintenance, network, quotas,
    rounds, status, status_pages, validators, websites,
};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api-docs/openapi.json";

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Overlaps hub API",
        description = "Operator and owner API of the Overlaps website-uptime network.\n\n\
            Create an account with `POST /api/v1/accounts` (no key needed), then click \
            **Authorize** and paste the `api_key.key` it returned. Amounts of money are \
            decimal strings in the chain's smallest unit. Every error is JSON \
            `{code, message, details}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::metrics,
        crate::ws::validator_socket,
        accounts::create_account,
        accounts::me,
        accounts::update_account,
        accounts::create_key,
        accounts::list_keys,
        accounts::revoke_key,
        quotas::get_quota,
        quotas::set_quota,
        websites::create_website,
        websites::list_websites,
        websites::get_website,
        websites::update_website,
        websites::disable_website,
        websites::enable_website,
        websites::delete_website,
        status::status,
        status::latency,
        status::list_incidents,
        status::list_ticks,
        status_pages::create_page,
        status_pages::list_pages,
        status_pages::get_page,
        status_pages::update_page,
        status_pages::delete_page,
        crate::public::records::records,
        crate::public::status_page,
        crate::public::asset,
        crate::public::badges::badge,
        maintenance::create_window,
        maintenance::list_windows,
        maintenance::delete_window,
        channels::create_channel,
        channels::list_channels,
        channels::get_channel,
        channels::update_channel,
        channels::delete_channel,
        channels::test_channel,
        channels::resend_confirmation,
        confirmations::confirmation_page,
        confirmations::confirm,
        validators::list_validators,
        validators::get_validator,
        validators::proof,
        admission::get_admission,
        admission::list_allowlist,
        admission::allow_key,
        admission::disallow_key,
        rounds::list_rounds,
        rounds::get_round,
        rounds::list_assignments,
        canaries::round_canaries,
        canaries::list_chains,
        rounds::list_seed_chains,
        eons::list_eons,
        eons::get_eon,
        eons::get_audit,
        network::network,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Accounts and API keys"),
        (name = "websites", description = "Monitored websites (owners see only their own)"),
        (name = "status", description = "State, uptime, latency, incidents and ticks of a website"),
        (name = "status pages", description = "Public status pages of chosen websites at /status/{slug}, their signed records (verified in the browser) and badges"),
        (name = "maintenance", description = "Maintenance windows: checks go on, alerts and uptime pause; public with the site's status"),
        (name = "channels", description = "Where alerts go: Slack, e-mail, webhooks, Discord, Telegram, Microsoft Teams, PagerDuty, ntfy, Mattermost, Pushover"),
        (name = "validators", description = "Validators, their earnings and Merkle proofs (public)"),
        (name = "rounds", description = "Check rounds, re-derivable from public data (public)"),
        (name = "eons", description = "Reward roots, on-chain commitments and audits (public)"),
        (name = "network", description = "The hub id and reward terms, to re-derive rounds and rewards (public)"),
        (name = "health", description = "Liveness, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// Declares the `api_key` bearer scheme the routes refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ovl_<48 hex digits>")
                    .description(Some(
                        "An API key from POST /api/v1/accounts or POST /api/v1/keys, \
                         sent as `Authorization: Bearer <key>`",
                    ))
                    .build(),
            ),
        );
    }
}

/// Mounts Swagger UI at `/docs` and the document at [`DOCUMENT_PATH`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header(("Location", "/docs/"))
                .finish()
        }),
    )
    .service(SwaggerUi::new("/docs/{_:.*}").url(DOCUMENT_PATH, ApiDoc::openapi()));
}
