//! What a public status page shows, read in a fixed handful of grouped queries
//! (the page, its sites with their state, 90 days of daily figures from the hourly
//! rollups, 24 h latency, incidents, maintenance windows): the cost does not grow
//! with one query per site or per day.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Date, Nullable, Text, Timestamptz};
use overlaps_shared::maintenance::in_maintenance;
use overlaps_shared::models::{Incident, MaintenanceWindow as WindowRow};
use overlaps_shared::schema::{incidents, maintenance_windows};

/// Days of history a page shows.
pub const DAYS: i64 = 90;

/// Incidents a page shows per site (the newest).
pub const INCIDENTS_PER_SITE: i64 = 20;

/// A published page and its sites, in order.
#[derive(Debug)]
pub struct Published {
    /// Page id.
    pub id: i64,
    /// Its slug.
    pub slug: String,
    /// Heading.
    pub title: String,
    /// Text under the heading.
    pub description: Option<String>,
    /// `(website id, name)` in the page's order.
    pub sites: Vec<(i64, String)>,
}

#[derive(QueryableByName)]
struct PublishedRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    slug: String,
    #[diesel(sql_type = Text)]
    title: String,
    #[diesel(sql_type = Nullable<Text>)]
    description: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    website_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

/// The page published at `slug`, if any (one query).
pub fn published(conn: &mut PgConnection, slug: &str) -> QueryResult<Option<Published>> {
    let rows: Vec<PublishedRow> = diesel::sql_query(
        "SELECT p.id, p.slug, p.title, p.description, w.id AS website_id, w.name \
         FROM status_pages p \
         LEFT JOIN status_page_sites s ON s.page_id = p.id \
         LEFT JOIN websites w ON w.id = s.website_id \
         WHERE p.slug = $1 ORDER BY s.position",
    )
    .bind::<Text, _>(slug)
    .load(conn)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut page = Published {
        id: first.id,
        slug: first.slug.clone(),
        title: first.title.clone(),
        description: first.description.clone(),
        sites: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        if let (Some(id), Some(name)) = (row.website_id, row.name) {
            page.sites.push((id, name));
        }
    }
    Ok(Some(page))
}

/// One UTC day of a site.
#[derive(Debug, Clone, Default)]
pub struct Day {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Results received.
    pub checks: i64,
    /// Results `up` (outside maintenance).
    pub up: i64,
    /// Results `down` (outside maintenance).
    pub down: i64,
    /// Results `degraded`: correct but over the site's time limit (outside maintenance).
    pub degraded: i64,
    /// Results of rounds inside maintenance windows.
    pub maintenance_checks: i64,
    /// Rounds the quorum could not decide.
    pub unknown_rounds: i64,
}

impl Day {
    /// Uptime in percent of the up, down and degraded results (maintenance left
    /// out; degraded counts as not up, as in the API's uptime).
    pub fn uptime(&self) -> Option<f64> {
        let counted = self.up + self.down + self.degraded;
        (counted > 0).then(|| 100.0 * self.up as f64 / counted as f64)
    }
}

/// Everything shown about one site.
#[derive(Debug)]
pub struct Site {
    /// Website id.
    pub id: i64,
    /// Display name (escaped when rendered).
    pub name: String,
    /// `up`, `down`, `degraded` or `unknown`.
    pub state: String,
    /// Since when.
    pub since: Option<DateTime<Utc>>,
    /// The last round that settled it.
    pub last_round: Option<i64>,
    /// The window it is inside now, if any.
    pub maintenance_now: Option<i64>,
    /// The last [`DAYS`] days, oldest first (days without rollups are empty).
    pub days: Vec<Day>,
    /// Weighted mean of the hourly medians over 24 h, ms.
    pub latency_p50_24h: Option<i64>,
    /// Highest hourly 95th percentile over 24 h, ms.
    pub latency_p95_24h: Option<i64>,
    /// Incidents of the last [`DAYS`] days, newest first.
    pub incidents: Vec<Incident>,
    /// Every maintenance window of the site (public record), oldest first.
    pub windows: Vec<WindowRow>,
}

impl Site {
    /// Uptime over all shown days.
    pub fn uptime(&self) -> Option<f64> {
        let (up, counted) = self.days.iter().fold((0, 0), |(u, c), day| {
            (u + day.up, c + day.up + day.down + day.degraded)
        });
        (counted > 0).then(|| 100.0 * up as f64 / counted as f64)
    }
}

#[derive(QueryableByName)]
struct StateRow {
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Timestamptz)]
    since: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last_round: Option<i64>,
}

#[derive(QueryableByName)]
struct DayRow {
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = BigInt)]
    checks: i64,
    #[diesel(sql_type = BigInt)]
    up: i64,
    #[diesel(sql_type = BigInt)]
    down: i64,
    #[diesel(sql_type = BigInt)]
    degraded: i64,
    #[diesel(sql_type = BigInt)]
    maintenance_checks: i64,
    #[diesel(sql_type = BigInt)]
    unknown_rounds: i64,
}

#[derive(QueryableByName)]
struct LatencyRow {
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    p50: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    p95: Option<i64>,
}

/// Loads what the page shows of `sites` at `now`.
pub fn sites(
    conn: &mut PgConnection,
    sites: &[(i64, String)],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Site>> {
    let ids: Vec<i64> = sites.iter().map(|(id, _)| *id).collect();
    let today = now.date_naive();
    let first_day = today - Duration::days(DAYS - 1);

    let states: HashMap<i64, StateRow> = diesel::sql_query(
        "SELECT website_id, state, since, last_round FROM website_status WHERE website_id = ANY($1)",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .load::<StateRow>(conn)?
    .into_iter()
    .map(|r| (r.website_id, r))
    .collect();

    let days = daily(conn, &ids, first_day, today)?;

    let latency: HashMap<i64, LatencyRow> = diesel::sql_query(
        "SELECT website_id, \
           (SUM(latency_p50_ms::bigint * checks) / NULLIF(SUM(checks) FILTER (WHERE latency_p50_ms IS NOT NULL), 0))::bigint AS p50, \
           MAX(latency_p95_ms)::bigint AS p95 \
         FROM website_hourly_rollups WHERE website_id = ANY($1) AND hour >= $2 GROUP BY 1",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Timestamptz, _>(now - Duration::hours(24))
    .load::<LatencyRow>(conn)?
    .into_iter()
    .map(|r| (r.website_id, r))
    .collect();

    let mut by_site = shown_incidents(conn, &ids, now)?;

    let mut windows: HashMap<i64, Vec<WindowRow>> = HashMap::new();
    for window in maintenance_windows::table
        .filter(maintenance_windows::website_id.eq_any(&ids))
        .order(maintenance_windows::id.asc())
        .select(WindowRow::as_select())
        .load::<WindowRow>(conn)?
    {
        windows.entry(window.website_id).or_default().push(window);
    }

    Ok(sites
        .iter()
        .map(|(id, name)| {
            let state = states.get(id);
            let windows = windows.remove(id).unwrap_or_default();
            let latency = latency.get(id);
            Site {
                id: *id,
                name: name.clone(),
                state: state.map_or_else(|| "unknown".to_owned(), |s| s.state.clone()),
                since: state.map(|s| s.since),
                last_round: state.and_then(|s| s.last_round),
                maintenance_now: in_maintenance(&windows, now),
                days: (0..DAYS)
                    .map(|offset| {
                        let day = first_day + Duration::days(offset);
                        days.get(&(*id, day)).cloned().unwrap_or(Day {
                            day,
                            ..Day::default()
                        })
                    })
                    .collect(),
                latency_p50_24h: latency.and_then(|l| l.p50),
                latency_p95_24h: latency.and_then(|l| l.p95),
                incidents: by_site.remove(id).unwrap_or_default(),
                windows,
            }
        })
        .collect())
}

/// How long the daily sums of settled days (before yesterday) are reused.
const SETTLED_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// Sites whose settled days are kept at most (beyond that the cache starts over).
const SETTLED_SITES: usize = 100_000;

/// A site's daily sums from a page's first day to the day before yesterday.
struct SettledDays {
    first_day: NaiveDate,
    computed: Instant,
    days: Vec<Day>,
}

/// Settled days per site, shared by every page of this process: their rollups no
/// longer change (rounds close within minutes), so a page sums the hourly rollups
/// of two days instead of 90 (90 days of 50 sites are 108,000 rows).
static SETTLED: LazyLock<Mutex<HashMap<i64, SettledDays>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// Sums the rollups of `ids` per UTC day over `[from, to)` (one grouped query).
fn sum_days(
    conn: &mut PgConnection,
    ids: &[i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Vec<DayRow>> {
    diesel::sql_query(
        "SELECT website_id, (hour AT TIME ZONE 'UTC')::date AS day, \
           SUM(checks)::bigint AS checks, SUM(up)::bigint AS up, SUM(down)::bigint AS down, \
           SUM(degraded_checks)::bigint AS degraded, SUM(maintenance_checks)::bigint AS maintenance_checks, \
           SUM(unknown_rounds)::bigint AS unknown_rounds \
         FROM website_hourly_rollups WHERE website_id = ANY($1) AND hour >= $2 AND hour < $3 \
         GROUP BY 1, 2",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
}

/// The daily sums of `ids` from `first_day` through `today`: settled days from
/// [`SETTLED`] (summed afresh for sites missing or older than [`SETTLED_FOR`]),
/// yesterday and today always from the rollups.
fn daily(
    conn: &mut PgConnection,
    ids: &[i64],
    first_day: NaiveDate,
    today: NaiveDate,
) -> QueryResult<HashMap<(i64, NaiveDate), Day>> {
    let live_from = today - Duration::days(1);
    let mut days: HashMap<(i64, NaiveDate), Day> = HashMap::new();
    let mut missing = Vec::new();
    {
        let cache = SETTLED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for id in ids {
            match cache.get(id) {
                Some(s) if s.first_day == first_day && s.computed.elapsed() < SETTLED_FOR => {
                    for day in &s.days {
                        days.insert((*id, day.day), day.clone());
                    }
                }
                _ => missing.push(*id),
            }
        }
    }
    let mut fresh: HashMap<i64, Vec<Day>> = missing.iter().map(|id| (*id, Vec::new())).collect();
    if !missing.is_empty() {
        for r in sum_days(conn, &missing, midnight(first_day), midnight(live_from))? {
            fresh.entry(r.website_id).or_default().push(Day::from(&r));
            days.insert((r.website_id, r.day), Day::from(&r));
        }
    }
    for r in sum_days(
        conn,
        ids,
        midnight(live_from),
        midnight(today + Duration::days(1)),
    )? {
        days.insert((r.website_id, r.day), Day::from(&r));
    }
    let mut cache = SETTLED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if cache.len() + fresh.len() > SETTLED_SITES {
        cache.clear();
    }
    let computed = Instant::now();
    for (id, settled) in fresh {
        cache.insert(
            id,
            SettledDays {
                first_day,
                computed,
                days: settled,
            },
        );
    }
    Ok(days)
}

impl From<&DayRow> for Day {
    fn from(r: &DayRow) -> Self {
        Day {
            day: r.day,
            checks: r.checks,
            up: r.up,
            down: r.down,
            degraded: r.degraded,
            maintenance_checks: r.maintenance_checks,
            unknown_rounds: r.unknown_rounds,
        }
    }
}

/// The first instant of the days a page shows at `now`.
pub fn first_shown(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() - Duration::days(DAYS - 1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
}

/// The incidents a page shows of `ids` at `now`: open, or resolved within the
/// shown days; the newest [`INCIDENTS_PER_SITE`] of each site.
pub fn shown_incidents(
    conn: &mut PgConnection,
    ids: &[i64],
    now: DateTime<Utc>,
) -> QueryResult<HashMap<i64, Vec<Incident>>> {
    let mut by_site: HashMap<i64, Vec<Incident>> = HashMap::new();
    let recent: Vec<Incident> = incidents::table
        .filter(incidents::website_id.eq_any(ids))
        .filter(
            incidents::resolved_at
                .is_null()
                .or(incidents::resolved_at.ge(first_shown(now))),
        )
        .order((incidents::website_id, incidents::opened_at.desc()))
        .select(Incident::as_select())
        .load(conn)?;
    for incident in recent {
        let list = by_site.entry(incident.website_id).or_default();
        if list.len() < usize::try_from(INCIDENTS_PER_SITE).unwrap_or(usize::MAX) {
            list.push(incident);
        }
    }
    Ok(by_site)
}

/// Uptime over the last 24 h, 7 d and 30 d of one site (rollups only), in percent.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Uptimes {
    /// Last 24 hours.
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    pub d1: Option<f64>,
    /// Last 7 days.
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    pub d7: Option<f64>,
    /// Last 30 days.
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    pub d30: Option<f64>,
    /// Weighted mean of the hourly medians over 24 h, ms.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub p50_24h: Option<i64>,
}

/// The badge figures of `site` (one query over at most 720 rollup rows).
pub fn uptimes(conn: &mut PgConnection, site: i64) -> QueryResult<Uptimes> {
    diesel::sql_query(
        "SELECT \
           (100.0 * SUM(up) FILTER (WHERE hour >= now() - interval '24 hours') \
             / NULLIF(SUM(up + down + degraded_checks) FILTER (WHERE hour >= now() - interval '24 hours'), 0))::float8 AS d1, \
           (100.0 * SUM(up) FILTER (WHERE hour >= now() - interval '7 days') \
             / NULLIF(SUM(up + down + degraded_checks) FILTER (WHERE hour >= now() - interval '7 days'), 0))::float8 AS d7, \
           (100.0 * SUM(up) / NULLIF(SUM(up + down + degraded_checks), 0))::float8 AS d30, \
           (SUM(latency_p50_ms::bigint * checks) FILTER (WHERE hour >= now() - interval '24 hours') \
             / NULLIF(SUM(checks) FILTER (WHERE hour >= now() - interval '24 hours' AND latency_p50_ms IS NOT NULL), 0))::bigint AS p50_24h \
         FROM website_hourly_rollups \
         WHERE website_id = $1 AND hour >= date_trunc('hour', now() - interval '30 days')",
    )
    .bind::<BigInt, _>(site)
    .get_result(conn)
}
