//! Consultations (DESIGN §3): complexity sets the target window and whether a
//! ticket number is given; states move RECEIVED → IN_PROGRESS → SOLVED.
use std::time::Duration;

use super::principal::{Locale, Role};
use super::{Error, Result};

string_enum!(
    Complexity { Simple = "SIMPLE", Collaborative = "COLLABORATIVE", Technology = "TECHNOLOGY" }
);

string_enum!(
    ConsultationStatus { Received = "RECEIVED", InProgress = "IN_PROGRESS", Solved = "SOLVED" }
);

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

    pub fn label(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Self::Simple, Locale::Es) => "Simple",
            (Self::Simple, Locale::En) => "Simple",
            (Self::Collaborative, Locale::Es) => "Colaborativa",
            (Self::Collaborative, Locale::En) => "Collaborative",
            (Self::Technology, Locale::Es) => "Tecnología",
            (Self::Technology, Locale::En) => "Technology",
        }
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

impl ConsultationStatus {
    pub fn label(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Self::Received, Locale::Es) => "Recepcionado",
            (Self::Received, Locale::En) => "Received",
            (Self::InProgress, Locale::Es) => "En curso",
            (Self::InProgress, Locale::En) => "In progress",
            (Self::Solved, Locale::Es) => "Solución",
            (Self::Solved, Locale::En) => "Solved",
        }
    }

    pub fn is_terminal(self) -> bool {
        self == Self::Solved
    }
}

/// Decides whether `role` may move a consultation from `from` to `to`.
/// Only agents move consultations, one step at a time.
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

#[cfg(test)]
mod tests {
    use super::*;

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
