//! The cap on checks aimed at one target host per minute, across every account.
//!
//! Without it, many accounts (or one with many sites) could point every validator
//! at one victim. Each round records how many checks it sent to each host; a site
//! whose checks would take its host past `TARGET_HOST_MAX_CHECKS_PER_MINUTE` in the
//! last 60 seconds is deferred to a later round. Sites that waited longest go
//! first, so every site of a crowded host still gets its turn.
//!
//! The host is the lower-case host name of the site's URL: two names for one
//! machine count apart (the hub does not resolve names; validators do).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Text, Timestamptz};

/// How long each round's per-host counts are kept (the window is one minute).
const KEEP: chrono::Duration = chrono::Duration::minutes(10);

/// A due site as the cap sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCheck {
    /// The site.
    pub website_id: i64,
    /// Its target host.
    pub host: String,
    /// Checks it takes this round (its quorum).
    pub checks: i64,
}

/// The lower-case host of `url` (without a trailing dot); `None` if it has none.
pub fn target_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed
        .host_str()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Splits `due` (longest-waiting first) into the sites admitted this round and
/// those deferred, given the checks each host already received in the window.
/// A host that received nothing in the window always admits one site, so a site
/// whose quorum exceeds the cap is slowed down, never starved.
pub fn admit(
    due: Vec<DueCheck>,
    used: &HashMap<String, i64>,
    cap_per_minute: u32,
) -> (Vec<DueCheck>, Vec<DueCheck>) {
    let cap = i64::from(cap_per_minute);
    let mut spent: HashMap<String, i64> = HashMap::new();
    let (mut admitted, mut deferred) = (Vec::new(), Vec::new());
    for check in due {
        let before = used.get(&check.host).copied().unwrap_or(0);
        let now = spent.entry(check.host.clone()).or_insert(0);
        if before + *now + check.checks <= cap || before + *now == 0 {
            *now += check.checks;
            admitted.push(check);
        } else {
            deferred.push(check);
        }
    }
    (admitted, deferred)
}

#[derive(QueryableByName)]
struct HostChecks {
    #[diesel(sql_type = Text)]
    host: String,
    #[diesel(sql_type = BigInt)]
    checks: i64,
}

/// Checks sent to each of `hosts` by rounds opened in the minute before `now`.
pub fn used_in_window(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    hosts: &[String],
) -> QueryResult<HashMap<String, i64>> {
    let rows: Vec<HostChecks> = diesel::sql_query(
        "SELECT host, sum(checks)::bigint AS checks FROM target_host_checks \
         WHERE host = ANY($1) AND opened_at > $2 - interval '1 minute' AND opened_at <= $2 \
         GROUP BY host",
    )
    .bind::<Array<Text>, _>(hosts)
    .bind::<Timestamptz, _>(now)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.host, r.checks)).collect())
}

/// Records what round `number` (opened at `opened_at`) sends to each host, and
/// forgets counts too old to matter.
pub fn record(
    conn: &mut PgConnection,
    number: i64,
    opened_at: DateTime<Utc>,
    admitted: &[DueCheck],
) -> QueryResult<()> {
    let mut per_host: HashMap<&str, i64> = HashMap::new();
    for check in admitted {
        *per_host.entry(check.host.as_str()).or_default() += check.checks;
    }
    let (hosts, checks): (Vec<String>, Vec<i32>) = per_host
        .into_iter()
        .map(|(host, n)| (host.to_owned(), i32::try_from(n).unwrap_or(i32::MAX)))
        .unzip();
    diesel::sql_query(
        "INSERT INTO target_host_checks (host, round_number, opened_at, checks) \
         SELECT h, $1, $2, c FROM unnest($3::text[], $4::int[]) AS t(h, c)",
    )
    .bind::<BigInt, _>(number)
    .bind::<Timestamptz, _>(opened_at)
    .bind::<Array<Text>, _>(&hosts)
    .bind::<Array<Int4>, _>(&checks)
    .execute(conn)?;
    diesel::sql_query("DELETE FROM target_host_checks WHERE opened_at < $1")
        .bind::<Timestamptz, _>(opened_at - KEEP)
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(id: i64, host: &str, checks: i64) -> DueCheck {
        DueCheck {
            website_id: id,
            host: host.into(),
            checks,
        }
    }

    fn ids(checks: &[DueCheck]) -> Vec<i64> {
        checks.iter().map(|c| c.website_id).collect()
    }

    #[test]
    fn hosts_are_compared_by_lower_case_name_without_port_or_trailing_dot() {
        assert_eq!(
            target_host("https://Victim.Example./a?b").as_deref(),
            Some("victim.example")
        );
        assert_eq!(
            target_host("http://victim.example:8080/").as_deref(),
            Some("victim.example")
        );
        assert_eq!(target_host("http://[::1]:80/").as_deref(), Some("[::1]"));
        assert_eq!(target_host("not a url"), None);
    }

    #[test]
    fn a_crowded_host_gets_only_its_cap_and_other_hosts_are_untouched() {
        let sites: Vec<DueCheck> = (1..=10)
            .map(|i| due(i, "victim.example", 3))
            .chain([due(11, "other.example", 3)])
            .collect();
        let (admitted, deferred) = admit(sites, &HashMap::new(), 10);
        assert_eq!(ids(&admitted), vec![1, 2, 3, 11]);
        assert_eq!(ids(&deferred), (4..=10).collect::<Vec<_>>());
    }

    #[test]
    fn checks_already_sent_in_the_window_count() {
        let used = HashMap::from([("victim.example".to_owned(), 8)]);
        let (admitted, deferred) = admit(
            vec![due(1, "victim.example", 3), due(2, "victim.example", 2)],
            &used,
            10,
        );
        assert_eq!(ids(&admitted), vec![2]);
        assert_eq!(ids(&deferred), vec![1]);
    }

    #[test]
    fn a_quorum_above_the_cap_is_slowed_not_starved() {
        let (admitted, _) = admit(vec![due(1, "h", 15)], &HashMap::new(), 5);
        assert_eq!(ids(&admitted), vec![1]);
        let used = HashMap::from([("h".to_owned(), 15)]);
        let (admitted, deferred) = admit(vec![due(1, "h", 15)], &used, 5);
        assert!(admitted.is_empty());
        assert_eq!(ids(&deferred), vec![1]);
    }
}
