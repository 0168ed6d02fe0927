//! The status page in a real browser: Debian's Chromium, headless, loads the page
//! from the real server binary, runs its built-in `verify.js` (WebCrypto Ed25519,
//! nothing fetched from elsewhere) over real signed results closed by accounting,
//! and the DOM must show the sites, states, bars, the incident and the verdict
//! "Verified". Then the hub is made to lie twice, and each time the page says
//! FAILED naming the round: a stored result's status flipped (its signature no
//! longer covers it) and a stored signature swapped for another validator's.
//!
//! Needs `/usr/bin/chromium` (`./run.sh test` installs it); fails, never skips,
//! when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;
mod status_support;

use std::path::Path;
use std::process::Command;

use api_support::Api;
use status_support::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The DOM after the page's scripts ran (fetches included), as Chromium dumps it.
fn rendered_dom(url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `./run.sh test` installs it (apt-get install chromium)"
    );
    let profile = tempdir();
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.display()),
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("overlaps-chromium-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `data-verdict` of the verification section and its verdict text.
fn verdict(dom: &str) -> (String, String) {
    let section = dom
        .split("id=\"verification\"")
        .nth(1)
        .expect("the verification section");
    let state = section
        .split("data-verdict=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let text = section
        .split("id=\"verification-verdict\"")
        .nth(1)
        .and_then(|s| s.split_once('>'))
        .and_then(|(_, s)| s.split("</p>").next())
        .unwrap()
        .to_owned();
    (state, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_verifies_the_page_and_catches_a_tampered_record() {
    let api = Api::start(&[]);
    let world = World::new(&api).await;
    let url = api.url(&format!("/status/{SLUG}"));

    let dom = rendered_dom(&url);
    // What is shown: both sites with their state, 90 bars each, the incident.
    assert!(dom.contains("Acme &amp; Co &lt;services&gt;"), "{dom}");
    assert!(dom.contains("All systems operational"));
    for site in [world.shop, world.hostile] {
        assert!(
            dom.contains(&format!(
                "id=\"site-{site}\" data-site-id=\"{site}\" data-state=\"up\""
            )),
            "{dom}"
        );
    }
    assert!(!dom.contains("Back office"));
    assert!(
        !dom.contains("<script>alert"),
        "the hostile name stayed text"
    );
    assert_eq!(dom.matches("class=\"bar bar-").count(), 180);
    assert_eq!(dom.matches("class=\"bar bar-down\"").count(), 1);
    assert!(dom.contains(&format!("id=\"incident-{}\"", world.incident)));
    // The browser checked 6 signatures over the two rounds the page shows, and
    // the incident is marked verified.
    let (state, text) = verdict(&dom);
    assert_eq!(state, "verified", "{text}");
    assert!(
        text.starts_with("Verified: 6 of 6 signatures valid over 2 rounds"),
        "{text}"
    );
    assert!(dom.contains("data-verified=\"yes\""), "{dom}");

    // The hub lies about a result: validator 2 "answered down" in round 4. The
    // bytes it serves now say down, but the validator's signature covers up.
    let (liar, _) = world.validators[1];
    api.sql(&format!(
        "UPDATE ticks SET status = 'down', failure = 'http_status', http_status = 503 \
         WHERE round_number = {RESOLVED_ROUND} AND website_id = {} AND validator_id = {liar}",
        world.shop
    ));
    let dom = rendered_dom(&url);
    let (state, text) = verdict(&dom);
    assert_eq!(state, "failed", "{text}");
    assert!(
        text.contains(&format!(
            "round {RESOLVED_ROUND} of Shop: the signature of validator {liar}"
        )) && text.contains("does not verify"),
        "{text}"
    );
    assert!(text.starts_with("FAILED"), "{text}");
    api.sql(&format!(
        "UPDATE ticks SET status = 'up', failure = NULL, http_status = 200 \
         WHERE round_number = {RESOLVED_ROUND} AND website_id = {} AND validator_id = {liar}",
        world.shop
    ));
    assert_eq!(verdict(&rendered_dom(&url)).0, "verified", "restored");

    // The hub swaps in validator 1's signature on validator 3's result of round 3.
    let (honest, _) = world.validators[0];
    let (victim, _) = world.validators[2];
    api.sql(&format!(
        "UPDATE ticks t SET signature = o.signature FROM ticks o \
         WHERE t.round_number = {OPENED_ROUND} AND o.round_number = {OPENED_ROUND} \
           AND t.website_id = {shop} AND o.website_id = {shop} \
           AND t.validator_id = {victim} AND o.validator_id = {honest}",
        shop = world.shop
    ));
    let dom = rendered_dom(&url);
    let (state, text) = verdict(&dom);
    assert_eq!(state, "failed", "{text}");
    assert!(
        text.contains(&format!(
            "round {OPENED_ROUND} of Shop: the signature of validator {victim}"
        )),
        "{text}"
    );
    assert!(dom.contains("data-verified=\"no\"") || text.contains("does not verify"));
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_reports_pruned_rounds_and_catches_a_majority_that_does_not_match() {
    let api = Api::start(&[]);
    let world = World::new(&api).await;
    // An incident older than the stored results: its rounds are reported as not
    // checked, and the rest still verifies.
    api.sql(&format!(
        "INSERT INTO rounds (number, seed, opened_at, deadline_at, closed_at) VALUES \
           (100, decode(repeat('aa', 32), 'hex'), now() - interval '40 days', now() - interval '40 days' + interval '30 seconds', now() - interval '40 days' + interval '31 seconds'), \
           (101, decode(repeat('bb', 32), 'hex'), now() - interval '39 days', now() - interval '39 days' + interval '30 seconds', now() - interval '39 days' + interval '31 seconds'); \
         INSERT INTO incidents (website_id, opened_at, opened_round, resolved_at, resolved_round, cause, evidence) \
         VALUES ({}, now() - interval '40 days', 100, now() - interval '39 days', 101, 'timeout', '[]')",
        world.shop
    ));
    let (state, text) = verdict(&rendered_dom(&api.url(&format!("/status/{SLUG}"))));
    assert_eq!(state, "verified", "{text}");
    assert!(
        text.contains(
            "2 older rounds were not checked: their results are past the hub's retention"
        ),
        "{text}"
    );
    // The hub claims the site was resolved in round 2, where every validator
    // signed down: all signatures are valid, the majority contradicts the page.
    api.sql(&format!(
        "UPDATE incidents SET resolved_round = 2 WHERE id = {}",
        world.incident
    ));
    let dom = rendered_dom(&api.url(&format!("/status/{SLUG}")));
    let (state, text) = verdict(&dom);
    assert_eq!(state, "failed", "{text}");
    assert!(
        text.contains(
            "round 2 of Shop: the majority of the valid signed results is down, the page shows up"
        ),
        "{text}"
    );
}
