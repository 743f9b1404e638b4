//! Consultations (DESIGN §3): complexity sets the target window and whether a
//! ticket number is given; states move RECEIVED → IN_PROGRESS → SOLVED.
use std::time::Duration;

use chrono::DateTime;

use super::calendar::Calendar;
use super::catalog::{Catalog, Category};
use super::event::{EventPayload, TicketType};
use super::principal::{Locale, Role};
use super::ticket::{By, Header, Named, Outcome, Ticket, codes_named, ticket_basics};
use super::{Error, Result};

/// How long each complexity may take; TECHNOLOGY's due time is configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub technology_due: Duration,
    /// Count due times in business hours on the calendar, not wall-clock time.
    pub business_hours: bool,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            technology_due: Duration::from_secs(48 * 3600),
            business_hours: false,
        }
    }
}

string_enum!(
    Complexity {
        Simple = "SIMPLE" ("Simple", "Simple"),
        Collaborative = "COLLABORATIVE" ("Colaborativa", "Collaborative"),
        Technology = "TECHNOLOGY" ("Tecnología", "Technology"),
    }
);

impl Complexity {
    /// The target window: (at least, less than); `None` is open-ended.
    pub fn window(self) -> (Duration, Option<Duration>) {
        const HOUR: u64 = 3600;
        match self {
            Self::Simple => (Duration::ZERO, Some(Duration::from_secs(HOUR))),
            Self::Collaborative => (
                Duration::from_secs(HOUR),
                Some(Duration::from_secs(6 * HOUR)),
            ),
            Self::Technology => (Duration::from_secs(6 * HOUR), None),
        }
    }

    /// The time from creation to the due time.
    pub fn due_after(self, targets: &Targets) -> Duration {
        match self.window() {
            (_, Some(max)) => max,
            (_, None) => targets.technology_due,
        }
    }

    /// SIMPLE consultations are recorded for operations only: no ticket
    /// number and no notifications.
    pub fn creates_ticket(self) -> bool {
        self != Self::Simple
    }

    /// What a chat bot can tell the driver before filing.
    pub fn promise(self, targets: &Targets, locale: Locale) -> String {
        let hours = targets.technology_due.as_secs().div_ceil(3600);
        match (self, locale) {
            (Self::Simple, Locale::Es) => "Te respondemos en menos de 1 hora; no se genera ticket.".into(),
            (Self::Simple, Locale::En) => "We answer within 1 hour; no ticket is created.".into(),
            (Self::Collaborative, Locale::Es) => {
                "Se crea un ticket; lo resolvemos en 1 a 6 horas y te avisamos de cada cambio.".into()
            }
            (Self::Collaborative, Locale::En) => {
                "A ticket is created; we solve it within 1 to 6 hours and notify you of every change.".into()
            }
            (Self::Technology, Locale::Es) => {
                format!("Se crea un ticket para el equipo de tecnología; lo resolvemos en un máximo de {hours} horas.")
            }
            (Self::Technology, Locale::En) => {
                format!("A ticket is created for the technology team; we solve it within {hours} hours.")
            }
        }
    }
}

string_enum!(
    ConsultationStatus {
        Received = "RECEIVED" ("Recepcionado", "Received"),
        InProgress = "IN_PROGRESS" ("En curso", "In progress"),
        Solved = "SOLVED" ("Solución", "Solved"),
    }
);

impl ConsultationStatus {
    pub fn is_terminal(self) -> bool {
        self == Self::Solved
    }
}

/// Whether `role` may ever change a consultation's status: only agents (and
/// admins) may. Decided before the version and the status are looked at.
pub fn may_change_status(role: Role) -> Result<()> {
    match role {
        Role::Agent | Role::Admin => Ok(()),
        Role::Requester => Err(Error::PermissionDenied(
            "only agents change a consultation's status".into(),
        )),
    }
}

/// Decides whether `role` may move a consultation from `from` to `to`.
/// Only agents move consultations, one step at a time.
pub fn transition(from: ConsultationStatus, to: ConsultationStatus, role: Role) -> Result<()> {
    use ConsultationStatus::*;
    let legal = matches!((from, to), (Received, InProgress) | (InProgress, Solved));
    match (legal, role) {
        (false, _) => Err(Error::FailedPrecondition(format!(
            "cannot change consultation status from {} to {}",
            from.as_str(),
            to.as_str()
        ))),
        (true, Role::Agent | Role::Admin) => Ok(()),
        (true, Role::Requester) => Err(Error::PermissionDenied(format!(
            "only agents change a consultation from {} to {}",
            from.as_str(),
            to.as_str()
        ))),
    }
}

impl Targets {
    /// When a consultation of `complexity` created at `created_at` is due:
    /// wall-clock time, or business hours on `calendar` when so configured.
    pub fn due_at(&self, created_at: i64, complexity: Complexity, calendar: &Calendar) -> i64 {
        let after = complexity.due_after(self);
        if self.business_hours {
            let start = DateTime::from_timestamp_micros(created_at).unwrap_or_default();
            return calendar.add(start, after).timestamp_micros();
        }
        created_at.saturating_add(i64::try_from(after.as_micros()).unwrap_or(i64::MAX / 2))
    }
}

/// A consultation category and its complexity; an unknown code (or another
/// ticket type's) is INVALID_ARGUMENT naming `category`.
pub fn classify<'a>(catalog: &'a Catalog, code: &str) -> Result<(&'a Category, Complexity)> {
    catalog
        .category(code)
        .filter(|c| c.ticket_type == TicketType::Consultation)
        .and_then(|c| Some((c, c.complexity?)))
        .ok_or_else(|| {
            Error::invalid(
                "category",
                format!("unknown consultation category {code:?}; see ListCategories"),
            )
        })
}

/// A consultation (instants in µs since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consultation {
    pub header: Header,
    pub category: String,
    pub complexity: Complexity,
    pub status: ConsultationStatus,
    /// The category's name when filed.
    pub title: String,
    pub description: String,
    pub order_reference: Option<String>,
    pub due_at: i64,
    pub solved_at: Option<i64>,
}

/// A CreateConsultation request, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewConsultation {
    pub category: String,
    pub description: String,
    pub order_reference: Option<String>,
    pub idempotency_key: Option<String>,
    /// Where the requester's e-mails go, if not the token's address.
    pub contact_email: Option<String>,
}

impl NewConsultation {
    /// A digest of everything but the idempotency key: a retry must match it.
    pub fn fingerprint(&self) -> String {
        super::ticket::fingerprint([
            self.category.as_str(),
            &self.description,
            self.order_reference.as_deref().unwrap_or(""),
        ])
    }
}

impl Consultation {
    /// Files `new` under `header` (whose number the complexity decided, see
    /// `Complexity::creates_ticket`), due by `targets`.
    pub fn file(
        header: Header,
        new: NewConsultation,
        catalog: &Catalog,
        targets: &Targets,
        calendar: &Calendar,
    ) -> Result<Outcome<Consultation>> {
        let (category, complexity) = classify(catalog, &new.category)?;
        let due_at = targets.due_at(header.created_at, complexity, calendar);
        let consultation = Consultation {
            header,
            title: category.name.clone(),
            category: new.category,
            complexity,
            status: ConsultationStatus::Received,
            description: new.description,
            order_reference: new.order_reference,
            due_at,
            solved_at: None,
        };
        let event = EventPayload::Created {
            status: consultation.status.as_str().to_owned(),
        };
        Ok(Outcome::new(consultation, By::Caller, event))
    }

    /// ChangeConsultationStatus, after `may_change_status`.
    pub fn change_status(
        &self,
        to: ConsultationStatus,
        comment: Option<String>,
        role: Role,
        now: i64,
    ) -> Result<Outcome<Consultation>> {
        transition(self.status, to, role)?;
        let mut next = self.clone();
        next.status = to;
        next.solved_at = to.is_terminal().then_some(now);
        next.header.touch(now);
        let event = EventPayload::StatusChanged {
            from: self.status.as_str().to_owned(),
            to: to.as_str().to_owned(),
            reason: None,
            comment: comment.clone(),
        };
        Ok(Outcome {
            next,
            comment,
            events: vec![(By::Caller, event)],
        })
    }

    /// Changes the complexity and recomputes the due time from creation.
    /// `new_number` is the ticket number a SIMPLE consultation moved up
    /// gets (see `gets_number`).
    pub fn reclassify(
        &self,
        to: Complexity,
        new_number: Option<i64>,
        targets: &Targets,
        calendar: &Calendar,
        now: i64,
    ) -> Result<Outcome<Consultation>> {
        if self.status.is_terminal() {
            return Err(Error::FailedPrecondition(format!(
                "{} is SOLVED; it cannot be reclassified",
                self.name()
            )));
        }
        if self.complexity == to {
            return Err(Error::FailedPrecondition(format!(
                "consultation is already {}",
                to.as_str()
            )));
        }
        let mut next = self.clone();
        next.header.number = self.header.number.or(new_number);
        next.complexity = to;
        next.due_at = targets.due_at(self.header.created_at, to, calendar);
        next.header.touch(now);
        let event = EventPayload::Reclassified {
            from: self.complexity.as_str().to_owned(),
            to: to.as_str().to_owned(),
            due_at: Some(next.due_at),
            number: new_number,
        };
        Ok(Outcome::new(next, By::Caller, event))
    }

    /// Whether moving to `to` gives it its first ticket number.
    pub fn gets_number(&self, to: Complexity) -> bool {
        self.header.number.is_none() && to.creates_ticket()
    }
}

impl Ticket for Consultation {
    ticket_basics!(TicketType::Consultation, ConsultationStatus);

    fn target_at(&self) -> Option<i64> {
        Some(self.due_at)
    }

    fn search_fields(&self) -> Vec<String> {
        vec![
            self.category.clone(),
            self.description.clone(),
            self.order_reference.clone().unwrap_or_default(),
        ]
    }

    fn named_by(catalog: &Catalog, folded: &str) -> Vec<(Named, Vec<String>)> {
        let categories = catalog
            .categories_of(TicketType::Consultation)
            .map(|c| (c.code.as_str(), c.name.as_str()));
        vec![
            (Named::Status, ConsultationStatus::named_by(folded)),
            (Named::Category, codes_named(categories, folded)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::Principal;
    use crate::domain::ticket;

    const H: i64 = 3_600_000_000;

    fn catalog() -> Catalog {
        let category = |code: &str, complexity| Category {
            code: code.into(),
            name: code.to_uppercase(),
            ticket_type: TicketType::Consultation,
            incident_kind: None,
            complexity: Some(complexity),
            resolution_target_days: None,
            claim_window_days: None,
        };
        Catalog {
            carriers: vec![],
            categories: vec![
                category("address", Complexity::Simple),
                category("payment", Complexity::Collaborative),
            ],
        }
    }

    fn filed(category: &str, number: Option<i64>) -> Consultation {
        let driver = Principal {
            sub: "driver-1".into(),
            role: Role::Requester,
            account: Some("fleet".into()),
            name: "Driver".into(),
            email: None,
        };
        let header = Header::filed(TicketType::Consultation, &driver, number, 0, None).unwrap();
        let new = NewConsultation {
            category: category.into(),
            description: "?".into(),
            order_reference: None,
            idempotency_key: None,
            contact_email: None,
        };
        let calendar = Calendar::mexico_default();
        Consultation::file(header, new, &catalog(), &Targets::default(), &calendar)
            .unwrap()
            .next
    }

    #[test]
    fn a_simple_consultation_moved_up_gets_its_number_and_a_new_due_time() {
        let calendar = Calendar::mexico_default();
        let targets = Targets::default();
        let simple = filed("address", None);
        assert_eq!((simple.title.as_str(), simple.due_at), ("ADDRESS", H));
        assert!(simple.gets_number(Complexity::Technology));
        let up = simple
            .reclassify(Complexity::Technology, Some(9), &targets, &calendar, 5)
            .unwrap();
        assert_eq!(up.next.header.number, Some(9));
        assert_eq!(up.next.due_at, 48 * H);
        let same = up
            .next
            .reclassify(Complexity::Technology, None, &targets, &calendar, 6);
        assert!(matches!(same, Err(Error::FailedPrecondition(_))));
        assert!(!up.next.gets_number(Complexity::Collaborative));
    }

    #[test]
    fn states_move_one_step_at_a_time_and_solved_is_final() {
        let c = filed("payment", Some(1));
        let skip = c.change_status(ConsultationStatus::Solved, None, Role::Agent, 1);
        assert!(matches!(skip, Err(Error::FailedPrecondition(_))));
        let working = c
            .change_status(ConsultationStatus::InProgress, None, Role::Agent, 1)
            .unwrap()
            .next;
        let solved = working
            .change_status(
                ConsultationStatus::Solved,
                Some("listo".into()),
                Role::Agent,
                2,
            )
            .unwrap();
        assert_eq!(solved.comment.as_deref(), Some("listo"));
        let solved = solved.next;
        assert_eq!((solved.solved_at, solved.header.version), (Some(2), 3));
        assert_eq!(ticket::breach(&solved, 10 * H), None, "solved: no breach");
        assert!(ticket::breach(&working, 10 * H).is_some());
        assert!(may_change_status(Role::Requester).is_err());
    }

    #[test]
    fn unknown_or_incident_categories_do_not_classify() {
        assert!(classify(&catalog(), "payment").is_ok());
        assert!(matches!(
            classify(&catalog(), "nope"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn windows_follow_the_design() {
        let t = Targets::default();
        assert_eq!(Complexity::Simple.due_after(&t), Duration::from_secs(3600));
        assert_eq!(
            Complexity::Collaborative.due_after(&t),
            Duration::from_secs(6 * 3600)
        );
        assert_eq!(
            Complexity::Technology.due_after(&t),
            Duration::from_secs(48 * 3600)
        );
        assert!(!Complexity::Simple.creates_ticket());
    }
}
