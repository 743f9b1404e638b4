//! The incident status machine (DESIGN §3) and the vocabulary around it.
use super::principal::{Locale, Role};
use super::{Error, Result};

string_enum!(
    /// Shipment problem or additional-charge dispute.
    IncidentKind { Shipment = "SHIPMENT", AdditionalCharge = "ADDITIONAL_CHARGE" }
);

string_enum!(
    IncidentStatus {
        NewTicket = "NEW_TICKET",
        MissingData = "MISSING_DATA",
        InProgress = "IN_PROGRESS",
        PreApproved = "PRE_APPROVED",
        Finalized = "FINALIZED",
        Declined = "DECLINED",
        Cancelled = "CANCELLED",
    }
);

string_enum!(
    /// The list tabs.
    Stage { New = "NEW", InReview = "IN_REVIEW", Resolved = "RESOLVED" }
);

string_enum!(
    ResolutionReason {
        Resolved = "RESOLVED",
        Indemnified = "INDEMNIFIED",
        NoCustomerResponse = "NO_CUSTOMER_RESPONSE",
        OutOfClaimWindow = "OUT_OF_CLAIM_WINDOW",
        CarrierRejected = "CARRIER_REJECTED",
        Cancelled = "CANCELLED",
    }
);

impl IncidentKind {
    pub fn label(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Self::Shipment, Locale::Es) => "Envío",
            (Self::Shipment, Locale::En) => "Shipment",
            (Self::AdditionalCharge, Locale::Es) => "Cargo adicional",
            (Self::AdditionalCharge, Locale::En) => "Additional charge",
        }
    }
}

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

    /// The customer-facing label.
    pub fn label(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Self::NewTicket, Locale::Es) => "Nuevo ticket",
            (Self::NewTicket, Locale::En) => "New ticket",
            (Self::MissingData, Locale::Es) => "Datos faltantes",
            (Self::MissingData, Locale::En) => "Missing data",
            (Self::InProgress, Locale::Es) => "En curso",
            (Self::InProgress, Locale::En) => "In progress",
            (Self::PreApproved, Locale::Es) => "Pre aprobado",
            (Self::PreApproved, Locale::En) => "Pre-approved",
            (Self::Finalized, Locale::Es) => "Finalizado",
            (Self::Finalized, Locale::En) => "Finalized",
            (Self::Declined, Locale::Es) => "Declinado",
            (Self::Declined, Locale::En) => "Declined",
            (Self::Cancelled, Locale::Es) => "Cancelado",
            (Self::Cancelled, Locale::En) => "Cancelled",
        }
    }
}

impl ResolutionReason {
    pub fn label(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Self::Resolved, Locale::Es) => "Resuelto",
            (Self::Resolved, Locale::En) => "Resolved",
            (Self::Indemnified, Locale::Es) => "Indemnizado",
            (Self::Indemnified, Locale::En) => "Indemnified",
            (Self::NoCustomerResponse, Locale::Es) => "Sin respuesta del cliente",
            (Self::NoCustomerResponse, Locale::En) => "No customer response",
            (Self::OutOfClaimWindow, Locale::Es) => "Fuera del plazo de reclamación",
            (Self::OutOfClaimWindow, Locale::En) => "Out of claim window",
            (Self::CarrierRejected, Locale::Es) => "Rechazado por la paquetería",
            (Self::CarrierRejected, Locale::En) => "Rejected by the carrier",
            (Self::Cancelled, Locale::Es) => "Cancelado",
            (Self::Cancelled, Locale::En) => "Cancelled",
        }
    }
}

impl Stage {
    pub fn label(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Self::New, Locale::Es) => "Nuevos",
            (Self::New, Locale::En) => "New",
            (Self::InReview, Locale::Es) => "En revisión",
            (Self::InReview, Locale::En) => "In review",
            (Self::Resolved, Locale::Es) => "Resueltos",
            (Self::Resolved, Locale::En) => "Resolved",
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
