//! What both ticket types share: the header every ticket carries, the rules
//! that are the same for both (who sees a ticket, versions, assignment,
//! comments, SLA breaches, idempotent filing), and the `Ticket` trait the one
//! workflow (`service::tickets`) runs them through.
use sha2::{Digest, Sha256};

use super::catalog::Catalog;
use super::event::{EventPayload, TicketType};
use super::principal::{Locale, Principal, Role};
use super::{Error, Labelled, Result};

/// How a caller names one ticket: by id, or by its human number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Id(String),
    Number(i64),
}

/// Someone a ticket names: its requester or its assignee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub name: String,
}

/// A create request's idempotency key and the digest of the request it came
/// with: a retry with the same key must carry the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// Where a ticket's e-mails go (issue #15). Addresses are checked once, at
/// the edge (`mail::parse_address`); a person without one gets no e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contacts {
    /// The create request's `contact_email`, else the token's `email` claim.
    pub requester_email: Option<String>,
    /// The language of the requester's e-mails: its request's at filing.
    pub locale: Locale,
    /// The assignment's `assignee_email`; cleared when the assignee changes.
    pub assignee_email: Option<String>,
}

impl Contacts {
    /// At filing: the request's `contact_email` wins over the token's
    /// address; the e-mails are in the request's language.
    pub fn filed(&mut self, contact_email: Option<String>, locale: Locale) {
        if contact_email.is_some() {
            self.requester_email = contact_email;
        }
        self.locale = locale;
    }
}

/// What every ticket has, whatever its type. Instants are µs since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub id: String,
    /// The human number; `None` for a SIMPLE consultation, which gets none.
    pub number: Option<i64>,
    /// The tenant.
    pub account: String,
    pub requester: Person,
    pub assignee: Option<Person>,
    /// Bumped by every change; writers name the version they read.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the target passed unresolved (its sla_breached event).
    pub breached_at: Option<i64>,
    pub idempotency: Option<Idempotency>,
    pub contacts: Contacts,
}

impl Header {
    /// A ticket `who` files at `now` (version 1).
    pub fn filed(
        ticket_type: TicketType,
        who: &Principal,
        number: Option<i64>,
        now: i64,
        idempotency: Option<Idempotency>,
    ) -> Result<Self> {
        if who.role != Role::Requester {
            return Err(Error::PermissionDenied(format!(
                "only requesters file {}s",
                ticket_type.noun()
            )));
        }
        let account = who
            .account
            .clone()
            .ok_or_else(|| Error::Unauthenticated("requester token has no account claim".into()))?;
        Ok(Self {
            id: uuid::Uuid::now_v7().to_string(),
            number,
            account,
            requester: Person {
                id: who.sub.clone(),
                name: who.name.clone(),
            },
            assignee: None,
            version: 1,
            created_at: now,
            updated_at: now,
            breached_at: None,
            idempotency,
            contacts: Contacts {
                requester_email: who.email.clone(),
                ..Contacts::default()
            },
        })
    }

    /// One version more, changed at `now`.
    pub fn touch(&mut self, now: i64) {
        self.version += 1;
        self.updated_at = now;
    }

    /// The human number, or 0 where there is none (the event log's form).
    pub fn number_or_zero(&self) -> i64 {
        self.number.unwrap_or(0)
    }

    /// What free-text search matches of every ticket: its number, account,
    /// requester and assignee.
    fn search_fields(&self) -> Vec<String> {
        let assignee = self.assignee.as_ref();
        vec![
            self.number.map(|n| n.to_string()).unwrap_or_default(),
            self.account.clone(),
            self.requester.name.clone(),
            self.requester.id.clone(),
            assignee.map(|p| p.name.clone()).unwrap_or_default(),
            assignee.map(|p| p.id.clone()).unwrap_or_default(),
        ]
    }
}

/// Who an event of an outcome is recorded as caused by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The principal whose request it was.
    Caller,
    /// ticketd itself (auto-close, the return from missing data, breaches).
    System,
}

/// What a command did to a ticket: the ticket after it, a public comment of
/// the caller's to write first (if the command carried one), and the events
/// that say what happened, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    pub next: T,
    pub comment: Option<String>,
    pub events: Vec<(By, EventPayload)>,
}

impl<T> Outcome<T> {
    pub fn new(next: T, by: By, event: EventPayload) -> Self {
        Self {
            next,
            comment: None,
            events: vec![(by, event)],
        }
    }
}

/// The items of a `Ticket` impl that every ticket type writes the same way:
/// `ticket_basics!(TicketType::Incident, IncidentStatus)` inside the impl,
/// for a type with `header`, `status` and `description` fields.
macro_rules! ticket_basics {
    ($ticket_type:expr, $status:ty) => {
        const TYPE: $crate::domain::event::TicketType = $ticket_type;
        type Status = $status;

        fn header(&self) -> &$crate::domain::ticket::Header {
            &self.header
        }

        fn header_mut(&mut self) -> &mut $crate::domain::ticket::Header {
            &mut self.header
        }

        fn status(&self) -> $status {
            self.status
        }

        fn is_terminal(&self) -> bool {
            self.status.is_terminal()
        }

        fn description(&self) -> &str {
            &self.description
        }
    };
}
pub(crate) use ticket_basics;

/// A ticket type, as the shared workflow sees it.
pub trait Ticket: Clone + Send + Sync + 'static {
    const TYPE: TicketType;

    fn header(&self) -> &Header;
    fn header_mut(&mut self) -> &mut Header;

    type Status: Labelled;

    fn status(&self) -> Self::Status;

    /// What the requester wrote when filing it.
    fn description(&self) -> &str;

    /// Resolved: no more status changes, no breach.
    fn is_terminal(&self) -> bool;

    /// The instant its target passes, while that can breach it (open, not
    /// paused); `None` otherwise.
    fn target_at(&self) -> Option<i64>;

    /// What free-text search matches, before folding, of what only this
    /// type has (`search_text` adds the header's; labels are matched by
    /// `named_by` instead).
    fn search_fields(&self) -> Vec<String>;

    /// The codes whose labels hold the folded search term `folded`.
    fn named_by(catalog: &Catalog, folded: &str) -> Vec<(Named, Vec<String>)>;

    /// The folded text free-text search looks in (see `text::fold`).
    fn search_text(&self) -> String {
        let mut fields = self.header().search_fields();
        fields.extend(self.search_fields());
        super::text::fold(&fields.join("\n"))
    }

    /// What a requester's comment does besides being written (an incident
    /// waiting for the store's data returns to work).
    fn on_requester_comment(&self, _now: i64) -> Option<Outcome<Self>> {
        None
    }

    /// The earliest instant the scheduler must act on for it, if any.
    fn next_deadline(&self) -> Option<i64> {
        if self.header().breached_at.is_some() || self.is_terminal() {
            return None;
        }
        self.target_at()
    }

    /// How messages name it: by number, or by id where it has none.
    fn name(&self) -> String {
        let h = self.header();
        match h.number {
            Some(n) => format!("{} {n}", Self::TYPE.noun()),
            None => format!("{} {}", Self::TYPE.noun(), h.id),
        }
    }
}

/// Whether `who` may see `ticket` at all: requesters see their account's
/// only; to them every other ticket does not exist (DESIGN §7).
pub fn may_see<T: Ticket>(who: &Principal, ticket: &T) -> bool {
    who.scope()
        .is_none_or(|account| account == ticket.header().account)
}

/// A writer that read another version than the stored one retries.
pub fn check_version<T: Ticket>(ticket: &T, expected: Option<i64>) -> Result<()> {
    let version = ticket.header().version;
    match expected {
        Some(v) if v != version => Err(Error::Aborted(format!(
            "{} is at version {version}, not {v}; read it again and retry",
            ticket.name()
        ))),
        _ => Ok(()),
    }
}

/// Only agents (and admins) do this to a ticket.
pub fn agents_only<T: Ticket>(who: &Principal, verb: &str) -> Result<()> {
    match who.role {
        Role::Agent | Role::Admin => Ok(()),
        Role::Requester => Err(Error::PermissionDenied(format!(
            "only agents {verb} {}s",
            T::TYPE.noun()
        ))),
    }
}

/// Whether `who` may write this comment: internal notes are for agents.
pub fn may_comment(who: &Principal, internal: bool) -> Result<()> {
    if internal && !who.is_agent() {
        return Err(Error::PermissionDenied(
            "requesters cannot write internal comments".into(),
        ));
    }
    Ok(())
}

/// Assigns the ticket (or unassigns it with `None`), with the address the
/// assignee's e-mails go to, if any.
pub fn assign<T: Ticket>(
    ticket: &T,
    assignee: Option<Person>,
    email: Option<String>,
    now: i64,
) -> Outcome<T> {
    let mut next = ticket.clone();
    let previous = ticket.header().assignee.as_ref().map(|p| p.id.clone());
    let h = next.header_mut();
    h.contacts.assignee_email = assignee.as_ref().and(email);
    h.assignee = assignee;
    h.touch(now);
    let event = EventPayload::Assigned {
        assignee_id: h.assignee.as_ref().map(|p| p.id.clone()),
        assignee_name: h.assignee.as_ref().map(|p| p.name.clone()),
        previous_assignee_id: previous,
    };
    Outcome::new(next, By::Caller, event)
}

/// The sla_breached event of a ticket whose target has passed at `now`
/// unresolved and unmarked; `None` when there is nothing to mark.
pub fn breach<T: Ticket>(ticket: &T, now: i64) -> Option<EventPayload> {
    if ticket.header().breached_at.is_some() || ticket.is_terminal() {
        return None;
    }
    let due_at = ticket.target_at()?;
    (due_at <= now).then_some(EventPayload::SlaBreached { due_at })
}

/// The answer to a retried create: the ticket the key made, if the request
/// is the same; a different request under a used key is refused.
pub fn same_request<T: Ticket>(existing: T, request_hash: &str) -> Result<T> {
    let same = existing
        .header()
        .idempotency
        .as_ref()
        .is_some_and(|i| i.request_hash == request_hash);
    if same {
        Ok(existing)
    } else {
        Err(Error::invalid(
            "idempotency_key",
            format!(
                "this key was already used with a different request; use a new key for a new {}",
                T::TYPE.noun()
            ),
        ))
    }
}

/// A digest of a create request's parts: retries must match it.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    format!("{:x}", hasher.finalize())
}

/// A code field that a search term can name by its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Status,
    Kind,
    Category,
    Carrier,
}

/// A free-text search as the store runs it: the folded term, matched as a
/// substring of each ticket's search text, and the codes whose labels hold
/// it. Labels (statuses, kinds, catalog names) are matched here rather than
/// stored with the rows, so that a renamed category or carrier never leaves
/// stale results behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub folded: String,
    pub named: Vec<(Named, Vec<String>)>,
}

impl Search {
    pub fn new<T: Ticket>(term: &str, catalog: &Catalog) -> Self {
        let folded = super::text::fold(term);
        let named = T::named_by(catalog, &folded)
            .into_iter()
            .filter(|(_, codes)| !codes.is_empty())
            .collect();
        Self { folded, named }
    }
}

/// The codes of `names` (code, label) whose folded label holds `folded`.
pub fn codes_named<'a>(
    names: impl Iterator<Item = (&'a str, &'a str)>,
    folded: &str,
) -> Vec<String> {
    names
        .filter(|(_, label)| super::text::fold(label).contains(folded))
        .map(|(code, _)| code.to_owned())
        .collect()
}

/// The list filters every ticket type has, as parsed at the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Criteria {
    pub category: Option<String>,
    pub assignee_id: Option<String>,
    /// Created in [from, to) (µs).
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    /// Free text: a case- and accent-insensitive substring of the searchable fields.
    pub text: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::consultation::{Complexity, Consultation, ConsultationStatus};

    fn principal(role: Role, account: Option<&str>) -> Principal {
        Principal::for_tests(role, account)
    }

    fn ticket(account: &str) -> Consultation {
        let who = principal(Role::Requester, Some(account));
        let key = Idempotency {
            key: "k".into(),
            request_hash: "h1".into(),
        };
        Consultation {
            header: Header::filed(TicketType::Consultation, &who, Some(4), 0, Some(key)).unwrap(),
            category: "c".into(),
            complexity: Complexity::Collaborative,
            status: ConsultationStatus::Received,
            title: "C".into(),
            description: "d".into(),
            order_reference: None,
            due_at: 100,
            solved_at: None,
        }
    }

    #[test]
    fn only_requesters_with_an_account_file_tickets() {
        let agent = principal(Role::Agent, None);
        let filed = Header::filed(TicketType::Incident, &agent, None, 0, None);
        assert!(matches!(filed, Err(Error::PermissionDenied(_))));
        let nameless = principal(Role::Requester, None);
        let filed = Header::filed(TicketType::Incident, &nameless, None, 0, None);
        assert!(matches!(filed, Err(Error::Unauthenticated(_))));
    }

    #[test]
    fn requesters_see_their_accounts_tickets_only() {
        let t = ticket("acme");
        assert!(may_see(&principal(Role::Requester, Some("acme")), &t));
        assert!(!may_see(&principal(Role::Requester, Some("globex")), &t));
        assert!(may_see(&principal(Role::Agent, None), &t));
    }

    #[test]
    fn versions_assignment_and_breaches() {
        let t = ticket("acme");
        assert!(check_version(&t, None).is_ok() && check_version(&t, Some(1)).is_ok());
        assert!(matches!(check_version(&t, Some(2)), Err(Error::Aborted(_))));
        let agent = principal(Role::Agent, None);
        let assigned = assign(
            &t,
            Some(Person {
                id: agent.sub.clone(),
                name: agent.name.clone(),
            }),
            None,
            5,
        );
        assert_eq!(assigned.next.header.version, 2);
        assert_eq!(assigned.next.header.updated_at, 5);
        assert!(
            agents_only::<Consultation>(&principal(Role::Requester, Some("acme")), "assign")
                .is_err()
        );
        assert_eq!(breach(&t, 99), None);
        assert_eq!(
            breach(&t, 100),
            Some(EventPayload::SlaBreached { due_at: 100 })
        );
        let mut marked = t.clone();
        marked.header.breached_at = Some(100);
        assert_eq!(breach(&marked, 200), None, "marked once");
    }

    #[test]
    fn a_used_key_takes_only_the_same_request() {
        assert!(same_request(ticket("acme"), "h1").is_ok());
        assert!(matches!(
            same_request(ticket("acme"), "h2"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(may_comment(&principal(Role::Requester, Some("acme")), true).is_err());
        assert!(may_comment(&principal(Role::Requester, Some("acme")), false).is_ok());
    }
}
