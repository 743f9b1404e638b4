//! ExportReport streams: the date range, the locale, and the stream of a
//! header followed by the file's chunks.
use std::pin::Pin;

use chrono::{Days, NaiveDate, TimeZone};
use chrono_tz::Tz;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};

use crate::domain::error::Violations;
use crate::domain::principal::{Locale, Principal};
use crate::domain::{Error, Result};
use crate::pb::{ExportHeader, ExportReportResponse, export_report_response};
use crate::report::columns::{self, Reported};
use crate::service::tickets::{Kind, ListQuery, OwnFilters, Workflow};

/// The longest range one report may cover.
const MAX_DAYS: u64 = 366;
const CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

pub type ExportStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<ExportReportResponse, Status>> + Send>>;

/// A validated report request: the inclusive local date range, as instants.
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The first instant of `from` in the time zone (µs).
    pub start: i64,
    /// The first instant after `to` (µs), exclusive.
    pub end: i64,
}

impl Range {
    /// Narrows a list filter's own created_at bounds to the report range.
    pub fn clamp(&self, created_from: Option<i64>, created_to: Option<i64>) -> (i64, i64) {
        (
            created_from.map_or(self.start, |f| f.max(self.start)),
            created_to.map_or(self.end, |t| t.min(self.end)),
        )
    }

    pub fn file_name(&self, stem: &str) -> String {
        format!("{stem}_{}_{}.xlsx", self.from, self.to)
    }
}

/// What an Export…Request asks for besides its list filter.
pub struct Asked<'a> {
    pub from_date: &'a str,
    pub to_date: &'a str,
    pub locale: &'a str,
    pub columns: &'a [String],
}

/// ExportReport of one ticket type: checks the range and the locale, the
/// columns, then the list filter `filter` reads (narrowed to the range),
/// and streams the report.
pub async fn report<T, Own, Paging>(
    flow: &Workflow<T>,
    who: &Principal,
    asked: Asked<'_>,
    filter: impl FnOnce() -> Result<(ListQuery<Own>, Paging)>,
    time_zone: Tz,
) -> Result<Response<ExportStream>, Status>
where
    T: Kind + Reported,
    Own: OwnFilters<T>,
{
    let (range, locale) = parse(asked.from_date, asked.to_date, asked.locale, time_zone)?;
    let columns = columns::select::<T>(asked.columns)?;
    let (mut query, _) = filter()?;
    let criteria = &mut query.criteria;
    let (from, to) = range.clamp(criteria.created_from, criteria.created_to);
    (criteria.created_from, criteria.created_to) = (Some(from), Some(to));
    let (count, chunks) = flow.export(who, &query, columns, locale, time_zone).await?;
    let name = range.file_name(T::file_stem(locale));
    Ok(Response::new(stream(name, count, chunks)))
}

/// Parses from_date/to_date ("YYYY-MM-DD", inclusive, in `tz`) and the locale.
pub fn parse(from: &str, to: &str, locale: &str, tz: Tz) -> Result<(Range, Locale)> {
    let mut v = Violations::default();
    let date = |field: &str, value: &str| {
        strict_date(value).ok_or_else(|| {
            Error::invalid(
                field,
                format!("must be a date written YYYY-MM-DD, like 2026-11-30; got {value:?}"),
            )
        })
    };
    let from = v.check(date("from_date", from))?;
    let to = v.check(date("to_date", to))?;
    let locale = match locale.trim().to_ascii_lowercase().as_str() {
        "" | "es" => Some(Locale::Es),
        "en" => Some(Locale::En),
        other => {
            v.push("locale", format!("must be \"es\" or \"en\", got {other:?}"));
            None
        }
    };
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            v.push("from_date", "must not be after to_date");
        } else if (t - f).num_days() as u64 >= MAX_DAYS {
            v.push(
                "to_date",
                format!("a report covers at most {MAX_DAYS} days"),
            );
        }
    }
    let (from, to, locale) = v.finish("from_date", || Some((from?, to?, locale?)))?;
    let start =
        local_midnight(from, tz).ok_or_else(|| Error::invalid("from_date", "is out of range"))?;
    let end = to
        .checked_add_days(Days::new(1))
        .and_then(|next| local_midnight(next, tz))
        .ok_or_else(|| Error::invalid("to_date", "is out of range"))?;
    Ok((
        Range {
            from,
            to,
            start,
            end,
        },
        locale,
    ))
}

/// A date written exactly `YYYY-MM-DD`. chrono's `%Y-%m-%d` also takes a
/// sign, a year of any width and one-digit months and days (`+2026-11-29`,
/// `-0001-01-01`, `2026-3-8`), so the shape is checked before chrono checks
/// the calendar.
fn strict_date(value: &str) -> Option<NaiveDate> {
    let shape_ok = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

/// The first instant of a local day (µs); a day starting in a DST gap starts at its first valid minute.
fn local_midnight(day: NaiveDate, tz: Tz) -> Option<i64> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    (0..=180)
        .find_map(|minutes| {
            tz.from_local_datetime(&(midnight + chrono::Duration::minutes(minutes)))
                .earliest()
        })
        .map(|t| t.timestamp_micros())
}

/// The header message, then every chunk; an error ends the stream.
pub fn stream(
    file_name: String,
    row_count: i64,
    chunks: mpsc::Receiver<Result<Vec<u8>>>,
) -> ExportStream {
    let header = ExportReportResponse {
        kind: Some(export_report_response::Kind::Header(ExportHeader {
            file_name,
            content_type: CONTENT_TYPE.to_owned(),
            row_count,
        })),
    };
    let data = ReceiverStream::new(chunks).map(|chunk| match chunk {
        Ok(bytes) => Ok(ExportReportResponse {
            kind: Some(export_report_response::Kind::Data(bytes)),
        }),
        Err(e) => Err(Status::from(e)),
    });
    Box::pin(tokio_stream::once(Ok(header)).chain(data))
}
