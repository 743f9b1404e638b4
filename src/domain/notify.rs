//! Outbound notifications (DESIGN §4, issue #15): who is told about which
//! event, which events a webhook endpoint receives and the document it gets,
//! the retry schedule, and the signature. Pure: the outbox rows are written
//! by `service::notify` and delivered by `service::dispatcher`.
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;

use super::consultation::Consultation;
use super::event::{Actor, EventPayload, TicketType};
use super::incident::{Incident, IncidentStatus};
use super::notify_rules::{Rules, Triggers};
use super::ticket::{Person, Ticket};
use super::{Error, FieldViolation, Result};

/// What the notification rules need of a ticket beyond `Ticket`.
pub trait Notifiable: Ticket {
    /// Its category's code (the e-mail's title is the category's name).
    fn category(&self) -> &str;

    /// When it will close by itself for want of an answer: an incident
    /// waiting in MISSING_DATA (12 business hours after the request).
    fn closes_at(&self) -> Option<i64> {
        None
    }
}

impl Notifiable for Incident {
    fn category(&self) -> &str {
        &self.category
    }

    fn closes_at(&self) -> Option<i64> {
        match self.status {
            IncidentStatus::MissingData => self.auto_close_at,
            _ => None,
        }
    }
}

impl Notifiable for Consultation {
    fn category(&self) -> &str {
        &self.category
    }
}

/// Whom an event is for, by their relation to the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The store or driver who filed it.
    Requester,
    /// The agent working it.
    Assignee,
}

/// Someone to tell about an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub relation: Relation,
    pub id: String,
    pub name: String,
}

impl Recipient {
    fn of(relation: Relation, person: &Person) -> Self {
        Self {
            relation,
            id: person.id.clone(),
            name: person.name.clone(),
        }
    }
}

/// Who is told about `payload`, caused by `actor`, on a ticket in `state`
/// (after the event), by `rules` (`--notify-rules`; by default those of
/// DESIGN §4):
/// - the requester: on creation, on every status change (a request for
///   missing data, the return from it and the auto-close among them) and on
///   every public comment by someone else than a requester;
/// - the assignee (when there is one): on assignment, on requester comments
///   and on an SLA breach.
///
/// Whatever the rules say, internal notes reach nobody (they are for
/// agents, who read the thread), and tickets without a number (SIMPLE
/// consultations) notify nobody.
pub fn recipients(
    rules: &Rules,
    state: &TicketState,
    actor: &Actor,
    payload: &EventPayload,
) -> Vec<Recipient> {
    if state.number.is_none() || payload.is_internal() {
        return vec![];
    }
    let is = Triggers::of_event(actor, payload);
    let mut told = vec![];
    if rules.requester.meets(is) {
        told.push(Recipient::of(
            Relation::Requester,
            &state.requester.person(),
        ));
    }
    if let Some(assignee) = &state.assignee
        && rules.assignee.meets(is)
    {
        told.push(Recipient::of(Relation::Assignee, &assignee.person()));
    }
    told
}

/// The event types an endpoint may subscribe to (the log's `event_type`).
pub const EVENT_TYPES: &[&str] = &[
    "created",
    "status_changed",
    "comment_added",
    "assigned",
    "reclassified",
    "sla_breached",
];

/// Whether an endpoint subscribed to `event_types` (empty: all) receives
/// `payload` of a ticket: never an internal note, never a ticket without a
/// number (a SIMPLE consultation).
pub fn webhook_wants(event_types: &[String], ticketed: bool, payload: &EventPayload) -> bool {
    ticketed
        && !payload.is_internal()
        && (event_types.is_empty() || event_types.iter().any(|t| t == payload.event_type()))
}

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub account: String,
    pub url: String,
    pub secret: String,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub paused: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which event goes where, on which channel: what names an outbox row, set
/// when it is written and never changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub id: String,
    pub channel: Channel,
    /// A webhook endpoint's id, or `email:requester` / `email:assignee`
    /// (the order of deliveries is kept per endpoint and ticket).
    pub endpoint_id: String,
    /// The URL posted to, or the e-mail address.
    pub target: String,
    pub ticket_id: String,
    pub ticket_type: TicketType,
    pub account: String,
    pub sequence: i64,
    pub event_type: String,
}

/// An outbox row (its payload aside): its route and how delivering it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub route: Route,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub retry_from: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

/// What a delivery list picks.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub account: Option<String>,
    pub states: Vec<DeliveryState>,
    pub endpoint_id: Option<String>,
    pub ticket_id: Option<String>,
}

/// A webhook endpoint as a CreateWebhookEndpoint request asks for it,
/// checked once at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub account: String,
    pub url: String,
    /// `None`: generate one.
    pub secret: Option<String>,
    /// Empty: every event type.
    pub event_types: Vec<String>,
}

/// Longest endpoint URL.
pub const MAX_URL: usize = 2_048;

impl WebhookSpec {
    /// Checks every field; INVALID_ARGUMENT names each bad one.
    pub fn parse(
        account: String,
        url: String,
        secret: String,
        event_types: Vec<String>,
    ) -> Result<Self> {
        let mut bad = vec![];
        let mut violation = |field: &str, why: String| bad.push(FieldViolation::new(field, why));
        if account.is_empty() || account.chars().count() > 128 {
            violation("account", "must be 1 to 128 characters".into());
        } else if account.chars().any(char::is_control) || account.trim() != account {
            violation(
                "account",
                "must have no control characters and no spaces at either end".into(),
            );
        }
        if let Err(why) = check_url(&url) {
            violation("url", why);
        }
        let secret = match secret.is_empty() {
            true => None,
            false => {
                let printable = secret.bytes().all(|b| b.is_ascii_graphic());
                if !(16..=256).contains(&secret.len()) || !printable {
                    violation(
                        "secret",
                        "must be 16 to 256 printable ASCII characters without spaces, or empty \
                         to have one generated"
                            .into(),
                    );
                }
                Some(secret)
            }
        };
        if event_types.len() > EVENT_TYPES.len() {
            violation(
                "event_types",
                format!("at most {} values", EVENT_TYPES.len()),
            );
        } else {
            for (i, t) in event_types.iter().enumerate() {
                if !EVENT_TYPES.contains(&t.as_str()) {
                    let shown: String = t.chars().take(64).collect();
                    violation(
                        &format!("event_types[{i}]"),
                        format!(
                            "unknown event type {shown:?}; use one of {}",
                            EVENT_TYPES.join(", ")
                        ),
                    );
                } else if event_types[..i].contains(t) {
                    violation(&format!("event_types[{i}]"), format!("{t} is listed twice"));
                }
            }
        }
        if !bad.is_empty() {
            return Err(Error::InvalidArgument(bad));
        }
        Ok(Self {
            account,
            url,
            secret,
            event_types,
        })
    }
}

/// Why `url` cannot be an endpoint: it must be
/// `https://host[:port][/path]` or `http://…` (lower-case schemes).
fn check_url(url: &str) -> std::result::Result<(), String> {
    if url.is_empty() || url.len() > MAX_URL {
        return Err(format!("must be 1 to {MAX_URL} characters"));
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err("must start with https:// or http://".into());
    };
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces (percent-encode the rest)".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("must not carry user info; the signature authenticates ticketd".into());
    }
    if url.contains('#') {
        return Err("must not have a fragment".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: [::1] or [::1]:port.
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
            None => ("", None),
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0)
    {
        return Err(format!("port {port:?} is not a number from 1 to 65535"));
    }
    if url.parse::<hyper::Uri>().is_err() {
        return Err("is not a valid URL".into());
    }
    Ok(())
}

/// A random secret for an endpoint registered without one.
pub fn generate_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("whsec_{hex}")
}

/// A person as a document names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonDoc {
    pub id: String,
    pub name: String,
}

impl PersonDoc {
    fn of(p: &Person) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
        }
    }

    fn person(&self) -> Person {
        Person {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }
}

/// A ticket as a webhook document carries it: its state after the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketState {
    pub id: String,
    /// INCIDENT or CONSULTATION.
    #[serde(rename = "type")]
    pub ticket_type: &'static str,
    /// The human number; absent for a SIMPLE consultation.
    pub number: Option<i64>,
    /// The stored status name, e.g. MISSING_DATA.
    pub status: &'static str,
    pub account: String,
    pub requester: PersonDoc,
    pub assignee: Option<PersonDoc>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    /// An incident waiting for the store's data closes by itself then.
    pub missing_data_closes_at: Option<String>,
    pub sla_breached: bool,
}

impl TicketState {
    /// `t` as it is after `payload` (an SLA breach is marked beside the
    /// ticket's own row, so it is counted here).
    pub fn after<T: Notifiable>(t: &T, payload: &EventPayload) -> Self {
        let mut state = Self::of(t);
        state.sla_breached |= matches!(payload, EventPayload::SlaBreached { .. });
        state
    }

    pub fn of<T: Notifiable>(t: &T) -> Self {
        let h = t.header();
        Self {
            id: h.id.clone(),
            ticket_type: T::TYPE.as_str(),
            number: h.number,
            status: super::Code::as_str(t.status()),
            account: h.account.clone(),
            requester: PersonDoc::of(&h.requester),
            assignee: h.assignee.as_ref().map(PersonDoc::of),
            version: h.version,
            created_at: rfc3339(h.created_at),
            updated_at: rfc3339(h.updated_at),
            missing_data_closes_at: t.closes_at().map(rfc3339),
            sla_breached: h.breached_at.is_some(),
        }
    }
}

/// Who caused the event, in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorDoc {
    pub id: String,
    pub name: String,
    /// requester, agent, admin or system.
    pub role: String,
}

/// The JSON document POSTed to a webhook endpoint for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDocument<'a> {
    /// The delivery id, also in the `Ticketd-Delivery` header: the same on
    /// every attempt, so that a receiver drops what it has already handled.
    pub id: &'a str,
    /// The event type (see `EVENT_TYPES`).
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// The event's global sequence; per ticket and endpoint, documents
    /// arrive in this order.
    pub sequence: i64,
    pub occurred_at: String,
    pub actor: ActorDoc,
    /// What happened, as the event log holds it.
    pub event: &'a EventPayload,
    pub ticket: TicketState,
    /// Whom ticketd would tell about it (see `recipients`), so that a chat
    /// integration knows whom to message.
    pub notify: Vec<Recipient>,
}

impl WebhookDocument<'_> {
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(e.into()))
    }
}

/// An instant (µs) as RFC 3339 in UTC with microseconds.
pub fn rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

string_enum!(
    /// How an outbox row travels: a signed POST to a webhook endpoint, or an
    /// e-mail over SMTP.
    Channel {
        Webhook = "webhook",
        Email = "email",
    }
);

string_enum!(
    /// Where an outbox row stands: PENDING (due at its next attempt, or being
    /// attempted now), DELIVERED (the receiver answered 2xx), DEAD (retries ran
    /// out past the horizon, or its endpoint was deleted), PAUSED (its endpoint
    /// is paused; resuming makes it pending).
    DeliveryState {
        Pending = "PENDING",
        Delivered = "DELIVERED",
        Dead = "DEAD",
        Paused = "PAUSED",
    }
);

/// When failed attempts are tried again: exponential back-off from `base`,
/// doubling per failure up to `max_delay`, until `horizon` after the row was
/// written (or retried by hand); past it the row is dead. All in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: i64,
    pub max_delay: i64,
    pub horizon: i64,
}

impl RetryPolicy {
    /// The wait after the `failed`-th failed attempt (1 for the first).
    pub fn delay(&self, failed: i64) -> i64 {
        let doublings = u32::try_from((failed - 1).clamp(0, 62)).unwrap_or(62);
        self.base
            .max(1)
            .saturating_mul(1_i64.checked_shl(doublings).unwrap_or(i64::MAX))
            .min(self.max_delay.max(1))
    }

    /// After the `failed`-th failure at `now` of a row retried since
    /// `retry_from`: when to try again, or `None` when that would be past
    /// the horizon (the row is dead).
    pub fn next_attempt(&self, failed: i64, retry_from: i64, now: i64) -> Option<i64> {
        let next = now.saturating_add(self.delay(failed));
        (next <= retry_from.saturating_add(self.horizon)).then_some(next)
    }
}

/// The `Ticketd-Signature` header of `body` sent at `t` (Unix seconds):
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (Stripe's scheme).
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2_011::Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notify_rules::Trigger;

    fn state(number: Option<i64>, assignee: bool) -> TicketState {
        TicketState {
            id: "t1".into(),
            ticket_type: "INCIDENT",
            number,
            status: "NEW_TICKET",
            account: "acme".into(),
            requester: PersonDoc {
                id: "store".into(),
                name: "Store".into(),
            },
            assignee: assignee.then(|| PersonDoc {
                id: "ana".into(),
                name: "Ana".into(),
            }),
            version: 1,
            created_at: rfc3339(0),
            updated_at: rfc3339(0),
            missing_data_closes_at: None,
            sla_breached: false,
        }
    }

    fn actor(role: &str) -> Actor {
        Actor {
            id: "x".into(),
            name: "X".into(),
            role: role.into(),
        }
    }

    fn comment(internal: bool) -> EventPayload {
        EventPayload::CommentAdded {
            comment_id: "c".into(),
            body: "b".into(),
            internal,
        }
    }

    fn told(state: &TicketState, by: &str, payload: &EventPayload) -> Vec<(Relation, String)> {
        told_by(&Rules::default(), state, by, payload)
    }

    fn told_by(
        rules: &Rules,
        state: &TicketState,
        by: &str,
        payload: &EventPayload,
    ) -> Vec<(Relation, String)> {
        recipients(rules, state, &actor(by), payload)
            .into_iter()
            .map(|r| (r.relation, r.id))
            .collect()
    }

    #[test]
    fn who_is_told_about_each_event_by_default() {
        use Relation::*;
        let assigned = state(Some(1), true);
        let status = EventPayload::StatusChanged {
            from: "NEW_TICKET".into(),
            to: "MISSING_DATA".into(),
            reason: None,
            comment: Some("falta la foto".into()),
        };
        let requester = vec![(Requester, "store".to_owned())];
        let assignee = vec![(Assignee, "ana".to_owned())];
        let created = EventPayload::Created {
            status: "NEW_TICKET".into(),
        };
        let assignment = EventPayload::Assigned {
            assignee_id: Some("ana".into()),
            assignee_name: Some("Ana".into()),
            previous_assignee_id: None,
        };
        let breach = EventPayload::SlaBreached { due_at: 5 };
        let reclassified = EventPayload::Reclassified {
            from: "SIMPLE".into(),
            to: "TECHNOLOGY".into(),
            due_at: None,
            number: Some(1),
        };
        type Row<'a> = (&'a str, &'a EventPayload, &'a Vec<(Relation, String)>);
        let table: &[Row] = &[
            ("requester", &created, &requester),
            ("agent", &status, &requester),
            // The auto-close and the return from MISSING_DATA are the system's.
            ("system", &status, &requester),
            ("agent", &comment(false), &requester),
            ("admin", &comment(false), &requester),
            ("requester", &comment(false), &assignee),
            ("agent", &comment(true), &vec![]),
            ("agent", &assignment, &assignee),
            ("system", &breach, &assignee),
            ("agent", &reclassified, &vec![]),
        ];
        for (by, payload, expected) in table {
            assert_eq!(&&told(&assigned, by, payload), expected, "{by} {payload:?}");
        }
        // Without an assignee, what is the assignee's reaches nobody.
        let unassigned = state(Some(1), false);
        for payload in [&comment(false), &breach, &assignment] {
            assert!(told(&unassigned, "requester", payload).is_empty());
        }
        // A ticket without a number (a SIMPLE consultation) tells nobody.
        let simple = state(None, true);
        for payload in [&created, &status, &comment(false), &assignment, &breach] {
            assert!(told(&simple, "agent", payload).is_empty(), "{payload:?}");
        }
    }

    #[test]
    fn configured_rules_decide_who_is_told_but_never_about_notes_or_simple_tickets() {
        use Relation::*;
        let assigned = state(Some(1), true);
        let to = |to: &str, reason: Option<&str>| EventPayload::StatusChanged {
            from: "MISSING_DATA".into(),
            to: to.into(),
            reason: reason.map(Into::into),
            comment: None,
        };
        let created = EventPayload::Created {
            status: "NEW_TICKET".into(),
        };
        let asked = to("MISSING_DATA", None);
        let moved = to("IN_PROGRESS", None);
        let closed = to("FINALIZED", Some("NO_CUSTOMER_RESPONSE"));
        let rules = Rules::parse("requester=missing_data,auto_close;assignee=status").unwrap();
        let requester = (Requester, "store".to_owned());
        let assignee = (Assignee, "ana".to_owned());
        assert_eq!(
            told_by(&rules, &assigned, "agent", &asked),
            [requester.clone(), assignee.clone()]
        );
        assert_eq!(
            told_by(&rules, &assigned, "system", &closed),
            [requester, assignee.clone()]
        );
        assert_eq!(told_by(&rules, &assigned, "agent", &moved), [assignee]);
        assert!(told_by(&rules, &assigned, "requester", &created).is_empty());
        assert!(told_by(&rules, &assigned, "agent", &comment(false)).is_empty());
        let only_created = Rules::parse("requester=created;assignee=").unwrap();
        assert_eq!(
            told_by(&only_created, &assigned, "requester", &created).len(),
            1
        );
        assert!(told_by(&only_created, &assigned, "agent", &moved).is_empty());
        // Everything to everyone still keeps notes and SIMPLE tickets quiet.
        let all = Trigger::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let everything = Rules::parse(&format!("requester={all};assignee={all}")).unwrap();
        for by in ["agent", "admin", "requester", "system"] {
            assert!(told_by(&everything, &assigned, by, &comment(true)).is_empty());
            let simple = state(None, true);
            for payload in [&created, &asked, &closed, &comment(false)] {
                assert!(told_by(&everything, &simple, by, payload).is_empty());
            }
        }
        assert_eq!(
            told_by(&everything, &assigned, "agent", &comment(false)).len(),
            2
        );
    }

    #[test]
    fn webhooks_get_their_subscribed_public_events_of_numbered_tickets() {
        let all: Vec<String> = vec![];
        let some = vec!["status_changed".to_owned()];
        let created = EventPayload::Created {
            status: "NEW_TICKET".into(),
        };
        assert!(webhook_wants(&all, true, &created));
        assert!(webhook_wants(&all, true, &comment(false)));
        assert!(!webhook_wants(&all, true, &comment(true)), "internal note");
        assert!(!webhook_wants(&all, false, &created), "SIMPLE consultation");
        assert!(!webhook_wants(&some, true, &created), "not subscribed");
        let status = EventPayload::StatusChanged {
            from: "A".into(),
            to: "B".into(),
            reason: None,
            comment: None,
        };
        assert!(webhook_wants(&some, true, &status));
        for payload in [&created, &status, &comment(false)] {
            assert!(EVENT_TYPES.contains(&payload.event_type()));
        }
    }

    #[test]
    fn back_off_doubles_up_to_its_cap_and_stops_at_the_horizon() {
        let s = 1_000_000;
        let policy = RetryPolicy {
            base: s,
            max_delay: 60 * s,
            horizon: 600 * s,
        };
        let delays: Vec<i64> = (1..=8).map(|n| policy.delay(n) / s).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(policy.delay(1_000), 60 * s, "no overflow");
        assert_eq!(policy.next_attempt(1, 0, 10 * s), Some(11 * s));
        assert_eq!(
            policy.next_attempt(7, 0, 540 * s),
            Some(600 * s),
            "at the horizon"
        );
        assert_eq!(policy.next_attempt(7, 0, 541 * s), None, "past it: dead");
        assert_eq!(
            policy.next_attempt(7, 100 * s, 541 * s),
            Some(601 * s),
            "retried by hand"
        );
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_timestamp_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "t=0,v1=".to_owned() + &hmac_hex(b"Jefe", b"0.what do ya want for nothing?")
        );
        let known = signature(b"Jefe", 1, b"x");
        assert!(known.starts_with("t=1,v1=") && known.len() == "t=1,v1=".len() + 64);
        assert_ne!(signature(b"Jefe", 2, b"x"), known, "the time is signed");
        assert_ne!(signature(b"Jeff", 1, b"x"), known, "the secret matters");
    }

    /// Independent HMAC-SHA256 (RFC 2104 over sha2), checked against RFC 4231.
    fn hmac_hex(key: &[u8], data: &[u8]) -> String {
        use sha2_011::Digest;
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key);
        let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
        let inner = sha2_011::Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(data)
            .finalize();
        let outer = sha2_011::Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        outer.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn endpoint_requests_are_checked_field_by_field() {
        let ok = |url: &str| {
            WebhookSpec::parse("acme".into(), url.into(), String::new(), vec![]).is_ok()
        };
        assert!(ok("http://127.0.0.1:8080/hooks?x=1"));
        assert!(ok("http://hooks.example.com/ticketd"));
        assert!(ok("http://[::1]:9000/"));
        assert!(ok("http://[::1]/"));
        assert!(ok("https://hooks.slack.com/services/T0/B0/x"));
        assert!(ok("https://127.0.0.1:8443/hooks"));
        assert!(ok("https://[::1]:8443/"));
        for bad in [
            "",
            "ftp://x/",
            "HTTPS://x/",
            "https:/x/",
            "https://",
            "https://u:p@x/",
            "https://x:0/",
            "ws://x/",
            "http://",
            "http://:80/",
            "http://u:p@x/",
            "http://x:0/",
            "http://x:99999/",
            "http://x/ y",
            "http://x/#frag",
        ] {
            assert!(!ok(bad), "{bad:?} should be refused");
        }
        let fields = |r: Result<WebhookSpec>| match r {
            Err(Error::InvalidArgument(v)) => v.into_iter().map(|v| v.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let all_bad = WebhookSpec::parse(
            " acme".into(),
            "nope".into(),
            "short".into(),
            vec!["created".into(), "nope".into(), "created".into()],
        );
        assert_eq!(
            fields(all_bad),
            [
                "account",
                "url",
                "secret",
                "event_types[1]",
                "event_types[2]"
            ]
        );
        let spec = WebhookSpec::parse(
            "acme".into(),
            "http://x/".into(),
            "0123456789abcdef".into(),
            vec!["created".into()],
        )
        .unwrap();
        assert_eq!(spec.secret.as_deref(), Some("0123456789abcdef"));
        assert!(generate_secret().starts_with("whsec_") && generate_secret() != generate_secret());
    }

    #[test]
    fn the_independent_hmac_matches_rfc_4231() {
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
