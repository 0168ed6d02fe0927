//! Maintenance windows: whether an instant falls inside one of a site's windows.
//!
//! One function decides it for everyone (accounting at a round's close, the
//! reminder sweep, the API's status answer), so they never disagree.
//!
//! A `once` window covers `[starts_at, ends_at)`. A `weekly` window starts every
//! `weekday` (0 = Monday … 6 = Sunday) at `start_time` on the wall clock of its
//! `time_zone`, and lasts `duration_minutes` of elapsed time, so it may run past
//! midnight and from Sunday into Monday. Across a DST change: a start time that
//! does not exist that day (skipped by the clocks going forward) starts at the
//! first minute that does; one that exists twice (clocks going back) starts at
//! the first of the two.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::models::MaintenanceWindow;

/// The id of the window `at` falls in (the lowest id if several), if any.
///
/// A row that cannot be read (an unknown zone, a kind's field missing) covers
/// nothing: a broken window must not silence alerts.
pub fn in_maintenance(windows: &[MaintenanceWindow], at: DateTime<Utc>) -> Option<i64> {
    windows.iter().filter(|w| covers(w, at)).map(|w| w.id).min()
}

/// Whether `window` covers `at`.
pub fn covers(window: &MaintenanceWindow, at: DateTime<Utc>) -> bool {
    match window.kind.as_str() {
        "once" => match (window.starts_at, window.ends_at) {
            (Some(starts), Some(ends)) => starts <= at && at < ends,
            _ => false,
        },
        "weekly" => match (
            window.weekday.and_then(|d| u32::try_from(d).ok()),
            window.start_time,
            window.duration_minutes,
            parse_zone(&window.time_zone),
        ) {
            (Some(weekday), Some(start), Some(minutes), Some(zone)) if weekday < 7 => {
                weekly_covers(weekday, start, i64::from(minutes), zone, at)
            }
            _ => false,
        },
        _ => false,
    }
}

/// An IANA zone name as a zone (`None` when unknown).
pub fn parse_zone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

fn weekly_covers(
    weekday: u32,
    start: NaiveTime,
    minutes: i64,
    zone: Tz,
    at: DateTime<Utc>,
) -> bool {
    let today = at.with_timezone(&zone).date_naive();
    // A window lasts at most a day of elapsed time, which is at most two
    // calendar days back on the local clock (one day plus a DST shift).
    (0..=2).any(|back| {
        let Some(day) = today.checked_sub_signed(Duration::days(back)) else {
            return false;
        };
        if day.weekday().num_days_from_monday() != weekday {
            return false;
        }
        local_instant(zone, day.and_time(start))
            .is_some_and(|begins| begins <= at && at < begins + Duration::minutes(minutes))
    })
}

/// The instant a wall-clock time names in `zone`: the earlier of two (clocks going
/// back), or the first existing minute after it (clocks going forward).
fn local_instant(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    // Gaps are whole minutes and at most a few hours long anywhere.
    (0..=240).find_map(|shift| {
        zone.from_local_datetime(&(local + Duration::minutes(shift)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests may panic.

    use super::*;
    use chrono::Weekday;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn once(id: i64, starts: &str, ends: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            id,
            website_id: 1,
            kind: "once".into(),
            starts_at: Some(utc(starts)),
            ends_at: Some(utc(ends)),
            weekday: None,
            start_time: None,
            duration_minutes: None,
            time_zone: "UTC".into(),
            note: None,
            created_at: utc("2026-01-01T00:00:00Z"),
        }
    }

    fn weekly(id: i64, weekday: i16, start: &str, minutes: i32, zone: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            id,
            website_id: 1,
            kind: "weekly".into(),
            starts_at: None,
            ends_at: None,
            weekday: Some(weekday),
            start_time: Some(NaiveTime::parse_from_str(start, "%H:%M").unwrap()),
            duration_minutes: Some(minutes),
            time_zone: zone.into(),
            note: None,
            created_at: utc("2026-01-01T00:00:00Z"),
        }
    }

    fn weekday_of(s: &str, zone: Tz) -> Weekday {
        utc(s).with_timezone(&zone).weekday()
    }

    #[test]
    fn a_one_off_window_includes_its_start_and_excludes_its_end() {
        let w = [once(7, "2026-11-27T10:00:00Z", "2026-11-27T12:00:00Z")];
        assert_eq!(in_maintenance(&w, utc("2026-11-27T09:59:59Z")), None);
        assert_eq!(in_maintenance(&w, utc("2026-11-27T10:00:00Z")), Some(7));
        assert_eq!(in_maintenance(&w, utc("2026-11-27T11:59:59Z")), Some(7));
        assert_eq!(in_maintenance(&w, utc("2026-11-27T12:00:00Z")), None);
    }

    #[test]
    fn a_weekly_window_recurs_on_its_weekday_only() {
        // Monday (0) 02:00 UTC for an hour; 2026-11-30 is a Monday.
        assert_eq!(
            weekday_of("2026-11-30T02:00:00Z", chrono_tz::UTC),
            Weekday::Mon
        );
        let w = [weekly(3, 0, "02:00", 60, "UTC")];
        assert_eq!(in_maintenance(&w, utc("2026-11-30T02:30:00Z")), Some(3));
        assert_eq!(in_maintenance(&w, utc("2026-12-07T02:00:00Z")), Some(3));
        assert_eq!(in_maintenance(&w, utc("2026-11-30T03:00:00Z")), None);
        assert_eq!(in_maintenance(&w, utc("2026-12-01T02:30:00Z")), None);
        assert_eq!(in_maintenance(&w, utc("2026-11-29T02:30:00Z")), None);
    }

    #[test]
    fn a_weekly_window_runs_past_midnight_and_from_sunday_into_monday() {
        // Saturday (5) 23:30 for 90 minutes: into Sunday 01:00.
        let sat = [weekly(1, 5, "23:30", 90, "UTC")];
        assert_eq!(in_maintenance(&sat, utc("2026-11-28T23:45:00Z")), Some(1));
        assert_eq!(in_maintenance(&sat, utc("2026-11-29T00:59:59Z")), Some(1));
        assert_eq!(in_maintenance(&sat, utc("2026-11-29T01:00:00Z")), None);
        // Sunday (6) 23:00 for 120 minutes: into the next week's Monday.
        let sun = [weekly(2, 6, "23:00", 120, "UTC")];
        assert_eq!(
            weekday_of("2026-11-30T00:30:00Z", chrono_tz::UTC),
            Weekday::Mon
        );
        assert_eq!(in_maintenance(&sun, utc("2026-11-30T00:30:00Z")), Some(2));
        assert_eq!(in_maintenance(&sun, utc("2026-11-30T01:00:00Z")), None);
        // The full day: 1440 minutes from Sunday 00:00, up to (not including) Monday 00:00.
        let day = [weekly(4, 6, "00:00", 1440, "UTC")];
        assert_eq!(in_maintenance(&day, utc("2026-11-29T23:59:59Z")), Some(4));
        assert_eq!(in_maintenance(&day, utc("2026-11-30T00:00:00Z")), None);
    }

    #[test]
    fn a_weekly_window_follows_the_local_clock_across_dst() {
        let berlin = chrono_tz::Europe::Berlin;
        // Monday 09:00 in Berlin: 08:00 UTC in winter, 07:00 UTC in summer.
        let w = [weekly(5, 0, "09:00", 30, "Europe/Berlin")];
        assert_eq!(weekday_of("2026-01-05T08:10:00Z", berlin), Weekday::Mon);
        assert_eq!(in_maintenance(&w, utc("2026-01-05T08:10:00Z")), Some(5));
        assert_eq!(in_maintenance(&w, utc("2026-01-05T07:10:00Z")), None);
        assert_eq!(in_maintenance(&w, utc("2026-07-06T07:10:00Z")), Some(5));
        assert_eq!(in_maintenance(&w, utc("2026-07-06T08:10:00Z")), None);
    }

    #[test]
    fn a_start_skipped_by_spring_forward_begins_at_the_first_existing_minute() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2026-03-29 (a Sunday): Berlin's clocks jump from 02:00 CET to 03:00 CEST
        // (01:00 UTC), so 02:30 does not exist; the window starts at 03:00 CEST.
        assert_eq!(weekday_of("2026-03-29T01:00:00Z", berlin), Weekday::Sun);
        let w = [weekly(6, 6, "02:30", 60, "Europe/Berlin")];
        assert_eq!(in_maintenance(&w, utc("2026-03-29T00:59:59Z")), None);
        assert_eq!(in_maintenance(&w, utc("2026-03-29T01:00:00Z")), Some(6));
        assert_eq!(in_maintenance(&w, utc("2026-03-29T01:59:59Z")), Some(6));
        assert_eq!(in_maintenance(&w, utc("2026-03-29T02:00:00Z")), None);
        // A window spanning the jump lasts its minutes of elapsed time: 01:00 CET
        // (00:00 UTC) for 180 minutes ends at 03:00 UTC (05:00 CEST).
        let spanning = [weekly(8, 6, "01:00", 180, "Europe/Berlin")];
        assert_eq!(
            in_maintenance(&spanning, utc("2026-03-29T00:00:00Z")),
            Some(8)
        );
        assert_eq!(
            in_maintenance(&spanning, utc("2026-03-29T02:59:59Z")),
            Some(8)
        );
        assert_eq!(in_maintenance(&spanning, utc("2026-03-29T03:00:00Z")), None);
    }

    #[test]
    fn a_start_repeated_by_fall_back_begins_at_the_first_of_the_two() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2026-10-25 (a Sunday): 02:30 happens at 00:30 UTC (CEST) and again at
        // 01:30 UTC (CET); the window starts at the first and lasts 30 minutes.
        assert_eq!(weekday_of("2026-10-25T00:30:00Z", berlin), Weekday::Sun);
        let w = [weekly(9, 6, "02:30", 30, "Europe/Berlin")];
        assert_eq!(in_maintenance(&w, utc("2026-10-25T00:29:59Z")), None);
        assert_eq!(in_maintenance(&w, utc("2026-10-25T00:30:00Z")), Some(9));
        assert_eq!(in_maintenance(&w, utc("2026-10-25T00:59:59Z")), Some(9));
        assert_eq!(in_maintenance(&w, utc("2026-10-25T01:30:00Z")), None);
    }

    #[test]
    fn a_zone_east_of_utc_wraps_the_week_on_its_own_clock() {
        // Monday 00:30 in Tokyo (UTC+9) is Sunday 15:30 UTC.
        let w = [weekly(10, 0, "00:30", 60, "Asia/Tokyo")];
        assert_eq!(in_maintenance(&w, utc("2026-11-29T15:45:00Z")), Some(10));
        assert_eq!(in_maintenance(&w, utc("2026-11-30T00:45:00Z")), None);
    }

    #[test]
    fn several_windows_give_the_lowest_id_and_broken_rows_cover_nothing() {
        let mut broken = weekly(1, 6, "00:00", 1440, "Mars/Olympus_Mons");
        broken.note = Some("unknown zone".into());
        let mut missing = once(2, "2026-11-29T00:00:00Z", "2026-11-30T00:00:00Z");
        missing.ends_at = None;
        let windows = [
            broken,
            missing,
            weekly(12, 6, "10:00", 120, "UTC"),
            once(11, "2026-11-29T11:00:00Z", "2026-11-29T13:00:00Z"),
        ];
        assert_eq!(
            in_maintenance(&windows, utc("2026-11-29T10:30:00Z")),
            Some(12)
        );
        assert_eq!(
            in_maintenance(&windows, utc("2026-11-29T11:30:00Z")),
            Some(11)
        );
        assert_eq!(
            in_maintenance(&windows, utc("2026-11-29T12:30:00Z")),
            Some(11)
        );
        assert_eq!(in_maintenance(&windows, utc("2026-11-29T09:30:00Z")), None);
        assert_eq!(in_maintenance(&[], utc("2026-11-29T09:30:00Z")), None);
    }
}
