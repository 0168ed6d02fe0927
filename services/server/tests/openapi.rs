//! The OpenAPI document and Swagger UI, from the running server: the UI and its
//! assets come from the binary (no CDN), and every route the server mounts is in
//! the document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;

use std::collections::BTreeSet;
use std::path::Path;

use api_support::Api;
use serde_json::Value;

/// Routes that serve the documentation itself, not the API.
const DOCUMENTATION_ROUTES: [&str; 3] = ["/docs", "/docs/{_:.*}", "/api-docs/openapi.json"];

/// Every `#[get("/…")]`-style route attribute in the server's sources, as
/// (method, path). Routes are mounted only this way (checked below), so this is
/// the list of what the server serves.
fn mounted_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for line in source.lines().map(str::trim) {
                for method in ["get", "post", "put", "patch", "delete"] {
                    if let Some(rest) = line.strip_prefix(&format!("#[{method}(\"")) {
                        let route = rest.split('"').next().unwrap();
                        routes.insert((method.to_owned(), route.to_owned()));
                    }
                }
                // Any other way of mounting a route must be a documentation route.
                if (line.contains(".route(") || line.contains("web::resource("))
                    && !line.starts_with("//")
                {
                    assert!(
                        path.ends_with("api/openapi.rs"),
                        "{}: routes must be mounted with #[get(…)]-style attributes: {line}",
                        path.display()
                    );
                }
            }
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mounted_route_is_documented_with_responses_and_security() {
    let api = Api::start(&[]);
    let doc = api.get("/api-docs/openapi.json", None).await;
    let doc = doc.expect(200).clone();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());

    let mounted = mounted_routes();
    assert!(mounted.len() >= 35, "{mounted:?}");
    let paths = doc["paths"].as_object().unwrap();
    let mut missing = Vec::new();
    for (method, route) in &mounted {
        if DOCUMENTATION_ROUTES.contains(&route.as_str()) {
            continue;
        }
        match paths.get(route).and_then(|p| p.get(method)) {
            Some(op) => {
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {route}"
                );
                assert!(
                    op["security"].is_array(),
                    "{method} {route} says nothing about auth"
                );
                assert!(op["tags"].is_array(), "{method} {route} has no tag");
            }
            None => missing.push(format!("{method} {route}")),
        }
    }
    assert!(
        missing.is_empty(),
        "mounted but not documented: {missing:?}"
    );

    // And nothing documented that is not served.
    for (route, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            assert!(
                mounted.contains(&(method.clone(), route.clone())),
                "documented but not mounted: {method} {route}"
            );
        }
    }

    // Every error response documents the error body, except the pages a person
    // opens from an e-mail, which answer HTML, and what a browser or a README
    // shows: status pages (HTML), their assets (text) and badges (SVG even when
    // not found).
    let people = [
        ("/api/v1/channel-confirmations/", "text/html"),
        ("/status/", "text/html"),
        ("/status-assets/", "text/plain"),
        ("/badges/", "image/svg+xml"),
    ];
    for (route, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                if let Some((_, content)) =
                    people.iter().find(|(prefix, _)| route.starts_with(prefix))
                {
                    if route.starts_with("/api/v1/channel-confirmations/")
                        || status.starts_with('4')
                    {
                        assert!(
                            response["content"][content].is_object(),
                            "{method} {route} {status}"
                        );
                    }
                } else if status.starts_with('4') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/ErrorBody",
                        "{method} {route} {status}"
                    );
                }
            }
        }
    }

    // Owner routes require the key; public ones say so.
    assert_eq!(
        paths["/api/v1/websites"]["post"]["security"][0]["api_key"],
        Value::Array(vec![])
    );
    assert_eq!(
        paths["/api/v1/validators"]["get"]["security"][0],
        serde_json::json!({})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_and_its_assets_come_from_the_binary() {
    let api = Api::start(&[]);
    let redirect = api.http.get(api.url("/docs")).send().await.unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers()["location"], "/docs/");

    let index = api.http.get(api.url("/docs/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(
        index.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = index.text().await.unwrap();
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "{html}");

    // Every script and stylesheet the page loads is served locally.
    let mut assets: Vec<String> = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in html.split(attr).skip(1) {
            let target = piece.split('"').next().unwrap();
            if target.ends_with(".js") || target.ends_with(".css") || target.ends_with(".png") {
                assert!(!target.starts_with("http"), "external asset {target}");
                assets.push(target.trim_start_matches("./").to_owned());
            }
        }
    }
    for needed in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        assert!(
            assets.iter().any(|a| a == needed),
            "{needed} not loaded by {html}"
        );
    }
    for asset in &assets {
        let res = api
            .http
            .get(api.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert!(!res.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let init = api
        .http
        .get(api.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api-docs/openapi.json"), "{init}");
}
