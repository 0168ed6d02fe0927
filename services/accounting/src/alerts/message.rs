//! What an alert says, once for every channel: the outbox payload ([`Alert`]) and
//! the readable message built from it ([`Message`]): times in UTC to the second
//! (and in the owner's zone), how long a site was down, the validators' evidence
//! and a link to the incident. Each provider only lays this out in its own idiom.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use overlaps_shared::models::CHANNEL_CONFIRMATION;
use serde::{Deserialize, Serialize};

/// What an alert says (the outbox row's payload, completed at delivery from the
/// incident); webhooks receive it as their JSON body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `incident_opened`, `incident_resolved`, `incident_reminder`,
    /// `tls_expiring`, `test`, `operator` or `channel_confirmation`.
    #[serde(default)]
    pub kind: String,
    /// The site.
    #[serde(default)]
    pub website_id: Option<i64>,
    /// Its URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Its display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `down`, `degraded` or `up`.
    #[serde(default)]
    pub state: Option<String>,
    /// Why (a failure code such as `keyword_missing`, or free text for operator
    /// alerts); `recovered` on recovery.
    #[serde(default)]
    pub cause: Option<String>,
    /// Since when (RFC 3339).
    #[serde(default)]
    pub at: Option<String>,
    /// The incident.
    #[serde(default)]
    pub incident_id: Option<i64>,
    /// When the incident opened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
    /// When it was resolved (RFC 3339), on recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// How long the site was down, on recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_seconds: Option<i64>,
    /// The validators' evidence in words, e.g. `3 of 3 validators: keyword
    /// 'healthy' missing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Where to read about the incident (or the site's status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Reminders: which one this is (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder: Option<i32>,
    /// Reminders: how many the channel sends at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_max: Option<i32>,
    /// `channel_confirmation`: the token of the confirmation link (never sent
    /// to webhooks: only e-mail channels are confirmed).
    #[serde(default, skip_serializing)]
    pub confirmation_token: Option<String>,
    /// The failure with its detail (`keyword 'healthy' missing`, `HTTP 503`)
    /// from the evidence, for titles; webhooks have it in `evidence`.
    #[serde(skip)]
    pub failure: Option<String>,
    /// The slug of a public status page showing the site (the link points there).
    #[serde(skip)]
    pub status_page: Option<String>,
}

/// How bad the news is: picks colours, priorities and PagerDuty severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A site is down (or still down).
    Down,
    /// A site is up again.
    Recovered,
    /// Something will break soon (a certificate expiring).
    Warning,
    /// A test or a confirmation request.
    Info,
    /// Something the hub's operator must look at.
    Operator,
}

/// One labelled line of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// E.g. `Down since`.
    pub label: String,
    /// E.g. `2026-11-27 09:59:26 UTC`.
    pub value: String,
}

/// The readable alert every channel renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// One line: subject, title, headline, fallback text.
    pub title: String,
    /// One or two sentences saying what happened, as a person would.
    pub text: String,
    /// Labelled details.
    pub facts: Vec<Fact>,
    /// Where to read more (the incident, or the site's status).
    pub link: Option<String>,
    /// How bad it is.
    pub severity: Severity,
    /// Stable per incident (or per site and alert), for paging services that
    /// merge repeated events: `overlaps-incident-<id>`.
    pub dedup_key: String,
    /// When it happened (RFC 3339), if known.
    pub timestamp: Option<String>,
}

/// The one place alert links are made: the incident on the public status page
/// that shows the site (`{base}/status/{slug}#incident-{id}`), else the site's
/// incident list (a JSON route), or its status when no incident is concerned.
pub fn alert_link(
    api_base: &str,
    website_id: Option<i64>,
    incident_id: Option<i64>,
    status_page: Option<&str>,
) -> Option<String> {
    let site = website_id?;
    Some(match (incident_id, status_page) {
        (Some(incident), Some(slug)) => format!("{api_base}/status/{slug}#incident-{incident}"),
        (Some(_), None) => format!("{api_base}/api/v1/websites/{site}/incidents"),
        (None, Some(slug)) => format!("{api_base}/status/{slug}#site-{site}"),
        (None, None) => format!("{api_base}/api/v1/websites/{site}/status"),
    })
}

/// `2026-11-27 09:59:26 UTC`, followed by the time in `zone` when it is not UTC:
/// `2026-11-27 09:59:26 UTC (10:59:26 CET, Europe/Berlin)` (the date too when it
/// differs).
pub fn readable_time(at: DateTime<Utc>, zone: Option<Tz>) -> String {
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    match zone.filter(|z| !matches!(z, Tz::UTC | Tz::Etc__UTC)) {
        Some(zone) => {
            let local = at.with_timezone(&zone);
            let shown = if local.date_naive() == at.date_naive() {
                local.format("%H:%M:%S %Z")
            } else {
                local.format("%Y-%m-%d %H:%M:%S %Z")
            };
            format!("{utc} ({shown}, {})", zone.name())
        }
        None => utc,
    }
}

/// `45 s`, `12 min 5 s`, `2 h 3 min`, `3 d 4 h`: two units at most.
pub fn readable_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let pair = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    if d > 0 {
        pair(d, "d", h, "h")
    } else if h > 0 {
        pair(h, "h", m, "min")
    } else if m > 0 {
        pair(m, "min", sec, "s")
    } else {
        format!("{sec} s")
    }
}

/// A failure code in words: `keyword_missing` with keyword `healthy` is
/// `keyword 'healthy' missing`, `http_status` with 503 is `HTTP 503`.
pub fn describe_failure(code: &str, keyword: Option<&str>, http_status: Option<i64>) -> String {
    match code {
        "keyword_missing" => match keyword {
            Some(k) => format!("keyword '{k}' missing"),
            None => "keyword missing".to_owned(),
        },
        "http_status" => match http_status {
            Some(status) => format!("HTTP {status}"),
            None => "HTTP error status".to_owned(),
        },
        "timeout" => "timed out".to_owned(),
        "dns" => "host name did not resolve".to_owned(),
        "connect" => "connection refused or unreachable".to_owned(),
        "tls" => "TLS handshake or certificate failed".to_owned(),
        "redirect_loop" => "too many redirects".to_owned(),
        "keyword_present" => match keyword {
            Some(k) => format!("keyword '{k}' present"),
            None => "forbidden keyword present".to_owned(),
        },
        "json_mismatch" => "JSON value not as expected".to_owned(),
        "dns_mismatch" => match keyword {
            Some(k) => format!("DNS answer '{k}' missing"),
            None => "DNS answer not as expected".to_owned(),
        },
        "too_slow" | "degraded" => "response over the time limit".to_owned(),
        other => other.replace('_', " "),
    }
}

/// `1840` as `1,840`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A degraded incident's evidence: `response 1,840 ms over the 1,000 ms limit`,
/// from the median latency of the degraded results and the limit they were sent.
fn describe_slowness(agreeing: &[&&serde_json::Value]) -> String {
    let mut latencies: Vec<i64> = agreeing
        .iter()
        .filter_map(|e| e["latency_ms"].as_i64())
        .collect();
    latencies.sort_unstable();
    let median = latencies.get(latencies.len() / 2).copied();
    let limit = agreeing.iter().find_map(|e| e["max_response_ms"].as_i64());
    match (median, limit) {
        (Some(ms), Some(limit)) => format!(
            "response {} ms over the {} ms limit",
            thousands(ms),
            thousands(limit)
        ),
        (Some(ms), None) => format!("response {} ms over the limit", thousands(ms)),
        _ => "response over the time limit".to_owned(),
    }
}

/// An incident's evidence in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// `3 of 3 validators: keyword 'healthy' missing`.
    pub summary: String,
    /// The failure alone, with its detail: `keyword 'healthy' missing`.
    pub failure: String,
}

/// The incident's stored evidence in words: `3 of 3 validators: keyword
/// 'healthy' missing` (and how many did not answer). `evidence` is
/// `incidents.evidence`: one entry per assignment, then `resolved_by` entries.
pub fn describe_evidence(
    evidence: &serde_json::Value,
    cause: &str,
    keyword: Option<&str>,
) -> Option<Evidence> {
    let entries: Vec<&serde_json::Value> = evidence
        .as_array()?
        .iter()
        .filter(|e| e.get("assignment_id").is_some())
        .collect();
    let answered = entries.iter().filter(|e| e["status"].is_string()).count();
    let missed = entries.len() - answered;
    let agreeing: Vec<&&serde_json::Value> = entries
        .iter()
        .filter(|e| {
            if cause == "degraded" {
                e["status"] == "degraded"
            } else {
                e["status"] == "down" && (cause == "down" || e["failure"] == cause)
            }
        })
        .collect();
    if entries.is_empty() {
        return None;
    }
    // The status most of the agreeing validators saw, for `HTTP 503`.
    let mut statuses: Vec<i64> = agreeing
        .iter()
        .filter_map(|e| e["http_status"].as_i64())
        .collect();
    statuses.sort_unstable();
    let http_status = statuses
        .chunk_by(|a, b| a == b)
        .max_by_key(|run| run.len())
        .and_then(|run| run.first().copied());
    let plural = if answered == 1 {
        "validator"
    } else {
        "validators"
    };
    let failure = if cause == "degraded" {
        describe_slowness(&agreeing)
    } else {
        describe_failure(cause, keyword, http_status)
    };
    let mut summary = format!("{} of {answered} {plural}: {failure}", agreeing.len());
    if missed > 0 {
        summary.push_str(&format!(", {missed} did not answer"));
    }
    Some(Evidence { summary, failure })
}

/// At most `max` characters of `text`, ending with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Alert {
    /// The site as people call it: its name, else its URL.
    pub fn site(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.url.as_deref())
            .unwrap_or("a site")
    }

    /// The cause in words, with its detail when the evidence gave it
    /// (`recovered` is not a cause: none then).
    fn cause_in_words(&self) -> Option<String> {
        if let Some(failure) = &self.failure {
            return Some(failure.clone());
        }
        let cause = self.cause.as_deref().filter(|c| *c != "recovered")?;
        Some(describe_failure(cause, None, None))
    }

    /// Whether the incident is about slowness (`degraded`), not an outage.
    fn is_degraded(&self) -> bool {
        self.state.as_deref() == Some("degraded") || self.cause.as_deref() == Some("degraded")
    }

    /// A one-line summary, used as subject and fallback text.
    pub fn headline(&self) -> String {
        let site = self.site();
        match self.kind.as_str() {
            "incident_opened" if self.is_degraded() => format!(
                "DEGRADED: {site} ({})",
                self.cause_in_words().unwrap_or_else(|| "too slow".into())
            ),
            "incident_reminder" if self.is_degraded() => format!(
                "STILL DEGRADED: {site} ({})",
                self.cause_in_words().unwrap_or_else(|| "too slow".into())
            ),
            "incident_opened" => format!(
                "DOWN: {site} ({})",
                self.cause_in_words()
                    .unwrap_or_else(|| "unreachable".into())
            ),
            "incident_reminder" => format!(
                "STILL DOWN: {site} ({})",
                self.cause_in_words()
                    .unwrap_or_else(|| "unreachable".into())
            ),
            "incident_resolved" => format!("RECOVERED: {site} is up again"),
            "tls_expiring" => format!("TLS certificate of {site} expires soon"),
            "test" => "Overlaps test alert: this channel works".to_owned(),
            CHANNEL_CONFIRMATION => "Confirm Overlaps alerts to this address".to_owned(),
            _ => format!(
                "Overlaps operator alert: {}",
                self.cause.as_deref().unwrap_or("see the hub's logs")
            ),
        }
    }

    /// The readable message, with times also in `zone` (the owner's).
    pub fn message(&self, api_base: &str, zone: Option<Tz>) -> Message {
        let site = self.site().to_owned();
        let when = |t: Option<&str>| parse_time(t).map(|t| readable_time(t, zone));
        let opened = when(self.opened_at.as_deref()).or_else(|| when(self.at.as_deref()));
        let mut facts = Vec::new();
        let mut fact = |label: &str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                facts.push(Fact {
                    label: label.to_owned(),
                    value,
                });
            }
        };
        fact("Site", self.url.clone());
        let (severity, text) = match self.kind.as_str() {
            "incident_opened" | "incident_reminder" if self.is_degraded() => {
                fact("Degraded since", opened.clone());
                if let (Some(n), Some(max)) = (self.reminder, self.reminder_max) {
                    fact("Reminder", Some(format!("{n} of {max}")));
                }
                fact("Evidence", self.evidence.clone());
                let still = if self.kind == "incident_reminder" {
                    "still "
                } else {
                    ""
                };
                let since = opened.map(|t| format!(" since {t}")).unwrap_or_default();
                (
                    Severity::Down,
                    format!("{site} is {still}degraded (answering, but too slowly){since}."),
                )
            }
            "incident_opened" | "incident_reminder" => {
                fact("Down since", opened.clone());
                if let (Some(n), Some(max)) = (self.reminder, self.reminder_max) {
                    fact("Reminder", Some(format!("{n} of {max}")));
                }
                fact("Evidence", self.evidence.clone());
                let still = if self.kind == "incident_reminder" {
                    "still "
                } else {
                    ""
                };
                let since = opened.map(|t| format!(" since {t}")).unwrap_or_default();
                (Severity::Down, format!("{site} is {still}down{since}."))
            }
            "incident_resolved" => {
                let back = when(self.resolved_at.as_deref()).or_else(|| when(self.at.as_deref()));
                let lasted = self.down_seconds.map(readable_duration);
                fact("Down since", opened);
                fact("Recovered at", back.clone());
                fact("Down for", lasted.clone());
                fact("Outage evidence", self.evidence.clone());
                let mut text = format!("{site} is up again");
                if let Some(back) = back {
                    text.push_str(&format!(" since {back}"));
                }
                if let Some(lasted) = lasted {
                    text.push_str(&format!(", down for {lasted}"));
                }
                text.push('.');
                (Severity::Recovered, text)
            }
            "tls_expiring" => {
                fact("Expires", when(self.at.as_deref()));
                fact("Details", self.cause.clone());
                (
                    Severity::Warning,
                    format!(
                        "The TLS certificate of {site} expires soon; renew it before visitors see errors."
                    ),
                )
            }
            "test" => {
                fact("Sent at", when(self.at.as_deref()));
                (
                    Severity::Info,
                    "A test alert requested through the API: alerts reach this channel.".to_owned(),
                )
            }
            CHANNEL_CONFIRMATION => (Severity::Info, self.headline()),
            _ => {
                fact("At", when(self.at.as_deref()));
                (
                    Severity::Operator,
                    truncate(self.cause.as_deref().unwrap_or("see the hub's logs"), 1000),
                )
            }
        };
        let dedup_key = match (self.kind.as_str(), self.incident_id, self.website_id) {
            ("incident_opened" | "incident_reminder" | "incident_resolved", Some(id), _) => {
                format!("overlaps-incident-{id}")
            }
            ("tls_expiring", _, Some(site)) => format!("overlaps-tls-{site}"),
            (kind, _, _) => format!("overlaps-{kind}-{}", self.at.as_deref().unwrap_or("")),
        };
        Message {
            title: self.headline(),
            text,
            facts,
            link: self.link.clone().or_else(|| {
                alert_link(
                    api_base,
                    self.website_id,
                    self.incident_id,
                    self.status_page.as_deref(),
                )
            }),
            severity,
            dedup_key,
            timestamp: self.resolved_at.clone().or_else(|| self.at.clone()),
        }
    }
}

impl Message {
    /// Title, text, facts and link as plain lines (e-mail text part, ntfy body).
    pub fn plain_text(&self) -> String {
        let mut lines = vec![self.text.clone(), String::new()];
        lines.extend(
            self.facts
                .iter()
                .map(|f| format!("{}: {}", f.label, f.value)),
        );
        if let Some(link) = &self.link {
            lines.push(format!("Details: {link}"));
        }
        lines.join("\n")
    }

    /// Facts followed by the link as a fact (for layouts without link buttons).
    pub fn facts_with_link(&self) -> Vec<Fact> {
        let mut facts = self.facts.clone();
        if let Some(link) = &self.link {
            facts.push(Fact {
                label: "Details".to_owned(),
                value: link.clone(),
            });
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_to_the_second_and_in_the_owners_zone() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T09:59:26.043568+00:00")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(readable_time(at, None), "2026-11-27 09:59:26 UTC");
        assert_eq!(
            readable_time(at, Some(chrono_tz::Europe::Berlin)),
            "2026-11-27 09:59:26 UTC (10:59:26 CET, Europe/Berlin)"
        );
        // The date is shown too when the owner's day is another one.
        let late = at + chrono::Duration::hours(1);
        assert_eq!(
            readable_time(late, Some(chrono_tz::Pacific::Kiritimati)),
            "2026-11-27 10:59:26 UTC (2026-11-28 00:59:26 +14, Pacific/Kiritimati)"
        );
        assert_eq!(
            readable_time(at, Some(chrono_tz::UTC)),
            "2026-11-27 09:59:26 UTC"
        );
    }

    #[test]
    fn links_point_at_the_status_page_when_the_site_is_on_one() {
        let base = "https://hub.example";
        assert_eq!(
            alert_link(base, Some(7), Some(4), Some("acme")).as_deref(),
            Some("https://hub.example/status/acme#incident-4")
        );
        assert_eq!(
            alert_link(base, Some(7), None, Some("acme")).as_deref(),
            Some("https://hub.example/status/acme#site-7")
        );
        assert_eq!(
            alert_link(base, Some(7), Some(4), None).as_deref(),
            Some("https://hub.example/api/v1/websites/7/incidents")
        );
        assert_eq!(
            alert_link(base, Some(7), None, None).as_deref(),
            Some("https://hub.example/api/v1/websites/7/status")
        );
        assert_eq!(alert_link(base, None, Some(4), Some("acme")), None);
    }

    #[test]
    fn durations_read_in_two_units() {
        assert_eq!(readable_duration(45), "45 s");
        assert_eq!(readable_duration(725), "12 min 5 s");
        assert_eq!(readable_duration(720), "12 min");
        assert_eq!(readable_duration(7380), "2 h 3 min");
        assert_eq!(readable_duration(273_600), "3 d 4 h");
    }

    #[test]
    fn degraded_evidence_reads_the_latency_against_the_limit() {
        let evidence = serde_json::json!([
            {"assignment_id": 1, "status": "degraded", "failure": "too_slow", "latency_ms": 1840, "max_response_ms": 1000},
            {"assignment_id": 2, "status": "degraded", "failure": "too_slow", "latency_ms": 1790, "max_response_ms": 1000},
            {"assignment_id": 3, "status": "degraded", "failure": "too_slow", "latency_ms": 2210, "max_response_ms": 1000},
        ]);
        let described = describe_evidence(&evidence, "degraded", None).unwrap();
        assert_eq!(
            described.summary,
            "3 of 3 validators: response 1,840 ms over the 1,000 ms limit"
        );
        let alert = Alert {
            kind: "incident_opened".into(),
            name: Some("Shop".into()),
            state: Some("degraded".into()),
            cause: Some("degraded".into()),
            failure: Some(described.failure),
            ..Alert::default()
        };
        assert_eq!(
            alert.headline(),
            "DEGRADED: Shop (response 1,840 ms over the 1,000 ms limit)"
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn evidence_counts_the_validators_that_saw_the_cause() {
        let evidence = serde_json::json!([
            {"assignment_id": 1, "status": "down", "failure": "keyword_missing"},
            {"assignment_id": 2, "status": "down", "failure": "keyword_missing"},
            {"assignment_id": 3, "status": "down", "failure": "keyword_missing"},
            {"resolved_by": []}
        ]);
        let described = describe_evidence(&evidence, "keyword_missing", Some("healthy"));
        assert_eq!(
            described.as_ref().map(|e| e.summary.as_str()),
            Some("3 of 3 validators: keyword 'healthy' missing")
        );
        assert_eq!(
            described.map(|e| e.failure).as_deref(),
            Some("keyword 'healthy' missing")
        );
        let mixed = serde_json::json!([
            {"assignment_id": 1, "status": "down", "failure": "http_status", "http_status": 503},
            {"assignment_id": 2, "status": "down", "failure": "http_status", "http_status": 503},
            {"assignment_id": 3, "status": "up", "failure": null},
            {"assignment_id": 4, "status": null}
        ]);
        assert_eq!(
            describe_evidence(&mixed, "http_status", None).map(|e| e.summary),
            Some("2 of 3 validators: HTTP 503, 1 did not answer".to_owned())
        );
    }
}
