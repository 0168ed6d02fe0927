//! The status page as HTML: readable without JavaScript, every text from the
//! database escaped, colours always doubled by words (state names, percentages,
//! the daily bars' `title`s, which are their links' accessible names).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use overlaps_shared::html::escape;
use overlaps_shared::models::{Incident, MaintenanceWindow as WindowRow};

use super::data::{DAYS, Day, Published, Site};
use super::{SCRIPT_PATH, STYLE_PATH};

/// The state in words.
pub fn state_label(state: &str) -> &'static str {
    match state {
        "up" => "Up",
        "down" => "Down",
        "degraded" => "Degraded",
        _ => "No verdict yet",
    }
}

/// The CSS class of a state (unknown strings fall back to `unknown`).
fn state_class(state: &str) -> &'static str {
    match state {
        "up" => "up",
        "down" => "down",
        "degraded" => "degraded",
        _ => "unknown",
    }
}

fn time(at: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        at.to_rfc3339(),
        at.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// `1 h 2 min 5 s`, `12 min 5 s`, `40 s`.
pub fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d} d"));
    }
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

fn percent(value: f64) -> String {
    // Never round a lapse up to a clean 100 %.
    if value < 100.0 && value > 99.99 {
        "99.99%".into()
    } else {
        format!("{:.2}%", (value * 100.0).floor() / 100.0)
    }
}

fn records_url(slug: &str, site: i64, selector: &str) -> String {
    escape(&format!(
        "/api/v1/status-pages/{slug}/records?site={site}{selector}"
    ))
}

/// The class and words of a day's bar.
fn bar(day: &Day) -> (&'static str, String) {
    let date = day.day.format("%Y-%m-%d");
    let maintenance = if day.maintenance_checks > 0 {
        format!(
            "; {} checks in maintenance (not counted)",
            day.maintenance_checks
        )
    } else {
        String::new()
    };
    match day.uptime() {
        None if day.maintenance_checks > 0 => {
            ("maintenance", format!("{date}: maintenance{maintenance}"))
        }
        None => ("none", format!("{date}: no data")),
        Some(uptime) => {
            let failing = day.down + day.degraded;
            let class = if failing == 0 {
                "ok"
            } else if uptime >= 99.0 {
                "partial"
            } else {
                "down"
            };
            let degraded = if day.degraded > 0 {
                format!(", {} degraded", day.degraded)
            } else {
                String::new()
            };
            (
                class,
                format!(
                    "{date}: {} up ({} of {} results down{degraded}){maintenance}",
                    percent(uptime),
                    day.down,
                    day.up + failing
                ),
            )
        }
    }
}

/// The evidence of an incident's opening in words: `2 of 3 validators saw it
/// down (timeout)`.
fn evidence(incident: &Incident) -> String {
    let entries: Vec<&serde_json::Value> = incident
        .evidence
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e.get("resolved_by").is_none())
                .collect()
        })
        .unwrap_or_default();
    let failing = entries
        .iter()
        .filter(|e| matches!(e["status"].as_str(), Some("down" | "degraded")))
        .count();
    format!(
        "{failing} of {} validators saw it fail ({})",
        entries.len(),
        escape(&incident.cause.replace('_', " "))
    )
}

fn incident_html(out: &mut String, slug: &str, incident: &Incident, now: DateTime<Utc>) {
    let resolved_round = incident
        .resolved_round
        .map(|r| r.to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "<li class=\"incident\" id=\"incident-{id}\" data-incident-id=\"{id}\" \
         data-opened-round=\"{opened}\" data-opened-status=\"{opened_status}\" \
         data-resolved-round=\"{resolved_round}\">\
         <h4>{title} <span class=\"incident-id\">(incident {id})</span></h4><ol class=\"timeline\">\
         <li>{at}: opened in round {opened}; {evidence}{maintenance}</li>",
        id = incident.id,
        opened = incident.opened_round,
        opened_status = incident.opening_status(),
        title = match (incident.resolved_at.is_some(), incident.opening_status()) {
            (true, "degraded") => "Resolved slowdown",
            (false, "degraded") => "Ongoing slowdown",
            (true, _) => "Resolved outage",
            (false, _) => "Ongoing outage",
        },
        at = time(incident.opened_at),
        evidence = evidence(incident),
        maintenance = if incident.opened_in_maintenance {
            " <strong class=\"maintenance-mark\">(opened inside a maintenance window: no alert)</strong>"
        } else {
            ""
        },
    );
    let end = match (incident.resolved_at, incident.resolved_round) {
        (Some(at), Some(round)) => {
            let _ = write!(out, "<li>{}: resolved in round {round}</li>", time(at));
            at
        }
        _ => {
            out.push_str("<li>Not resolved yet</li>");
            now
        }
    };
    let _ = write!(
        out,
        "</ol><p>Duration: {}{}. <a href=\"{}\">Signed record of its rounds (JSON)</a></p></li>",
        duration((end - incident.opened_at).num_seconds()),
        if incident.resolved_at.is_none() {
            " so far"
        } else {
            ""
        },
        records_url(
            slug,
            incident.website_id,
            &format!("&incident={}", incident.id)
        ),
    );
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn window_html(out: &mut String, window: &WindowRow, on_now: bool) {
    let when = match (window.starts_at, window.ends_at) {
        (Some(start), Some(end)) => format!("One-off: {} to {}", time(start), time(end)),
        _ => format!(
            "Weekly: {} {} ({}) for {} min",
            window
                .weekday
                .and_then(|d| WEEKDAYS.get(usize::try_from(d).ok()?))
                .unwrap_or(&"?"),
            window
                .start_time
                .map(|t| t.format("%H:%M").to_string())
                .unwrap_or_default(),
            escape(&window.time_zone),
            window.duration_minutes.unwrap_or(0)
        ),
    };
    let _ = write!(
        out,
        "<li data-window-id=\"{}\">{when}{}{}</li>",
        window.id,
        window
            .note
            .as_deref()
            .map(|n| format!(": {}", escape(n)))
            .unwrap_or_default(),
        if on_now {
            " <strong>(on now)</strong>"
        } else {
            ""
        }
    );
}

fn site_html(out: &mut String, slug: &str, site: &Site, now: DateTime<Utc>) {
    let class = state_class(&site.state);
    let name = escape(&site.name);
    let _ = write!(
        out,
        "<article class=\"site\" id=\"site-{id}\" data-site-id=\"{id}\" data-state=\"{class}\" \
         data-records=\"{records}\" aria-labelledby=\"site-{id}-name\">\
         <h3 id=\"site-{id}-name\">{name} <span class=\"state state-{class}\">{label}</span>{maintenance}</h3>",
        id = site.id,
        records = records_url(slug, site.id, ""),
        label = state_label(&site.state),
        maintenance = if site.maintenance_now.is_some() {
            " <span class=\"state state-maintenance\">In maintenance</span>"
        } else {
            ""
        },
    );
    if let Some(since) = site.since {
        let _ = write!(
            out,
            "<p class=\"since\">{} since {}{}.</p>",
            state_label(&site.state),
            time(since),
            site.last_round
                .map(|r| format!(", last settled in round {r}"))
                .unwrap_or_default()
        );
    }
    let uptime = site
        .uptime()
        .map(percent)
        .unwrap_or_else(|| "no data".into());
    let latency = match (site.latency_p50_24h, site.latency_p95_24h) {
        (Some(p50), Some(p95)) => format!(
            "response time over 24 h: median {p50} ms (mean of the hourly medians), \
             95th percentile {p95} ms (worst hour)"
        ),
        _ => "no response time in the last 24 h".into(),
    };
    let _ = write!(
        out,
        "<p class=\"figures\"><span class=\"uptime\">{uptime} uptime over {DAYS} days</span> · \
         <span class=\"latency\">{latency}</span></p>\
         <ol class=\"bars\" aria-label=\"Daily uptime of {name}, last {DAYS} days, oldest first\">"
    );
    for day in &site.days {
        let (class, words) = bar(day);
        let _ = write!(
            out,
            // The title is the link's accessible name (no text inside): one copy of
            // the words for 90 × 50 bars.
            "<li class=\"bar bar-{class}\" data-day=\"{}\"><a href=\"{}\" title=\"{words}\"></a></li>",
            day.day.format("%Y-%m-%d"),
            records_url(
                slug,
                site.id,
                &format!("&day={}", day.day.format("%Y-%m-%d"))
            ),
        );
    }
    out.push_str("</ol><p class=\"legend\">Each bar is one UTC day and links to its signed results: \
        green all up, orange some down (99% or more up), red under 99% up, blue maintenance, grey no data.</p>");
    out.push_str("<section class=\"incidents\"><h4 class=\"sub\">Incidents (last 90 days)</h4>");
    if site.incidents.is_empty() {
        out.push_str("<p>No incidents in the last 90 days.</p>");
    } else {
        out.push_str("<ol class=\"incident-list\">");
        for incident in &site.incidents {
            incident_html(out, slug, incident, now);
        }
        out.push_str("</ol>");
    }
    out.push_str("</section>");
    if !site.windows.is_empty() {
        out.push_str("<section class=\"windows\"><h4 class=\"sub\">Maintenance windows</h4><ul>");
        for window in &site.windows {
            window_html(out, window, site.maintenance_now == Some(window.id));
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</article>");
}

fn overall(sites: &[Site]) -> (&'static str, String) {
    let count = |state: &str| sites.iter().filter(|s| s.state == state).count();
    let (down, degraded, up) = (count("down"), count("degraded"), count("up"));
    if sites.is_empty() {
        ("unknown", "No sites on this page".into())
    } else if down > 0 {
        (
            "down",
            format!("Outage: {down} of {} sites down", sites.len()),
        )
    } else if degraded > 0 {
        (
            "degraded",
            format!("Degraded: {degraded} of {} sites degraded", sites.len()),
        )
    } else if up == sites.len() && up > 0 {
        ("up", "All systems operational".into())
    } else {
        ("unknown", "Some sites have no verdict yet".into())
    }
}

/// The whole page.
pub fn page(hub_id: &str, page: &Published, sites: &[Site], now: DateTime<Utc>) -> String {
    let title = escape(&page.title);
    let slug = escape(&page.slug);
    let (overall_class, overall_words) = overall(sites);
    let mut out = String::with_capacity(64 * 1024 + sites.len() * 24 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}: status</title><link rel=\"stylesheet\" href=\"{STYLE_PATH}\">\
         <script src=\"{SCRIPT_PATH}\" defer></script></head><body>\
         <header><h1>{title}</h1>{description}\
         <p class=\"overall overall-{overall_class}\" id=\"overall\" data-state=\"{overall_class}\">{overall_words}</p></header>\
         <main id=\"status-page\" data-slug=\"{slug}\" data-hub-id=\"{hub}\">\
         <section id=\"verification\" data-verdict=\"pending\" aria-labelledby=\"verification-heading\">\
         <h2 id=\"verification-heading\">Signed evidence</h2>\
         <p id=\"verification-verdict\" role=\"status\" aria-live=\"polite\">Every bar and incident links \
         to the validators' signed results (JSON). With JavaScript on, this page checks their Ed25519 \
         signatures and each round's majority here in your browser.</p>\
         <ul id=\"verification-details\"></ul></section>\
         <section aria-labelledby=\"sites-heading\"><h2 id=\"sites-heading\">Sites</h2>",
        description = page
            .description
            .as_deref()
            .map(|d| format!("<p class=\"description\">{}</p>", escape(d)))
            .unwrap_or_default(),
        hub = escape(hub_id),
    );
    for site in sites {
        site_html(&mut out, &page.slug, site, now);
    }
    let _ = write!(
        out,
        "</section></main><footer><p>Checked by independent validators of the Overlaps hub \
         <code>{hub}</code>; rendered {now}. Uptime leaves maintenance windows out and counts \
         results of validators (up / (up + down)).</p></footer></body></html>",
        hub = escape(hub_id),
        now = time(now),
    );
    out
}

/// The page answered for an unknown slug.
pub fn not_found() -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>No such status page</title><link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head>\
         <body><main><h1>No such status page</h1><p>Nothing is published at this address.</p></main></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(40), "40 s");
        assert_eq!(duration(725), "12 min 5 s");
        assert_eq!(duration(3600), "1 h");
        assert_eq!(duration(90_061), "1 d 1 h 1 min 1 s");
    }

    #[test]
    fn a_lapse_never_rounds_up_to_a_clean_hundred() {
        assert_eq!(percent(100.0), "100.00%");
        assert_eq!(percent(99.999), "99.99%");
        assert_eq!(percent(99.456), "99.45%");
    }

    #[test]
    fn bars_say_in_words_what_their_colour_says() {
        let day = |up, down, maintenance_checks| Day {
            day: chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap_or_default(),
            checks: up + down + maintenance_checks,
            up,
            down,
            degraded: 0,
            maintenance_checks,
            unknown_rounds: 0,
        };
        assert_eq!(bar(&day(0, 0, 0)), ("none", "2026-11-27: no data".into()));
        assert_eq!(bar(&day(0, 0, 4)).0, "maintenance");
        assert_eq!(bar(&day(10, 0, 0)).0, "ok");
        assert_eq!(bar(&day(999, 1, 0)).0, "partial");
        let (class, words) = bar(&day(9, 1, 3));
        assert_eq!(class, "down");
        assert_eq!(
            words,
            "2026-11-27: 90.00% up (1 of 10 results down); 3 checks in maintenance (not counted)"
        );
        // Degraded results count against uptime, named apart.
        let slow = Day {
            degraded: 2,
            ..day(8, 0, 0)
        };
        assert_eq!(
            bar(&slow),
            (
                "down",
                "2026-11-27: 80.00% up (0 of 10 results down, 2 degraded)".into()
            )
        );
    }
}
