//! Which sites are inside a maintenance window at an instant, read from
//! `maintenance_windows` and decided by the one shared rule
//! ([`overlaps_shared::maintenance::in_maintenance`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::maintenance::in_maintenance;
use overlaps_shared::models::MaintenanceWindow;
use overlaps_shared::schema::maintenance_windows;

/// The sites among `sites` that are in maintenance at `at`.
pub fn sites_in_maintenance(
    conn: &mut PgConnection,
    sites: &[i64],
    at: DateTime<Utc>,
) -> QueryResult<BTreeSet<i64>> {
    if sites.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<MaintenanceWindow> = maintenance_windows::table
        .filter(maintenance_windows::website_id.eq_any(sites))
        .select(MaintenanceWindow::as_select())
        .load(conn)?;
    let mut by_site: BTreeMap<i64, Vec<MaintenanceWindow>> = BTreeMap::new();
    for row in rows {
        by_site.entry(row.website_id).or_default().push(row);
    }
    Ok(by_site
        .into_iter()
        .filter(|(_, windows)| in_maintenance(windows, at).is_some())
        .map(|(site, _)| site)
        .collect())
}
