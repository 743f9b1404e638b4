//! Business calendars (DESIGN §5): a time zone, weekly opening hours (several
//! intervals a day allowed) and holidays. Pure functions: add business time to
//! an instant, and measure the business time between two instants.
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// How far ahead `add` looks before giving up (a calendar with no opening
/// hours at all is refused by `Calendar::new`).
const HORIZON_DAYS: u64 = 366 * 20;

/// Which days are rest days besides the weekly closed days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holidays {
    /// Mexico's federal rest days (Ley Federal del Trabajo, art. 74), computed for any year.
    MexicoFederal,
    /// No holidays.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    time_zone: Tz,
    /// Opening intervals per weekday, Monday first; sorted, non-overlapping.
    week: [Vec<(NaiveTime, NaiveTime)>; 7],
    holidays: Holidays,
    /// Extra closed dates (company days off).
    closed: Vec<NaiveDate>,
}

impl Calendar {
    /// Validates and builds a calendar. Intervals must have start < end, must
    /// not overlap, and at least one day must open.
    pub fn new(
        time_zone: Tz,
        week: [Vec<(NaiveTime, NaiveTime)>; 7],
        holidays: Holidays,
        closed: Vec<NaiveDate>,
    ) -> Result<Self, String> {
        let mut week = week;
        for (day, intervals) in week.iter_mut().enumerate() {
            intervals.sort();
            for (start, end) in intervals.iter() {
                if start >= end {
                    return Err(format!(
                        "{}: interval {start}–{end} ends before it starts",
                        weekday_name(day)
                    ));
                }
            }
            for pair in intervals.windows(2) {
                if pair[1].0 < pair[0].1 {
                    return Err(format!(
                        "{}: intervals {}–{} and {}–{} overlap",
                        weekday_name(day),
                        pair[0].0,
                        pair[0].1,
                        pair[1].0,
                        pair[1].1
                    ));
                }
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err("the calendar has no opening hours".into());
        }
        Ok(Self {
            time_zone,
            week,
            holidays,
            closed,
        })
    }

    /// Mon–Fri 09:00–18:00, Sat 09:00–14:00, Mexico City, Mexican federal holidays.
    pub fn mexico_default() -> Self {
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
        let weekday = vec![(t(9), t(18))];
        let week = [
            weekday.clone(),
            weekday.clone(),
            weekday.clone(),
            weekday.clone(),
            weekday,
            vec![(t(9), t(14))],
            vec![],
        ];
        Self {
            time_zone: chrono_tz::America::Mexico_City,
            week,
            holidays: Holidays::MexicoFederal,
            closed: vec![],
        }
    }

    /// The same opening hours and holidays in another time zone.
    pub fn with_time_zone(mut self, time_zone: Tz) -> Self {
        self.time_zone = time_zone;
        self
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.closed.contains(&date)
            || match self.holidays {
                Holidays::MexicoFederal => is_mexican_federal_holiday(date),
                Holidays::None => false,
            }
    }

    /// The opening intervals of a local date, as UTC instants.
    fn intervals(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.is_holiday(date) {
            return vec![];
        }
        self.week[date.weekday().num_days_from_monday() as usize]
            .iter()
            .filter_map(|(start, end)| {
                Some((self.instant(date, *start)?, self.instant(date, *end)?))
            })
            .filter(|(start, end)| start < end)
            .collect()
    }

    /// A local wall-clock time as an instant; in a DST gap, the first valid minute after it.
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let local = date.and_time(time);
        (0..=180)
            .find_map(|m| {
                self.time_zone
                    .from_local_datetime(&(local + chrono::Duration::minutes(m)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.time_zone).date_naive()
    }

    /// The instant `amount` of business time after `start`. A positive amount
    /// always ends inside opening hours (possibly at an interval's end).
    pub fn add(&self, start: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        let mut remaining = chrono::Duration::from_std(amount).unwrap_or(chrono::Duration::MAX);
        if remaining.is_zero() {
            return start;
        }
        // The day before too: an interval of the previous local day may still be open.
        let mut date = self.local_date(start) - Days::new(1);
        for _ in 0..HORIZON_DAYS {
            for (open, close) in self.intervals(date) {
                let from = open.max(start);
                if from >= close {
                    continue;
                }
                let available = close - from;
                if remaining <= available {
                    return from + remaining;
                }
                remaining -= available;
            }
            date = date + Days::new(1);
        }
        DateTime::<Utc>::MAX_UTC
    }

    /// The business time between two instants (zero when `to` is not after `from`).
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::ZERO;
        }
        let mut total = chrono::Duration::zero();
        let mut date = self.local_date(from) - Days::new(1);
        let last = self.local_date(to) + Days::new(1);
        while date <= last {
            for (open, close) in self.intervals(date) {
                let (a, b) = (open.max(from), close.min(to));
                if a < b {
                    total += b - a;
                }
            }
            date = date + Days::new(1);
        }
        total.to_std().unwrap_or_default()
    }

    /// Whether `at` is inside an opening interval (its end included).
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let date = self.local_date(at);
        [date - Days::new(1), date]
            .into_iter()
            .flat_map(|d| self.intervals(d))
            .any(|(open, close)| open <= at && at <= close)
    }
}

/// A calendar as written in a configuration file (JSON):
///
/// ```json
/// {"time_zone": "America/Mexico_City",
///  "hours": {"mon": ["09:00-13:00", "14:00-18:00"], "sat": ["09:00-14:00"]},
///  "holidays": "mexico", "closed_dates": ["2026-12-24"]}
/// ```
/// Days left out of `hours` are closed; `holidays` is `mexico` (default) or `none`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    pub time_zone: Option<String>,
    pub hours: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub holidays: Option<String>,
    #[serde(default)]
    pub closed_dates: Vec<String>,
}

impl CalendarFile {
    /// Validates the file into a calendar; `default_zone` applies when it names none.
    pub fn into_calendar(self, default_zone: Tz) -> Result<Calendar, String> {
        let time_zone = match self.time_zone {
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| format!("unknown time zone {name:?}"))?,
            None => default_zone,
        };
        let mut week: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        for (day, intervals) in self.hours {
            let index = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .position(|d| day.eq_ignore_ascii_case(d))
                .ok_or_else(|| {
                    format!("unknown day {day:?}: use mon, tue, wed, thu, fri, sat, sun")
                })?;
            for interval in intervals {
                let (start, end) = interval.split_once('-').ok_or_else(|| {
                    format!("{day}: {interval:?} is not an interval like 09:00-18:00")
                })?;
                let time = |t: &str| {
                    NaiveTime::parse_from_str(t.trim(), "%H:%M")
                        .map_err(|_| format!("{day}: {t:?} is not a time like 09:00"))
                };
                week[index].push((time(start)?, time(end)?));
            }
        }
        let holidays = match self.holidays.as_deref().unwrap_or("mexico") {
            "mexico" => Holidays::MexicoFederal,
            "none" => Holidays::None,
            other => {
                return Err(format!(
                    "holidays must be \"mexico\" or \"none\", not {other:?}"
                ));
            }
        };
        let closed = self
            .closed_dates
            .iter()
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| format!("closed date {d:?} is not like 2026-12-24"))
            })
            .collect::<Result<_, _>>()?;
        Calendar::new(time_zone, week, holidays, closed)
    }
}

fn weekday_name(index: usize) -> &'static str {
    [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ][index % 7]
}

/// The `n`th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// Mexico's federal rest days: Jan 1; first Monday of February; third Monday
/// of March; May 1; Sep 16; third Monday of November; Dec 25; and Oct 1 of
/// the years the federal executive changes (every six years from 2024).
pub fn is_mexican_federal_holiday(date: NaiveDate) -> bool {
    let (y, m, d) = (date.year(), date.month(), date.day());
    matches!((m, d), (1, 1) | (5, 1) | (9, 16) | (12, 25))
        || Some(date) == nth_weekday(y, 2, Weekday::Mon, 1)
        || Some(date) == nth_weekday(y, 3, Weekday::Mon, 3)
        || Some(date) == nth_weekday(y, 11, Weekday::Mon, 3)
        || ((m, d) == (10, 1) && y >= 2024 && (y - 2024) % 6 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Mexico City local time, as an instant.
    fn mx(text: &str) -> DateTime<Utc> {
        let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        chrono_tz::America::Mexico_City
            .from_local_datetime(&local)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn hours(h: u64) -> Duration {
        Duration::from_secs(h * 3600)
    }

    /// Adds business hours on the Mexico City default calendar:
    /// (start, hours, expected end, why).
    fn assert_adds(cases: &[(&str, u64, &str, &str)]) {
        let cal = Calendar::mexico_default();
        for (start, h, end, why) in cases {
            assert_eq!(cal.add(mx(start), hours(*h)), mx(end), "{why}");
            assert_eq!(cal.between(mx(start), mx(end)), hours(*h), "{why}");
        }
    }

    #[test]
    fn twelve_business_hours_from_friday_17_00_end_monday_15_00() {
        assert_adds(&[(
            "2026-11-06 17:00",
            12,
            "2026-11-09 15:00",
            "Fri 17–18 (1 h) + Sat 9–14 (5 h) + Mon 9–15 (6 h)",
        )]);
    }

    #[test]
    fn holidays_and_the_year_boundary_are_skipped() {
        assert_adds(&[
            (
                "2026-09-15 17:00",
                3,
                "2026-09-17 11:00",
                "Sep 16 2026 is a Wednesday holiday",
            ),
            (
                "2026-12-31 17:00",
                3,
                "2027-01-02 11:00",
                "Thu Dec 31 17–18 (1 h), Fri Jan 1 is a holiday, Sat Jan 2 9–11",
            ),
        ]);
    }

    #[test]
    fn starts_inside_and_outside_opening_hours() {
        let cal = Calendar::mexico_default();
        for (start, h, end, why) in [
            ("2026-11-09 10:30", 2, "2026-11-09 12:30", "inside"),
            ("2026-11-08 10:00", 1, "2026-11-09 10:00", "Sunday"),
            ("2026-11-09 07:00", 1, "2026-11-09 10:00", "before opening"),
            ("2026-11-09 20:00", 1, "2026-11-10 10:00", "after closing"),
            (
                "2026-11-07 13:00",
                2,
                "2026-11-09 10:00",
                "Saturday closes at 14",
            ),
        ] {
            assert_eq!(cal.add(mx(start), hours(h)), mx(end), "{why}");
        }
    }

    #[test]
    fn mexican_federal_holidays_are_computed_for_any_year() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for day in [
            d(2026, 1, 1),
            d(2026, 2, 2),
            d(2026, 3, 16),
            d(2026, 5, 1),
            d(2026, 9, 16),
            d(2026, 11, 16),
            d(2026, 12, 25),
        ] {
            assert!(is_mexican_federal_holiday(day), "{day}");
        }
        assert!(
            is_mexican_federal_holiday(d(2027, 2, 1)),
            "first Monday of February 2027"
        );
        assert!(
            is_mexican_federal_holiday(d(2030, 10, 1)),
            "change of the federal executive"
        );
        assert!(is_mexican_federal_holiday(d(2024, 10, 1)));
        assert!(!is_mexican_federal_holiday(d(2026, 10, 1)));
        assert!(
            !is_mexican_federal_holiday(d(2026, 11, 20)),
            "moved to the third Monday"
        );
    }

    #[test]
    fn several_intervals_a_day_and_invalid_calendars() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let split = vec![(t(9, 0), t(13, 0)), (t(14, 0), t(18, 0))];
        let week = [
            split.clone(),
            split.clone(),
            split.clone(),
            split.clone(),
            split,
            vec![],
            vec![],
        ];
        let cal = Calendar::new(
            chrono_tz::America::Mexico_City,
            week,
            Holidays::None,
            vec![],
        )
        .unwrap();
        assert_eq!(
            cal.add(mx("2026-11-09 12:00"), hours(2)),
            mx("2026-11-09 15:00"),
            "lunch break skipped"
        );
        // Mondays only; every other day closed.
        let mondays = |hours| {
            let mut week: [Vec<_>; 7] = Default::default();
            week[0] = hours;
            Calendar::new(chrono_tz::UTC, week, Holidays::None, vec![])
        };
        let overlapping = vec![(t(9, 0), t(13, 0)), (t(12, 0), t(18, 0))];
        assert!(mondays(overlapping).is_err());
        assert!(mondays(vec![(t(18, 0), t(9, 0))]).is_err(), "backwards");
        assert!(Calendar::new(chrono_tz::UTC, Default::default(), Holidays::None, vec![]).is_err());
    }

    #[test]
    fn calendar_files_are_validated_with_clear_errors() {
        let parse = |json: &str| {
            serde_json::from_str::<CalendarFile>(json)
                .map_err(|e| e.to_string())
                .and_then(|f| f.into_calendar(chrono_tz::UTC))
        };
        let cal =
            parse(r#"{"hours": {"mon": ["09:00-13:00", "14:00-18:00"]}, "holidays": "none"}"#)
                .unwrap();
        assert_eq!(cal.time_zone(), chrono_tz::UTC);
        for (json, error) in [
            (r#"{"hours": {"monday": ["09:00-18:00"]}}"#, "unknown day"),
            (r#"{"hours": {"mon": ["9-18"]}}"#, "not a time"),
            (
                r#"{"hours": {"mon": ["18:00-09:00"]}}"#,
                "ends before it starts",
            ),
            (
                r#"{"hours": {"mon": ["09:00-13:00", "12:00-18:00"]}}"#,
                "overlap",
            ),
            (r#"{"hours": {}}"#, "no opening hours"),
            (
                r#"{"time_zone": "Mars/Olympus", "hours": {"mon": ["09:00-18:00"]}}"#,
                "unknown time zone",
            ),
            (
                r#"{"hours": {"mon": ["09:00-18:00"]}, "holidays": "usa"}"#,
                "holidays must be",
            ),
            (
                r#"{"hours": {"mon": ["09:00-18:00"]}, "bogus": 1}"#,
                "unknown field",
            ),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(error), "{json}: {err}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn instant() -> impl Strategy<Value = DateTime<Utc>> {
            // 2024-01-01 .. 2031-01-01, to the minute.
            (1_704_067_200i64..1_924_992_000i64)
                .prop_map(|s| DateTime::from_timestamp(s - s % 60, 0).unwrap())
        }

        fn amount() -> impl Strategy<Value = Duration> {
            (1u64..=200 * 60).prop_map(|minutes| Duration::from_secs(minutes * 60))
        }

        proptest! {
            #[test]
            fn adding_a_then_b_equals_adding_a_plus_b(t in instant(), a in amount(), b in amount()) {
                let cal = Calendar::mexico_default();
                prop_assert_eq!(cal.add(cal.add(t, a), b), cal.add(t, a + b));
            }

            #[test]
            fn results_fall_inside_opening_hours(t in instant(), a in amount()) {
                let cal = Calendar::mexico_default();
                prop_assert!(cal.is_open(cal.add(t, a)));
            }

            #[test]
            fn business_time_between_t_and_t_plus_h_is_h(t in instant(), a in amount()) {
                let cal = Calendar::mexico_default();
                prop_assert_eq!(cal.between(t, cal.add(t, a)), a);
            }
        }
    }
}
