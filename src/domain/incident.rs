//! Incidents (DESIGN §3): the status machine, the vocabulary around it, and
//! the rules that file and move one — pure functions of the incident, the
//! command, the caller's role, the instant and the calendar.
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;

use super::calendar::Calendar;
use super::catalog::{Carrier, Catalog};
use super::event::{EventPayload, TicketType};
use super::principal::Role;
use super::ticket::{By, Header, Named, Outcome, Ticket, codes_named, ticket_basics};
use super::{Error, Result};

string_enum!(
    /// The list tabs.
    Stage {
        New = "NEW" ("Nuevos", "New"),
        InReview = "IN_REVIEW" ("En revisión", "In review"),
        Resolved = "RESOLVED" ("Resueltos", "Resolved"),
    }
);

string_enum!(
    IncidentStatus {
        NewTicket = "NEW_TICKET" ("Nuevo ticket", "New ticket"),
        MissingData = "MISSING_DATA" ("Datos faltantes", "Missing data"),
        InProgress = "IN_PROGRESS" ("En curso", "In progress"),
        PreApproved = "PRE_APPROVED" ("Pre aprobado", "Pre-approved"),
        Finalized = "FINALIZED" ("Finalizado", "Finalized"),
        Declined = "DECLINED" ("Declinado", "Declined"),
        Cancelled = "CANCELLED" ("Cancelado", "Cancelled"),
    }
);

impl IncidentStatus {
    pub fn stage(self) -> Stage {
        match self {
            Self::NewTicket | Self::MissingData => Stage::New,
            Self::InProgress | Self::PreApproved => Stage::InReview,
            Self::Finalized | Self::Declined | Self::Cancelled => Stage::Resolved,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.stage() == Stage::Resolved
    }

    /// The statuses of one stage.
    pub fn of_stage(stage: Stage) -> Vec<Self> {
        Self::ALL
            .iter()
            .copied()
            .filter(|s| s.stage() == stage)
            .collect()
    }
}

string_enum!(
    ResolutionReason {
        Resolved = "RESOLVED" ("Resuelto", "Resolved"),
        Indemnified = "INDEMNIFIED" ("Indemnizado", "Indemnified"),
        NoCustomerResponse = "NO_CUSTOMER_RESPONSE" ("Sin respuesta del cliente", "No customer response"),
        OutOfClaimWindow = "OUT_OF_CLAIM_WINDOW" ("Fuera del plazo de reclamación", "Out of claim window"),
        CarrierRejected = "CARRIER_REJECTED" ("Rechazado por la paquetería", "Rejected by the carrier"),
        Cancelled = "CANCELLED" ("Cancelado", "Cancelled"),
    }
);

/// What a permitted transition asks of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionRule {
    /// A comment saying what is missing is required.
    pub needs_comment: bool,
    /// The reasons the caller must choose from; empty means none is taken.
    pub reasons: &'static [ResolutionReason],
}

const FREE: TransitionRule = TransitionRule {
    needs_comment: false,
    reasons: &[],
};

/// Who may make a transition by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Agent,
    RequesterOrAgent,
}

/// Whether `role` may ever move an incident to `to`, whatever its status:
/// requesters may only cancel. Decided before the version and the status are
/// looked at, so a requester is never told to retry what it may not do.
pub fn may_change_to(to: IncidentStatus, role: Role) -> Result<()> {
    match (role, to) {
        (Role::Agent | Role::Admin, _) | (Role::Requester, IncidentStatus::Cancelled) => Ok(()),
        (Role::Requester, _) => Err(Error::PermissionDenied(format!(
            "a requester may only cancel; moving an incident to {} is for agents",
            to.as_str()
        ))),
    }
}

/// Decides whether `role` may move an incident from `from` to `to` through
/// ChangeIncidentStatus or CancelIncident. The system's own transitions
/// (return from MISSING_DATA, auto-close, created declined) do not go through here.
///
/// Illegal pairs are FAILED_PRECONDITION naming both statuses; legal pairs the
/// role may not make are PERMISSION_DENIED.
pub fn transition(from: IncidentStatus, to: IncidentStatus, role: Role) -> Result<TransitionRule> {
    use IncidentStatus::*;
    use ResolutionReason as R;
    let (allowed, rule) = match (from, to) {
        (NewTicket | InProgress, MissingData) => (
            Allowed::Agent,
            TransitionRule {
                needs_comment: true,
                reasons: &[],
            },
        ),
        (NewTicket, InProgress) | (InProgress, PreApproved) => (Allowed::Agent, FREE),
        (InProgress | PreApproved, Finalized) => (
            Allowed::Agent,
            TransitionRule {
                needs_comment: false,
                reasons: &[R::Resolved, R::Indemnified],
            },
        ),
        (NewTicket | InProgress | PreApproved, Declined) => (
            Allowed::Agent,
            TransitionRule {
                needs_comment: false,
                reasons: &[R::OutOfClaimWindow, R::CarrierRejected],
            },
        ),
        (NewTicket | MissingData | InProgress | PreApproved, Cancelled) => {
            (Allowed::RequesterOrAgent, FREE)
        }
        (MissingData, NewTicket | InProgress) => {
            return Err(Error::FailedPrecondition(format!(
                "cannot change status from {} to {}: an incident leaves MISSING_DATA by itself \
                 when the requester comments",
                from.as_str(),
                to.as_str()
            )));
        }
        (
            NewTicket | MissingData | InProgress | PreApproved | Finalized | Declined | Cancelled,
            _,
        ) => {
            return Err(Error::FailedPrecondition(format!(
                "cannot change status from {} to {}",
                from.as_str(),
                to.as_str()
            )));
        }
    };
    match (allowed, role) {
        (_, Role::Agent | Role::Admin) | (Allowed::RequesterOrAgent, Role::Requester) => Ok(rule),
        (Allowed::Agent, Role::Requester) => Err(Error::PermissionDenied(format!(
            "a requester may only cancel; changing status from {} to {} is for agents",
            from.as_str(),
            to.as_str()
        ))),
    }
}

/// An incident's estimated resolution as of `now`: the stored estimate
/// (created + the category's target, already moved on by earlier waits for
/// data), moved on by the wait under way, if any — while the incident waits
/// for the store's data (`paused_since`), its estimate moves with the clock.
/// The API and the report both show this, so they cannot disagree.
pub fn estimate_at(stored: Option<i64>, paused_since: Option<i64>, now: i64) -> Option<i64> {
    let paused = paused_since.map_or(0, |since| (now - since).max(0));
    stored.map(|at| at + paused)
}

string_enum!(
    /// Shipment problem or additional-charge dispute.
    IncidentKind {
        Shipment = "SHIPMENT" ("Envío", "Shipment"),
        AdditionalCharge = "ADDITIONAL_CHARGE" ("Cargo adicional", "Additional charge"),
    }
);

/// A tracking number (guía): 3 to 64 letters, digits, '-' or '_'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingNumber(String);

impl TrackingNumber {
    pub fn parse(value: &str) -> Result<Self> {
        let value = super::text::required("tracking_number", value, 64)?;
        if value.chars().count() < 3
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid(
                "tracking_number",
                "must be 3 to 64 letters, digits, '-' or '_'",
            ));
        }
        Ok(Self(value))
    }

    /// A number read back from the store, which only ever held parsed ones.
    pub fn stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A claimed amount: a non-negative decimal with at most 2 fractional
/// digits, and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount: String,
    pub currency: String,
}

impl Money {
    /// Checks both parts; each violation names its field under `field`.
    pub fn parse(field: &str, amount: &str, currency: &str) -> Result<Self> {
        let mut v = super::error::Violations::default();
        let amount = amount.trim();
        let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        let amount_ok = !int.is_empty()
            && int.len() <= 12
            && digits(int)
            && frac.len() <= 2
            && digits(frac)
            && frac.is_empty() != amount.contains('.');
        if !amount_ok {
            v.push(
                format!("{field}.amount"),
                "must be a non-negative decimal like 1250.50 (at most 12 integer and 2 fractional digits)",
            );
        }
        let currency = currency.trim();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            v.push(
                format!("{field}.currency"),
                "must be an ISO 4217 code such as MXN",
            );
        }
        v.into_result()?;
        Ok(Self {
            amount: amount.to_owned(),
            currency: currency.to_owned(),
        })
    }
}

/// An incident (instants in µs since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub header: Header,
    pub kind: IncidentKind,
    pub status: IncidentStatus,
    /// While MISSING_DATA: the status it returns to.
    pub previous_status: Option<IncidentStatus>,
    pub tracking_number: TrackingNumber,
    pub carrier: String,
    pub category: String,
    pub description: String,
    pub shipped_at: Option<i64>,
    pub claimed_amount: Option<Money>,
    pub resolution_reason: Option<ResolutionReason>,
    pub resolution_note: Option<String>,
    pub resolved_at: Option<i64>,
    /// While MISSING_DATA: when the system finalizes it for want of an answer.
    pub auto_close_at: Option<i64>,
    /// Fecha estimada as stored: created + the category's target, moved on by
    /// earlier waits for data (see `estimate_at` for the value at an instant).
    pub estimated_resolution_at: Option<i64>,
    /// While MISSING_DATA: since when the estimate is paused.
    pub paused_since: Option<i64>,
}

/// A CreateIncident request, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub kind: IncidentKind,
    pub tracking_number: TrackingNumber,
    pub carrier: String,
    pub category: String,
    pub description: String,
    pub shipped_at: Option<i64>,
    pub claimed_amount: Option<Money>,
    pub idempotency_key: Option<String>,
    /// Where the requester's e-mails go, if not the token's address.
    pub contact_email: Option<String>,
}

impl NewIncident {
    /// A digest of everything but the idempotency key: a retry must match it.
    pub fn fingerprint(&self) -> String {
        let shipped = self.shipped_at.map(|t| t.to_string()).unwrap_or_default();
        let amount = self
            .claimed_amount
            .as_ref()
            .map(|m| format!("{} {}", m.amount, m.currency))
            .unwrap_or_default();
        super::ticket::fingerprint([
            self.kind.as_str(),
            self.tracking_number.as_str(),
            &self.carrier,
            &self.category,
            &self.description,
            &shipped,
            &amount,
        ])
    }
}

/// A status change asked through ChangeIncidentStatus or CancelIncident.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub to: IncidentStatus,
    pub reason: Option<ResolutionReason>,
    pub comment: Option<String>,
    /// Free text kept as the resolution note (cancellations).
    pub note: Option<String>,
}

impl StatusChange {
    /// CancelIncident: the requester's reason is kept as the resolution note.
    pub fn cancellation(reason: String) -> Self {
        Self {
            to: IncidentStatus::Cancelled,
            reason: None,
            comment: None,
            note: Some(reason),
        }
    }
}

/// An incident waiting for the store's data this long, in business time,
/// without a requester comment, is finalized by the system.
pub const MISSING_DATA_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// Days until the estimate when a category sets none.
const DEFAULT_TARGET_DAYS: i32 = 21;
/// How far ahead of our clock a shipping date may be (the caller's clock skew).
const SHIPPING_SKEW: i64 = 5 * 60 * 1_000_000;
const DAY: i64 = 86_400_000_000;

impl Incident {
    /// Files `new` under `header`: checks it against the catalog, sets the
    /// estimate, and declines at once what comes after the claim window.
    pub fn file(
        header: Header,
        new: NewIncident,
        catalog: &Catalog,
        time_zone: Tz,
    ) -> Result<Outcome<Incident>> {
        let now = header.created_at;
        let Some(carrier) = catalog.carrier(&new.carrier) else {
            return Err(Error::invalid(
                "carrier",
                format!("unknown carrier {:?}; see ListCarriers", new.carrier),
            ));
        };
        let target_days = match catalog.category(&new.category) {
            Some(c)
                if c.ticket_type == TicketType::Incident && c.incident_kind == Some(new.kind) =>
            {
                c.resolution_target_days.unwrap_or(DEFAULT_TARGET_DAYS)
            }
            Some(_) => {
                return Err(Error::invalid(
                    "category",
                    format!(
                        "category {:?} is not an incident category of kind {}",
                        new.category,
                        new.kind.as_str()
                    ),
                ));
            }
            None => {
                return Err(Error::invalid(
                    "category",
                    format!("unknown category {:?}; see ListCategories", new.category),
                ));
            }
        };
        if new.shipped_at.is_some_and(|t| t > now + SHIPPING_SKEW) {
            return Err(Error::invalid("shipped_at", "must not be in the future"));
        }
        let window = catalog.claim_window_days(carrier, &new.category);
        let late = new
            .shipped_at
            .and_then(|shipped| outside_claim_window(carrier, window, shipped, now, time_zone));
        let mut incident = Incident {
            header,
            kind: new.kind,
            status: IncidentStatus::NewTicket,
            previous_status: None,
            tracking_number: new.tracking_number,
            carrier: new.carrier,
            category: new.category,
            description: new.description,
            shipped_at: new.shipped_at,
            claimed_amount: new.claimed_amount,
            resolution_reason: None,
            resolution_note: None,
            resolved_at: None,
            auto_close_at: None,
            estimated_resolution_at: Some(now + i64::from(target_days) * DAY),
            paused_since: None,
        };
        let created = EventPayload::Created {
            status: IncidentStatus::NewTicket.as_str().to_owned(),
        };
        let mut events = vec![(By::Caller, created)];
        // Filed after the claim window: created already declined, so the store sees why.
        if let Some(note) = late {
            incident = incident.moved(IncidentStatus::Declined, now, None);
            incident.resolution_reason = Some(ResolutionReason::OutOfClaimWindow);
            incident.resolution_note = Some(note.clone());
            events.push((
                By::System,
                status_changed(
                    IncidentStatus::NewTicket,
                    IncidentStatus::Declined,
                    Some(ResolutionReason::OutOfClaimWindow),
                    Some(note),
                ),
            ));
        }
        Ok(Outcome {
            next: incident,
            comment: None,
            events,
        })
    }

    /// ChangeIncidentStatus and CancelIncident: who may, whether the machine
    /// allows it, what the change must carry, and the incident after it.
    /// Entering MISSING_DATA starts the auto-close clock on the calendar.
    pub fn change_status(
        &self,
        change: StatusChange,
        role: Role,
        now: i64,
        calendar: &Calendar,
    ) -> Result<Outcome<Incident>> {
        let to = change.to;
        let rule = transition(self.status, to, role)?;
        if rule.needs_comment && change.comment.is_none() {
            return Err(Error::invalid(
                "comment",
                format!(
                    "a comment saying what is missing is required to move to {}",
                    to.as_str()
                ),
            ));
        }
        let reason = match (rule.reasons, change.reason) {
            _ if to == IncidentStatus::Cancelled => match change.reason {
                None | Some(ResolutionReason::Cancelled) => Some(ResolutionReason::Cancelled),
                Some(r) => {
                    return Err(Error::invalid(
                        "reason",
                        format!("{} takes no reason, got {}", to.as_str(), r.as_str()),
                    ));
                }
            },
            ([], None) => None,
            ([], Some(r)) => {
                return Err(Error::invalid(
                    "reason",
                    format!("{} takes no reason, got {}", to.as_str(), r.as_str()),
                ));
            }
            (allowed, Some(r)) if allowed.contains(&r) => Some(r),
            (allowed, _) => {
                let names: Vec<_> = allowed.iter().map(|r| r.as_str()).collect();
                return Err(Error::invalid(
                    "reason",
                    format!(
                        "moving to {} requires a reason among {}",
                        to.as_str(),
                        names.join(", ")
                    ),
                ));
            }
        };
        let auto_close_at = (to == IncidentStatus::MissingData).then(|| {
            let start = DateTime::from_timestamp_micros(now).unwrap_or_default();
            calendar.add(start, MISSING_DATA_TIMEOUT).timestamp_micros()
        });
        let mut next = self.moved(to, now, auto_close_at);
        if to.is_terminal() {
            next.resolution_reason = reason;
            next.resolution_note = change.note.clone();
        }
        let event = status_changed(
            self.status,
            to,
            reason,
            change.comment.clone().or(change.note),
        );
        Ok(Outcome {
            next,
            comment: change.comment,
            events: vec![(By::Caller, event)],
        })
    }

    /// Finalizes an incident whose wait for data has run out at `now`, by
    /// the system; `None` when it is not (or no longer) due.
    pub fn auto_close(&self, now: i64) -> Option<Outcome<Incident>> {
        let due = self.auto_close_at.is_some_and(|at| at <= now);
        if !due || self.status != IncidentStatus::MissingData {
            return None;
        }
        let reason = ResolutionReason::NoCustomerResponse;
        let mut next = self.moved(IncidentStatus::Finalized, now, None);
        next.resolution_reason = Some(reason);
        let event = status_changed(self.status, next.status, Some(reason), None);
        Some(Outcome::new(next, By::System, event))
    }

    /// The incident after moving to `to` at `now`: the one place where a
    /// status change keeps its bookkeeping. Entering MISSING_DATA remembers
    /// where it came from, pauses the estimate and starts the auto-close
    /// clock (`auto_close_at`); any other status forgets both and moves the
    /// estimate on by the wait; a terminal status is resolved now. One
    /// version more.
    fn moved(&self, to: IncidentStatus, now: i64, auto_close_at: Option<i64>) -> Incident {
        let mut next = self.clone();
        next.status = to;
        if to == IncidentStatus::MissingData {
            next.previous_status = Some(self.status);
            next.paused_since = Some(now);
            next.auto_close_at = auto_close_at;
        } else {
            next.previous_status = None;
            next.auto_close_at = None;
            let since = next.paused_since.take();
            next.estimated_resolution_at = estimate_at(next.estimated_resolution_at, since, now);
        }
        if to.is_terminal() {
            next.resolved_at = Some(now);
        }
        next.header.touch(now);
        next
    }

    /// The estimate as of `now` (see `estimate_at`).
    pub fn estimate(&self, now: i64) -> Option<i64> {
        estimate_at(self.estimated_resolution_at, self.paused_since, now)
    }
}

impl Ticket for Incident {
    ticket_basics!(TicketType::Incident, IncidentStatus);

    /// Paused while waiting for the store's data.
    fn target_at(&self) -> Option<i64> {
        match self.paused_since {
            Some(_) => None,
            None => self.estimated_resolution_at,
        }
    }

    fn search_fields(&self) -> Vec<String> {
        vec![
            self.tracking_number.as_str().to_owned(),
            self.category.clone(),
            self.carrier.clone(),
            self.description.clone(),
        ]
    }

    fn named_by(catalog: &Catalog, folded: &str) -> Vec<(Named, Vec<String>)> {
        let categories = catalog
            .categories_of(TicketType::Incident)
            .map(|c| (c.code.as_str(), c.name.as_str()));
        let carriers = catalog
            .carriers
            .iter()
            .map(|c| (c.code.as_str(), c.name.as_str()));
        vec![
            (Named::Status, IncidentStatus::named_by(folded)),
            (Named::Kind, IncidentKind::named_by(folded)),
            (Named::Category, codes_named(categories, folded)),
            (Named::Carrier, codes_named(carriers, folded)),
        ]
    }

    /// The auto-close while waiting for data, else the estimate.
    fn next_deadline(&self) -> Option<i64> {
        if self.auto_close_at.is_some() {
            return self.auto_close_at;
        }
        if self.header.breached_at.is_some() || self.is_terminal() {
            return None;
        }
        self.target_at()
    }

    /// A requester's comment on an incident waiting for its data returns it,
    /// by the system, to the status it came from.
    fn on_requester_comment(&self, now: i64) -> Option<Outcome<Incident>> {
        if self.status != IncidentStatus::MissingData {
            return None;
        }
        let back = self.previous_status.unwrap_or(IncidentStatus::NewTicket);
        let next = self.moved(back, now, None);
        let event = status_changed(self.status, back, None, None);
        Some(Outcome::new(next, By::System, event))
    }
}

fn status_changed(
    from: IncidentStatus,
    to: IncidentStatus,
    reason: Option<ResolutionReason>,
    comment: Option<String>,
) -> EventPayload {
    EventPayload::StatusChanged {
        from: from.as_str().to_owned(),
        to: to.as_str().to_owned(),
        reason: reason.map(|r| r.as_str().to_owned()),
        comment,
    }
}

/// Why an incident about a shipment of `carrier` shipped at `shipped` is
/// filed too late at `now`, if it is: claims are accepted for `window_days`
/// calendar days after shipping (the carrier's, or the category's own). The
/// dates in the message are days of `time_zone`.
pub fn outside_claim_window(
    carrier: &Carrier,
    window_days: i32,
    shipped: i64,
    now: i64,
    time_zone: Tz,
) -> Option<String> {
    let deadline = shipped + i64::from(window_days) * DAY;
    (now > deadline).then(|| {
        let day = |us: i64| {
            DateTime::from_timestamp_micros(us)
                .unwrap_or_default()
                .with_timezone(&time_zone)
                .date_naive()
        };
        format!(
            "{} acepta reclamaciones hasta {} días después del envío: enviado el {}, plazo hasta el {}, presentado el {}",
            carrier.name,
            window_days,
            day(shipped),
            day(deadline),
            day(now)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Category;
    use crate::domain::principal::Principal;

    const H: i64 = 3_600_000_000;
    /// 2026-11-02T15:00Z, a Monday at 09:00 in Mexico City.
    const MONDAY_9AM: i64 = 1_793_631_600_000_000;

    fn catalog() -> Catalog {
        Catalog {
            carriers: vec![Carrier {
                code: "estafeta".into(),
                name: "Estafeta".into(),
                claim_window_days: 30,
            }],
            categories: vec![Category {
                code: "damaged".into(),
                name: "Paquete dañado".into(),
                ticket_type: TicketType::Incident,
                incident_kind: Some(IncidentKind::Shipment),
                complexity: None,
                resolution_target_days: Some(10),
                claim_window_days: None,
            }],
        }
    }

    fn store() -> Principal {
        Principal {
            sub: "store-1".into(),
            role: Role::Requester,
            account: Some("acme".into()),
            name: "Tienda".into(),
            email: None,
        }
    }

    fn filed(shipped_at: Option<i64>, now: i64) -> Outcome<Incident> {
        let header = Header::filed(TicketType::Incident, &store(), Some(7), now, None).unwrap();
        let new = NewIncident {
            kind: IncidentKind::Shipment,
            tracking_number: TrackingNumber::parse("EST-123").unwrap(),
            carrier: "estafeta".into(),
            category: "damaged".into(),
            description: "llegó roto".into(),
            shipped_at,
            claimed_amount: None,
            idempotency_key: None,
            contact_email: None,
        };
        Incident::file(header, new, &catalog(), chrono_tz::America::Mexico_City).unwrap()
    }

    fn change(to: IncidentStatus, comment: Option<&str>) -> StatusChange {
        StatusChange {
            to,
            reason: None,
            comment: comment.map(str::to_owned),
            note: None,
        }
    }

    #[test]
    fn filing_sets_the_estimate_from_the_category_target() {
        let outcome = filed(None, MONDAY_9AM);
        let incident = outcome.next;
        assert_eq!(incident.status, IncidentStatus::NewTicket);
        assert_eq!(
            incident.estimated_resolution_at,
            Some(MONDAY_9AM + 10 * 24 * H)
        );
        assert_eq!(outcome.events.len(), 1);
    }

    #[test]
    fn a_claim_after_the_window_is_filed_declined_by_the_system() {
        let day = 24 * H;
        let within = filed(Some(MONDAY_9AM - 30 * day), MONDAY_9AM);
        assert_eq!(within.next.status, IncidentStatus::NewTicket);
        let late = filed(Some(MONDAY_9AM - 31 * day), MONDAY_9AM);
        assert_eq!(late.next.status, IncidentStatus::Declined);
        assert_eq!(
            late.next.resolution_reason,
            Some(ResolutionReason::OutOfClaimWindow)
        );
        assert_eq!(late.next.resolved_at, Some(MONDAY_9AM));
        assert_eq!(late.next.header.version, 2);
        assert_eq!(late.events[1].0, By::System);
        let note = late.next.resolution_note.unwrap();
        assert!(
            note.contains("30 días") && note.contains("Estafeta"),
            "{note}"
        );
    }

    #[test]
    fn a_claim_window_counts_calendar_days_in_the_calendars_zone() {
        let estafeta = &catalog().carriers[0];
        let tz = chrono_tz::America::Mexico_City;
        let shipped = MONDAY_9AM;
        let deadline = shipped + 15 * 24 * H;
        assert_eq!(
            outside_claim_window(estafeta, 15, shipped, deadline, tz),
            None
        );
        let late = outside_claim_window(estafeta, 15, shipped, deadline + 1, tz).unwrap();
        assert!(
            late.contains("2026-11-02") && late.contains("2026-11-17"),
            "{late}"
        );
    }

    #[test]
    fn waiting_for_data_pauses_the_estimate_and_a_requester_comment_resumes_it() {
        let calendar = Calendar::mexico_default();
        let incident = filed(None, MONDAY_9AM).next;
        let estimate = incident.estimated_resolution_at.unwrap();
        // A comment saying what is missing is required.
        let missing = change(IncidentStatus::MissingData, None);
        assert!(matches!(
            incident.change_status(missing, Role::Agent, MONDAY_9AM, &calendar),
            Err(Error::InvalidArgument(_))
        ));
        let asked = change(IncidentStatus::MissingData, Some("falta la foto"));
        let waiting = incident
            .change_status(asked, Role::Agent, MONDAY_9AM + H, &calendar)
            .unwrap();
        let waiting = waiting.next;
        assert_eq!(waiting.paused_since, Some(MONDAY_9AM + H));
        assert_eq!(waiting.previous_status, Some(IncidentStatus::NewTicket));
        // 12 business hours from Monday 10:00: Tuesday 13:00 (a 9-to-18 day).
        assert_eq!(waiting.auto_close_at, Some(MONDAY_9AM + 28 * H));
        assert_eq!(waiting.target_at(), None, "no breach while paused");
        assert_eq!(waiting.estimate(MONDAY_9AM + 5 * H), Some(estimate + 4 * H));
        let back = waiting.on_requester_comment(MONDAY_9AM + 7 * H).unwrap();
        assert_eq!(back.events[0].0, By::System);
        let back = back.next;
        assert_eq!(back.status, IncidentStatus::NewTicket);
        assert_eq!(back.estimated_resolution_at, Some(estimate + 6 * H));
        assert_eq!((back.paused_since, back.auto_close_at), (None, None));
        assert_eq!(back.header.version, 3);
        assert!(back.on_requester_comment(MONDAY_9AM + 8 * H).is_none());
    }

    #[test]
    fn auto_close_finalizes_only_a_wait_that_ran_out() {
        let calendar = Calendar::mexico_default();
        let incident = filed(None, MONDAY_9AM).next;
        let asked = change(IncidentStatus::MissingData, Some("falta la guía"));
        let waiting = incident
            .change_status(asked, Role::Agent, MONDAY_9AM, &calendar)
            .unwrap()
            .next;
        let due = waiting.auto_close_at.unwrap();
        assert!(waiting.auto_close(due - 1).is_none());
        let closed = waiting.auto_close(due).unwrap().next;
        assert_eq!(closed.status, IncidentStatus::Finalized);
        assert_eq!(
            closed.resolution_reason,
            Some(ResolutionReason::NoCustomerResponse)
        );
        assert!(incident.auto_close(due).is_none(), "not waiting for data");
    }

    #[test]
    fn resolutions_take_the_reasons_of_their_status() {
        let calendar = Calendar::mexico_default();
        let incident = filed(None, MONDAY_9AM).next;
        let decline = |reason| StatusChange {
            reason,
            ..change(IncidentStatus::Declined, None)
        };
        let refused = incident.change_status(decline(None), Role::Agent, MONDAY_9AM, &calendar);
        assert!(matches!(refused, Err(Error::InvalidArgument(_))));
        let wrong = decline(Some(ResolutionReason::Indemnified));
        let wrong = incident.change_status(wrong, Role::Agent, MONDAY_9AM, &calendar);
        assert!(matches!(wrong, Err(Error::InvalidArgument(_))));
        let right = decline(Some(ResolutionReason::CarrierRejected));
        let declined = incident
            .change_status(right, Role::Agent, MONDAY_9AM, &calendar)
            .unwrap()
            .next;
        assert_eq!(declined.resolved_at, Some(MONDAY_9AM));
        let cancel = change(IncidentStatus::Cancelled, None);
        let cancelled = incident
            .change_status(cancel, Role::Requester, MONDAY_9AM, &calendar)
            .unwrap()
            .next;
        assert_eq!(
            cancelled.resolution_reason,
            Some(ResolutionReason::Cancelled)
        );
    }

    #[test]
    fn tracking_numbers_and_money_are_checked_once_at_the_edge() {
        assert!(TrackingNumber::parse("AB").is_err());
        assert!(TrackingNumber::parse("AB 12").is_err());
        assert_eq!(
            TrackingNumber::parse(" EST-123_x ").unwrap().as_str(),
            "EST-123_x"
        );
        assert!(Money::parse("m", "1250.50", "MXN").is_ok());
        for (amount, currency) in [("-1", "MXN"), ("1.", "MXN"), ("1.234", "MXN"), ("1", "mxn")] {
            assert!(
                Money::parse("m", amount, currency).is_err(),
                "{amount} {currency}"
            );
        }
    }

    #[test]
    fn requesters_may_only_ever_cancel() {
        for to in IncidentStatus::ALL {
            assert!(may_change_to(*to, Role::Agent).is_ok());
            assert!(may_change_to(*to, Role::Admin).is_ok());
            assert_eq!(
                may_change_to(*to, Role::Requester).is_ok(),
                *to == IncidentStatus::Cancelled,
                "{to:?}"
            );
        }
    }

    #[test]
    fn the_estimate_moves_on_with_the_clock_only_while_paused() {
        const H: i64 = 3_600_000_000;
        assert_eq!(estimate_at(Some(100 * H), None, 50 * H), Some(100 * H));
        assert_eq!(
            estimate_at(Some(100 * H), Some(40 * H), 50 * H),
            Some(110 * H)
        );
        // A pause that the clock has not reached yet adds nothing.
        assert_eq!(
            estimate_at(Some(100 * H), Some(60 * H), 50 * H),
            Some(100 * H)
        );
        assert_eq!(estimate_at(None, Some(40 * H), 50 * H), None);
    }

    #[test]
    fn every_status_belongs_to_the_stage_of_the_design() {
        assert_eq!(IncidentStatus::of_stage(Stage::New).len(), 2);
        assert_eq!(IncidentStatus::of_stage(Stage::InReview).len(), 2);
        assert_eq!(IncidentStatus::of_stage(Stage::Resolved).len(), 3);
    }

    #[test]
    fn terminal_statuses_allow_no_transition() {
        for from in [
            IncidentStatus::Finalized,
            IncidentStatus::Declined,
            IncidentStatus::Cancelled,
        ] {
            for to in IncidentStatus::ALL {
                assert!(matches!(
                    transition(from, *to, Role::Agent),
                    Err(Error::FailedPrecondition(_))
                ));
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in IncidentStatus::ALL {
            assert_eq!(IncidentStatus::parse(s.as_str()), Some(*s));
        }
    }
}
