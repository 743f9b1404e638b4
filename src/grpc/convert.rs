//! Conversions between domain types and protobuf messages.
use prost_types::Timestamp;

use crate::domain::catalog::Catalog;
use crate::domain::catalog::{Carrier, Category};
use crate::domain::consultation::{Complexity, Consultation, ConsultationStatus};
use crate::domain::event::{Comment, Event, EventPayload, TicketType};
use crate::domain::incident::{Incident, IncidentKind, IncidentStatus, ResolutionReason, Stage};
use crate::domain::notify::Notifiable;
use crate::domain::principal::Locale;
use crate::domain::ticket::Header;
use crate::domain::{Error, Result};
use crate::pb;

/// Microseconds since the epoch → Timestamp.
pub fn timestamp(us: i64) -> Timestamp {
    Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

pub fn opt_timestamp(us: Option<i64>) -> Option<Timestamp> {
    us.map(timestamp)
}

/// Timestamp → microseconds, refusing values outside years 1970..=9999.
pub fn micros(field: &str, t: &Timestamp) -> Result<i64> {
    const MAX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(0..=MAX_SECONDS).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Error::invalid(
            field,
            "must be a valid timestamp between 1970 and 9999",
        ));
    }
    Ok(t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

pub fn actor_role(role: &str) -> pb::ActorRole {
    match role {
        "requester" => pb::ActorRole::Requester,
        "agent" => pb::ActorRole::Agent,
        "admin" => pb::ActorRole::Admin,
        "system" => pb::ActorRole::System,
        _ => pb::ActorRole::Unspecified,
    }
}

fn actor(id: &str, name: &str, role: &str) -> pb::Actor {
    pb::Actor {
        id: id.to_owned(),
        name: name.to_owned(),
        role: actor_role(role) as i32,
    }
}

/// Maps a domain enum to its proto enum and back, once, variant by variant
/// (their names are the same): `$to(domain) -> proto`, and `$parse(field,
/// number)` → `None` for UNSPECIFIED, INVALID_ARGUMENT naming the field for
/// a number the proto does not define.
macro_rules! proto_enum {
    ($domain:ident => pb::$pb:ident, $to:ident, $parse:ident { $($variant:ident),+ $(,)? }) => {
        pub fn $to(value: $domain) -> pb::$pb {
            match value {
                $($domain::$variant => pb::$pb::$variant),+
            }
        }

        pub fn $parse(field: &str, value: i32) -> Result<Option<$domain>> {
            match pb::$pb::try_from(value) {
                Ok(pb::$pb::Unspecified) => Ok(None),
                $(Ok(pb::$pb::$variant) => Ok(Some($domain::$variant)),)+
                Err(_) => Err(Error::invalid(field, format!("unknown value {value}"))),
            }
        }
    };
}

proto_enum!(IncidentStatus => pb::IncidentStatus, incident_status, incident_status_of {
    NewTicket, MissingData, InProgress, PreApproved, Finalized, Declined, Cancelled,
});
proto_enum!(IncidentKind => pb::IncidentKind, incident_kind, incident_kind_of {
    Shipment, AdditionalCharge,
});
proto_enum!(Stage => pb::IncidentStage, stage, stage_of { New, InReview, Resolved });
proto_enum!(ResolutionReason => pb::ResolutionReason, reason, reason_of {
    Resolved, Indemnified, NoCustomerResponse, OutOfClaimWindow, CarrierRejected, Cancelled,
});
proto_enum!(Complexity => pb::Complexity, complexity, complexity_of {
    Simple, Collaborative, Technology,
});
proto_enum!(ConsultationStatus => pb::ConsultationStatus, consultation_status, consultation_status_of {
    Received, InProgress, Solved,
});
proto_enum!(TicketType => pb::TicketType, ticket_type, ticket_type_of { Incident, Consultation });

/// A value the request must carry: UNSPECIFIED is INVALID_ARGUMENT saying
/// `what` is required.
fn required<T>(field: &str, value: Result<Option<T>>, what: &str) -> Result<T> {
    value?.ok_or_else(|| Error::invalid(field, format!("{what} is required")))
}

pub fn parse_incident_status(field: &str, value: i32) -> Result<IncidentStatus> {
    required(field, incident_status_of(field, value), "a status")
}

pub fn parse_incident_kind(field: &str, value: i32) -> Result<IncidentKind> {
    let kind = incident_kind_of(field, value);
    required(field, kind, "a kind (SHIPMENT or ADDITIONAL_CHARGE)")
}

pub fn parse_consultation_status(field: &str, value: i32) -> Result<ConsultationStatus> {
    required(field, consultation_status_of(field, value), "a status")
}

pub fn parse_complexity(field: &str, value: i32) -> Result<Complexity> {
    required(field, complexity_of(field, value), "a complexity")
}

/// A ticket message of type `$message` with the fields every ticket has
/// from `$header`, and the fields of its own type.
macro_rules! ticket_message {
    ($message:path, $header:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let h: &Header = $header;
        $message {
            id: h.id.clone(),
            number: h.number_or_zero(),
            account: h.account.clone(),
            requester: Some(actor(&h.requester.id, &h.requester.name, "requester")),
            assignee_id: h.assignee.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
            assignee_name: h.assignee.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            version: h.version,
            created_at: Some(timestamp(h.created_at)),
            updated_at: Some(timestamp(h.updated_at)),
            sla_breached: h.breached_at.is_some(),
            $($field: $value),*
        }
    }};
}

/// An incident as read at `now` (µs), which sets its remaining SLA time.
pub fn incident(t: &Incident, catalog: &Catalog, locale: Locale, now: i64) -> pb::Incident {
    let (status, kind) = (t.status, t.kind);
    let estimate = t.estimate(now);
    ticket_message!(pb::Incident, &t.header, {
        kind: incident_kind(kind) as i32,
        kind_label: kind.label(locale).to_owned(),
        status: incident_status(status) as i32,
        status_label: status.label(locale).to_owned(),
        stage: stage(status.stage()) as i32,
        stage_label: status.stage().label(locale).to_owned(),
        tracking_number: t.tracking_number.as_str().to_owned(),
        carrier_code: t.carrier.clone(),
        carrier_name: catalog.carrier_name(&t.carrier).to_owned(),
        category_code: t.category.clone(),
        category_name: catalog.category_name(&t.category).to_owned(),
        description: t.description.clone(),
        shipped_at: opt_timestamp(t.shipped_at),
        claimed_amount: t.claimed_amount.as_ref().map(|m| pb::Money {
            amount: m.amount.clone(),
            currency: m.currency.clone(),
        }),
        resolution_reason: t.resolution_reason.map_or(pb::ResolutionReason::Unspecified, reason) as i32,
        resolution_note: t.resolution_note.clone().unwrap_or_default(),
        resolved_at: opt_timestamp(t.resolved_at),
        estimated_resolution_at: opt_timestamp(estimate),
        sla_remaining_seconds: match (t.resolved_at, estimate) {
            (None, Some(at)) => (at - now).div_euclid(1_000_000),
            _ => 0,
        },
        sla_paused: t.paused_since.is_some(),
        missing_data_closes_at: opt_timestamp(t.closes_at()),
    })
}

/// The tab counts of a list: every incident, then per stage.
pub fn stage_counts(counts: &[(IncidentStatus, i64)]) -> pb::StageCounts {
    let of = |stage: Stage| total(counts, |s| s.stage() == stage);
    pb::StageCounts {
        all: total(counts, |_| true),
        new: of(Stage::New),
        in_review: of(Stage::InReview),
        resolved: of(Stage::Resolved),
    }
}

/// The status counts of a consultation list: every one, then per status.
pub fn status_counts(counts: &[(ConsultationStatus, i64)]) -> pb::StatusCounts {
    let of = |status: ConsultationStatus| total(counts, |s| *s == status);
    pb::StatusCounts {
        all: total(counts, |_| true),
        received: of(ConsultationStatus::Received),
        in_progress: of(ConsultationStatus::InProgress),
        solved: of(ConsultationStatus::Solved),
    }
}

/// The sum of the counts whose status `pick` accepts.
fn total<S>(counts: &[(S, i64)], pick: impl Fn(&S) -> bool) -> i64 {
    counts.iter().filter(|(s, _)| pick(s)).map(|(_, n)| n).sum()
}

/// Declares the Incident fields a read_mask may name, once: the list that
/// masks are checked against and the copy that applies one come from the
/// same names, and the copy destructures `pb::Incident` without `..`, so a
/// field added to the proto breaks the build until it is listed here.
macro_rules! incident_read_mask {
    ($($field:ident),+ $(,)?) => {
        /// The Incident fields a read_mask may name.
        pub const INCIDENT_FIELDS: &[&str] = &["id", $(stringify!($field)),+];

        /// Keeps only the fields named in `paths` (and `id`).
        pub fn mask_incident(full: pb::Incident, paths: &[String]) -> pb::Incident {
            let keep = |name: &str| paths.iter().any(|p| p == name);
            let pb::Incident { id, $($field),+ } = full;
            let mut out = pb::Incident { id, ..Default::default() };
            $( if keep(stringify!($field)) { out.$field = $field; } )+
            out
        }
    };
}

incident_read_mask!(
    number,
    kind,
    kind_label,
    status,
    status_label,
    stage,
    stage_label,
    tracking_number,
    carrier_code,
    carrier_name,
    category_code,
    category_name,
    description,
    shipped_at,
    claimed_amount,
    account,
    requester,
    assignee_id,
    assignee_name,
    resolution_reason,
    resolution_note,
    version,
    created_at,
    updated_at,
    resolved_at,
    estimated_resolution_at,
    sla_remaining_seconds,
    sla_breached,
    sla_paused,
    missing_data_closes_at,
);

pub fn comment(m: &Comment) -> pb::Comment {
    pb::Comment {
        id: m.id.clone(),
        ticket_id: m.ticket_id.clone(),
        author: Some(actor(&m.author.id, &m.author.name, &m.author.role)),
        body: m.body.clone(),
        internal: m.internal,
        created_at: Some(timestamp(m.created_at)),
    }
}

fn status_label(ticket_type: TicketType, status: &str, locale: Locale) -> String {
    match ticket_type {
        TicketType::Incident => IncidentStatus::parse(status).map(|s| s.label(locale).to_owned()),
        TicketType::Consultation => {
            ConsultationStatus::parse(status).map(|s| s.label(locale).to_owned())
        }
    }
    .unwrap_or_else(|| status.to_owned())
}

fn status_name(ticket_type: TicketType, status: &str) -> String {
    match ticket_type {
        TicketType::Incident => format!("INCIDENT_STATUS_{status}"),
        TicketType::Consultation => format!("CONSULTATION_STATUS_{status}"),
    }
}

pub fn event(e: &Event, locale: Locale) -> pb::TicketEvent {
    use pb::ticket_event::Payload;
    let kind = e.ticket_type;
    let payload = match e.payload.clone() {
        EventPayload::Created { status } => Payload::Created(pb::TicketCreated {
            status: status_name(kind, &status),
            status_label: status_label(kind, &status, locale),
        }),
        EventPayload::StatusChanged {
            from,
            to,
            reason: r,
            comment,
        } => Payload::StatusChanged(pb::StatusChanged {
            from_status: status_name(kind, &from),
            to_status: status_name(kind, &to),
            from_label: status_label(kind, &from, locale),
            to_label: status_label(kind, &to, locale),
            reason: r
                .as_deref()
                .and_then(ResolutionReason::parse)
                .map_or(pb::ResolutionReason::Unspecified, reason) as i32,
            comment: comment.unwrap_or_default(),
        }),
        EventPayload::CommentAdded {
            comment_id,
            body,
            internal,
        } => Payload::CommentAdded(pb::CommentAdded {
            comment: Some(pb::Comment {
                id: comment_id,
                ticket_id: e.ticket_id.clone(),
                author: Some(actor(&e.actor.id, &e.actor.name, &e.actor.role)),
                body,
                internal,
                created_at: Some(timestamp(e.at)),
            }),
        }),
        EventPayload::Assigned {
            assignee_id,
            assignee_name,
            previous_assignee_id,
        } => Payload::Assigned(pb::Assigned {
            assignee_id: assignee_id.unwrap_or_default(),
            assignee_name: assignee_name.unwrap_or_default(),
            previous_assignee_id: previous_assignee_id.unwrap_or_default(),
        }),
        EventPayload::Reclassified {
            from,
            to,
            due_at,
            number,
        } => Payload::Reclassified(pb::Reclassified {
            from: complexity_from_name(&from) as i32,
            to: complexity_from_name(&to) as i32,
            due_at: opt_timestamp(due_at),
            number: number.unwrap_or_default(),
        }),
        EventPayload::SlaBreached { due_at } => Payload::SlaBreached(pb::SlaBreached {
            due_at: Some(timestamp(due_at)),
        }),
    };
    pb::TicketEvent {
        sequence: e.sequence as u64,
        ticket_id: e.ticket_id.clone(),
        ticket_type: ticket_type(kind) as i32,
        ticket_number: e.ticket_number,
        occurred_at: Some(timestamp(e.at)),
        actor: Some(actor(&e.actor.id, &e.actor.name, &e.actor.role)),
        payload: Some(payload),
    }
}

/// The carriers of the catalog, in display order.
pub fn carriers(catalog: &Catalog) -> Vec<pb::Carrier> {
    catalog.carriers.iter().map(carrier).collect()
}

fn carrier(m: &Carrier) -> pb::Carrier {
    pb::Carrier {
        code: m.code.clone(),
        name: m.name.clone(),
        claim_window_days: m.claim_window_days,
    }
}

pub fn category(m: &Category) -> pb::Category {
    pb::Category {
        code: m.code.clone(),
        name: m.name.clone(),
        ticket_type: ticket_type(m.ticket_type) as i32,
        incident_kind: m
            .incident_kind
            .map_or(pb::IncidentKind::Unspecified, incident_kind) as i32,
        complexity: m.complexity.map_or(pb::Complexity::Unspecified, complexity) as i32,
        resolution_target_days: m.resolution_target_days.unwrap_or_default(),
        target_minutes: 0,
        claim_window_days: m.claim_window_days.unwrap_or_default(),
    }
}

fn complexity_from_name(name: &str) -> pb::Complexity {
    Complexity::parse(name).map_or(pb::Complexity::Unspecified, complexity)
}

pub fn consultation(t: &Consultation, locale: Locale) -> pb::Consultation {
    let (status, level) = (t.status, t.complexity);
    ticket_message!(pb::Consultation, &t.header, {
        status: consultation_status(status) as i32,
        status_label: status.label(locale).to_owned(),
        complexity: complexity(level) as i32,
        complexity_label: level.label(locale).to_owned(),
        category_code: t.category.clone(),
        title: t.title.clone(),
        description: t.description.clone(),
        order_reference: t.order_reference.clone().unwrap_or_default(),
        due_at: Some(timestamp(t.due_at)),
        solved_at: opt_timestamp(t.solved_at),
    })
}
