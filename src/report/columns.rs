//! The report columns of each ticket type: code, labels (es/en), width and
//! the value it shows of a ticket.
use chrono::DateTime;
use chrono_tz::Tz;

use super::{Cell, Header};
use crate::domain::Labelled as _;
use crate::domain::catalog::Catalog;
use crate::domain::consultation::Consultation;
use crate::domain::incident::Incident;
use crate::domain::principal::Locale;
use crate::domain::ticket::Ticket;
use crate::domain::{Error, Result};

/// What a cell needs beyond its row.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub locale: Locale,
    pub time_zone: Tz,
    /// When the report was asked for (µs): values that move with the clock
    /// (the estimate of an incident waiting for data) are shown as of then.
    pub now: i64,
}

impl Context<'_> {
    /// An instant as a local date-time of the calendar's time zone.
    fn date(&self, micros: Option<i64>) -> Cell {
        micros
            .and_then(DateTime::from_timestamp_micros)
            .map_or(Cell::Empty, |utc| {
                Cell::Date(utc.with_timezone(&self.time_zone).naive_local())
            })
    }
}

fn text(value: impl Into<String>) -> Cell {
    let value = value.into();
    if value.is_empty() {
        Cell::Empty
    } else {
        Cell::Text(value)
    }
}

fn opt_text(value: Option<&str>) -> Cell {
    value.map_or(Cell::Empty, text)
}

pub struct Column<M: 'static> {
    pub code: &'static str,
    pub es: &'static str,
    pub en: &'static str,
    pub width: f64,
    pub value: fn(&M, &Context) -> Cell,
}

impl<M> Column<M> {
    pub fn header(&self, locale: Locale) -> Header {
        let label = match locale {
            Locale::Es => self.es,
            Locale::En => self.en,
        };
        Header {
            label: label.to_owned(),
            width: self.width,
        }
    }
}

// The columns both ticket types have.

const fn number<T: Ticket>() -> Column<T> {
    Column {
        code: "number",
        es: "No.",
        en: "No.",
        width: 8.0,
        value: |t, _| {
            t.header()
                .number
                .map_or(Cell::Empty, |n| Cell::Number(n as f64))
        },
    }
}

const fn status<T: Ticket>(es: &'static str) -> Column<T> {
    Column {
        code: "status",
        es,
        en: "Status",
        width: 16.0,
        value: |t, c| text(t.status().label(c.locale)),
    }
}

const fn assignee<T: Ticket>() -> Column<T> {
    Column {
        code: "assignee",
        es: "Asesor",
        en: "Agent",
        width: 20.0,
        value: |t, _| opt_text(t.header().assignee.as_ref().map(|a| a.name.as_str())),
    }
}

const fn created_at<T: Ticket>(es: &'static str) -> Column<T> {
    Column {
        code: "created_at",
        es,
        en: "Created",
        width: 18.0,
        value: |t, c| c.date(Some(t.header().created_at)),
    }
}

const fn description<T: Ticket>() -> Column<T> {
    Column {
        code: "description",
        es: "Descripción",
        en: "Description",
        width: 40.0,
        value: |t, _| text(t.description()),
    }
}

const fn account<T: Ticket>() -> Column<T> {
    Column {
        code: "account",
        es: "Cuenta",
        en: "Account",
        width: 16.0,
        value: |t, _| text(&*t.header().account),
    }
}

/// Incident columns; the first ten are the module's default report.
pub static INCIDENT_COLUMNS: &[Column<Incident>] = &[
    number(),
    status("Estatus"),
    Column {
        code: "kind",
        es: "Tipo",
        en: "Type",
        width: 16.0,
        value: |m, c| text(m.kind.label(c.locale)),
    },
    Column {
        code: "tracking_number",
        es: "Guía",
        en: "Tracking number",
        width: 20.0,
        value: |m, _| text(m.tracking_number.as_str()),
    },
    Column {
        code: "category",
        es: "Categoría",
        en: "Category",
        width: 26.0,
        value: |m, c| text(c.catalog.category_name(&m.category)),
    },
    Column {
        code: "carrier",
        es: "Paquetería",
        en: "Carrier",
        width: 16.0,
        value: |m, c| text(c.catalog.carrier_name(&m.carrier)),
    },
    assignee(),
    created_at("Fecha de ticket"),
    Column {
        code: "estimated_resolution_at",
        es: "Fecha estimada",
        en: "Estimated resolution",
        width: 18.0,
        // created + the category's target, moved on by time spent waiting for
        // data, as the API shows it.
        value: |m, c| c.date(m.estimate(c.now)),
    },
    Column {
        code: "resolution",
        es: "Resolución",
        en: "Resolution",
        width: 30.0,
        value: |m, c| {
            let reason = m.resolution_reason.map(|r| r.label(c.locale));
            match (reason, m.resolution_note.as_deref()) {
                (Some(r), Some(note)) => text(format!("{r}: {note}")),
                (Some(r), None) => text(r),
                (None, note) => opt_text(note),
            }
        },
    },
    description(),
    account(),
    Column {
        code: "requester",
        es: "Solicitante",
        en: "Requester",
        width: 20.0,
        value: |m, _| text(&*m.header.requester.name),
    },
    Column {
        code: "shipped_at",
        es: "Fecha de envío",
        en: "Shipped",
        width: 18.0,
        value: |m, c| c.date(m.shipped_at),
    },
    Column {
        code: "claimed_amount",
        es: "Monto reclamado",
        en: "Claimed amount",
        width: 14.0,
        value: |m, _| {
            m.claimed_amount
                .as_ref()
                .and_then(|a| a.amount.parse().ok())
                .map_or(Cell::Empty, Cell::Number)
        },
    },
    Column {
        code: "currency",
        es: "Moneda",
        en: "Currency",
        width: 8.0,
        value: |m, _| opt_text(m.claimed_amount.as_ref().map(|a| a.currency.as_str())),
    },
    Column {
        code: "resolved_at",
        es: "Fecha de resolución",
        en: "Resolved",
        width: 18.0,
        value: |m, c| c.date(m.resolved_at),
    },
];

/// Consultation columns; the first nine are the default report.
pub static CONSULTATION_COLUMNS: &[Column<Consultation>] = &[
    number(),
    status("Estado"),
    Column {
        code: "complexity",
        es: "Complejidad",
        en: "Complexity",
        width: 16.0,
        value: |m, c| text(m.complexity.label(c.locale)),
    },
    Column {
        code: "title",
        es: "Título",
        en: "Title",
        width: 36.0,
        value: |m, _| text(&*m.title),
    },
    description(),
    assignee(),
    created_at("Fecha"),
    Column {
        code: "due_at",
        es: "Vence",
        en: "Due",
        width: 18.0,
        value: |m, c| c.date(Some(m.due_at)),
    },
    Column {
        code: "solved_at",
        es: "Solución",
        en: "Solved",
        width: 18.0,
        value: |m, c| c.date(m.solved_at),
    },
    Column {
        code: "category",
        es: "Categoría",
        en: "Category",
        width: 26.0,
        value: |m, _| text(&*m.category),
    },
    Column {
        code: "order_reference",
        es: "Pedido",
        en: "Order",
        width: 16.0,
        value: |m, _| opt_text(m.order_reference.as_deref()),
    },
    account(),
];

/// A ticket type's report: its columns, how many of them the module's
/// report shows, and the stem of the file's name.
pub trait Reported: Sized + 'static {
    const COLUMNS: &'static [Column<Self>];
    /// The columns shown when none are asked for: the first this many.
    const DEFAULT_COLUMNS: usize;
    /// The file name's stem in Spanish and in English.
    const FILE_STEM: (&'static str, &'static str);

    fn file_stem(locale: Locale) -> &'static str {
        match (locale, Self::FILE_STEM) {
            (Locale::Es, (es, _)) => es,
            (Locale::En, (_, en)) => en,
        }
    }
}

impl Reported for Incident {
    const COLUMNS: &'static [Column<Self>] = INCIDENT_COLUMNS;
    /// No. … Resolución.
    const DEFAULT_COLUMNS: usize = 10;
    const FILE_STEM: (&'static str, &'static str) = ("incidencias", "incidents");
}

impl Reported for Consultation {
    const COLUMNS: &'static [Column<Self>] = CONSULTATION_COLUMNS;
    /// No. … Solución.
    const DEFAULT_COLUMNS: usize = 9;
    const FILE_STEM: (&'static str, &'static str) = ("consultas", "consultations");
}

/// The columns named by `codes` (in that order), or the default ones.
pub fn select<T: Reported>(codes: &[String]) -> Result<Vec<&'static Column<T>>> {
    let all = T::COLUMNS;
    if codes.is_empty() {
        return Ok(all.iter().take(T::DEFAULT_COLUMNS).collect());
    }
    if codes.len() > all.len() {
        return Err(Error::invalid(
            "columns",
            format!("at most {} columns", all.len()),
        ));
    }
    codes
        .iter()
        .enumerate()
        .map(|(i, code)| {
            all.iter().find(|c| c.code == code).ok_or_else(|| {
                let known: Vec<_> = all.iter().map(|c| c.code).collect();
                Error::invalid(
                    format!("columns[{i}]"),
                    format!("unknown column {code:?}; known: {}", known.join(", ")),
                )
            })
        })
        .collect()
}
