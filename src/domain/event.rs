//! The payloads of the event log (DESIGN §4), stored as JSON in `ticket_events.payload`.
use serde::{Deserialize, Serialize};

use super::principal::Principal;

/// What happened to a ticket. The serde tag is the `event_type` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventPayload {
    Created {
        status: String,
    },
    StatusChanged {
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    CommentAdded {
        comment_id: String,
        body: String,
        internal: bool,
    },
    Assigned {
        assignee_id: Option<String>,
        assignee_name: Option<String>,
        previous_assignee_id: Option<String>,
    },
    Reclassified {
        from: String,
        to: String,
        due_at: Option<i64>,
        number: Option<i64>,
    },
    SlaBreached {
        due_at: i64,
    },
}

impl EventPayload {
    /// The `event_type` column.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::StatusChanged { .. } => "status_changed",
            Self::CommentAdded { .. } => "comment_added",
            Self::Assigned { .. } => "assigned",
            Self::Reclassified { .. } => "reclassified",
            Self::SlaBreached { .. } => "sla_breached",
        }
    }

    /// Internal events (agent notes) are never shown to requesters.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::CommentAdded { internal: true, .. })
    }
}

string_enum!(
    /// The two kinds of ticket, as the event log names them.
    TicketType { Incident = "INCIDENT", Consultation = "CONSULTATION" }
);

impl TicketType {
    /// How messages name one: "incident 12".
    pub fn noun(self) -> &'static str {
        match self {
            Self::Incident => "incident",
            Self::Consultation => "consultation",
        }
    }
}

/// Who caused an event, as recorded: id, display name, role (`system` for
/// ticketd's own changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub name: String,
    pub role: String,
}

/// One committed event of the log, decoded once (by the store) and then
/// shared by everything that lists, streams or converts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Global, gap-free, in commit order.
    pub sequence: i64,
    pub ticket_id: String,
    pub ticket_type: TicketType,
    /// The ticket's human number; 0 for a SIMPLE consultation, which has none.
    pub ticket_number: i64,
    /// The tenant the ticket belongs to.
    pub account: String,
    pub actor: Actor,
    /// When it happened (µs since the Unix epoch).
    pub at: i64,
    pub payload: EventPayload,
}

/// A comment of a ticket's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: String,
    pub ticket_id: String,
    pub ticket_type: TicketType,
    pub author: Actor,
    pub body: String,
    /// An agent note: never shown to requesters.
    pub internal: bool,
    /// When it was written (µs since the Unix epoch).
    pub created_at: i64,
}

/// Who sees which events: the one decision behind ListTicketEvents, the
/// watch streams and the notification feed, in SQL (the store reads only
/// what `sees` lets through) and in memory (live events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// Only this ticket's events.
    pub ticket_id: Option<String>,
    /// Only this account's tickets (a requester's tenant).
    pub account: Option<String>,
    /// Agent notes are for agents (and admins) only.
    pub include_internal: bool,
    /// Only tickets with a number: SIMPLE consultations are recorded for
    /// operations and notify nobody.
    pub only_ticketed: bool,
}

impl Audience {
    /// One ticket's events, as `who` may see them (the caller has already
    /// been shown the ticket).
    pub fn of_ticket(who: &Principal, ticket_id: impl Into<String>) -> Self {
        Self {
            ticket_id: Some(ticket_id.into()),
            account: who.scope().map(str::to_owned),
            include_internal: who.is_agent(),
            only_ticketed: false,
        }
    }

    /// Every event `who` is to be told about: its account's tickets for a
    /// requester, all for agents, never SIMPLE consultations.
    pub fn feed(who: &Principal) -> Self {
        Self {
            ticket_id: None,
            account: who.scope().map(str::to_owned),
            include_internal: who.is_agent(),
            only_ticketed: true,
        }
    }

    /// The whole log (the hub that broadcasts it).
    pub fn everything() -> Self {
        Self {
            include_internal: true,
            ..Self::default()
        }
    }

    pub fn sees(&self, e: &Event) -> bool {
        self.ticket_id.as_ref().is_none_or(|id| *id == e.ticket_id)
            && self.account.as_ref().is_none_or(|a| *a == e.account)
            && (self.include_internal || !e.payload.is_internal())
            && (!self.only_ticketed || e.ticket_number != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::Role;

    fn principal(role: Role, account: Option<&str>) -> Principal {
        Principal::for_tests(role, account)
    }

    fn event(ticket: &str, account: &str, number: i64, internal: bool) -> Event {
        Event {
            sequence: 1,
            ticket_id: ticket.into(),
            ticket_type: TicketType::Incident,
            ticket_number: number,
            account: account.into(),
            actor: Actor {
                id: "a".into(),
                name: "A".into(),
                role: "agent".into(),
            },
            at: 0,
            payload: EventPayload::CommentAdded {
                comment_id: "c".into(),
                body: "b".into(),
                internal,
            },
        }
    }

    #[test]
    fn requesters_see_their_accounts_public_events_and_agents_see_all() {
        let store = principal(Role::Requester, Some("acme"));
        let agent = principal(Role::Agent, None);
        let admin = principal(Role::Admin, None);
        let public = event("t1", "acme", 1, false);
        let note = event("t1", "acme", 1, true);
        let other = event("t2", "globex", 2, false);
        let feed = Audience::feed(&store);
        assert!(feed.sees(&public) && !feed.sees(&note) && !feed.sees(&other));
        for who in [&agent, &admin] {
            let feed = Audience::feed(who);
            assert!(feed.sees(&public) && feed.sees(&note) && feed.sees(&other));
        }
        let ticket = Audience::of_ticket(&agent, "t1");
        assert!(ticket.sees(&note) && !ticket.sees(&other));
    }

    #[test]
    fn simple_consultations_reach_no_feed_but_their_own_history() {
        let agent = principal(Role::Agent, None);
        let simple = event("t1", "acme", 0, false);
        assert!(!Audience::feed(&agent).sees(&simple));
        assert!(Audience::of_ticket(&agent, "t1").sees(&simple));
        assert!(Audience::everything().sees(&simple));
    }
}
