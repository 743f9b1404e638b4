//! The report columns of each ticket type: code, labels (es/en), width and value.
use chrono::DateTime;
use chrono_tz::Tz;

use super::{Cell, Header};
use crate::domain::catalog::Catalog;
use crate::domain::consultation::{Complexity, ConsultationStatus};
use crate::domain::incident::{IncidentKind, IncidentStatus, ResolutionReason};
use crate::domain::principal::Locale;
use crate::domain::{Error, Result};
use crate::store::entity::{consultation, incident};

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

/// Incident columns; the first ten are the module's default report.
pub static INCIDENT_COLUMNS: &[Column<incident::Model>] = &[
    Column {
        code: "number",
        es: "No.",
        en: "No.",
        width: 8.0,
        value: |m, _| Cell::Number(m.number as f64),
    },
    Column {
        code: "status",
        es: "Estatus",
        en: "Status",
        width: 16.0,
        value: |m, c| opt_text(IncidentStatus::parse(&m.status).map(|s| s.label(c.locale))),
    },
    Column {
        code: "kind",
        es: "Tipo",
        en: "Type",
        width: 16.0,
        value: |m, c| opt_text(IncidentKind::parse(&m.kind).map(|k| k.label(c.locale))),
    },
    Column {
        code: "tracking_number",
        es: "Guía",
        en: "Tracking number",
        width: 20.0,
        value: |m, _| text(&*m.tracking_number),
    },
    Column {
        code: "category",
        es: "Categoría",
        en: "Category",
        width: 26.0,
        value: |m, c| text(c.catalog.category_name(&m.category_code)),
    },
    Column {
        code: "carrier",
        es: "Paquetería",
        en: "Carrier",
        width: 16.0,
        value: |m, c| text(c.catalog.carrier_name(&m.carrier_code)),
    },
    Column {
        code: "assignee",
        es: "Asesor",
        en: "Agent",
        width: 20.0,
        value: |m, _| opt_text(m.assignee_name.as_deref()),
    },
    Column {
        code: "created_at",
        es: "Fecha de ticket",
        en: "Created",
        width: 18.0,
        value: |m, c| c.date(Some(m.created_at)),
    },
    Column {
        code: "estimated_resolution_at",
        es: "Fecha estimada",
        en: "Estimated resolution",
        width: 18.0,
        // created + the category's target, moved on by time spent waiting for
        // data, as the API shows it.
        value: |m, c| {
            c.date(crate::domain::incident::estimate_at(
                m.estimated_resolution_at,
                m.paused_since,
                c.now,
            ))
        },
    },
    Column {
        code: "resolution",
        es: "Resolución",
        en: "Resolution",
        width: 30.0,
        value: |m, c| {
            let reason = m
                .resolution_reason
                .as_deref()
                .and_then(ResolutionReason::parse)
                .map(|r| r.label(c.locale));
            match (reason, m.resolution_note.as_deref()) {
                (Some(r), Some(note)) => text(format!("{r}: {note}")),
                (Some(r), None) => text(r),
                (None, note) => opt_text(note),
            }
        },
    },
    Column {
        code: "description",
        es: "Descripción",
        en: "Description",
        width: 40.0,
        value: |m, _| text(&*m.description),
    },
    Column {
        code: "account",
        es: "Cuenta",
        en: "Account",
        width: 16.0,
        value: |m, _| text(&*m.account),
    },
    Column {
        code: "requester",
        es: "Solicitante",
        en: "Requester",
        width: 20.0,
        value: |m, _| text(&*m.requester_name),
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
                .as_deref()
                .and_then(|a| a.parse().ok())
                .map_or(Cell::Empty, Cell::Number)
        },
    },
    Column {
        code: "currency",
        es: "Moneda",
        en: "Currency",
        width: 8.0,
        value: |m, _| opt_text(m.claimed_currency.as_deref()),
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
pub static CONSULTATION_COLUMNS: &[Column<consultation::Model>] = &[
    Column {
        code: "number",
        es: "No.",
        en: "No.",
        width: 8.0,
        value: |m, _| m.number.map_or(Cell::Empty, |n| Cell::Number(n as f64)),
    },
    Column {
        code: "status",
        es: "Estado",
        en: "Status",
        width: 16.0,
        value: |m, c| opt_text(ConsultationStatus::parse(&m.status).map(|s| s.label(c.locale))),
    },
    Column {
        code: "complexity",
        es: "Complejidad",
        en: "Complexity",
        width: 16.0,
        value: |m, c| opt_text(Complexity::parse(&m.complexity).map(|s| s.label(c.locale))),
    },
    Column {
        code: "title",
        es: "Título",
        en: "Title",
        width: 36.0,
        value: |m, _| text(&*m.title),
    },
    Column {
        code: "description",
        es: "Descripción",
        en: "Description",
        width: 40.0,
        value: |m, _| text(&*m.description),
    },
    Column {
        code: "assignee",
        es: "Asesor",
        en: "Agent",
        width: 20.0,
        value: |m, _| opt_text(m.assignee_name.as_deref()),
    },
    Column {
        code: "created_at",
        es: "Fecha",
        en: "Created",
        width: 18.0,
        value: |m, c| c.date(Some(m.created_at)),
    },
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
        value: |m, _| text(&*m.category_code),
    },
    Column {
        code: "order_reference",
        es: "Pedido",
        en: "Order",
        width: 16.0,
        value: |m, _| opt_text(m.order_reference.as_deref()),
    },
    Column {
        code: "account",
        es: "Cuenta",
        en: "Account",
        width: 16.0,
        value: |m, _| text(&*m.account),
    },
];

/// The columns named by `codes` (in that order), or the first `default` ones.
pub fn select<M>(
    all: &'static [Column<M>],
    default: usize,
    codes: &[String],
) -> Result<Vec<&'static Column<M>>> {
    if codes.is_empty() {
        return Ok(all.iter().take(default).collect());
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
