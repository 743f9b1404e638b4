//! Outbound notifications as use cases: the outbox rows an event writes
//! (inside its transaction, see `thread::append`), and the operations on
//! webhook endpoints and deliveries (NotificationService).
use std::sync::Arc;

use sea_orm::ConnectionTrait;
use tokio::sync::Notify;

use crate::domain::Labelled;
use crate::domain::clock::Clock;
use crate::domain::event::{Actor, EventPayload};
use crate::domain::mail::{self as domain_mail, Facts, Subject};
use crate::domain::notify::{
    self, ActorDoc, Channel, Delivery, DeliveryFilter, DeliveryState, Endpoint, Notifiable,
    Recipient, Relation, Route, TicketState, WebhookDocument, WebhookSpec,
};
use crate::domain::notify_rules::Rules;
use crate::domain::principal::{Locale, Principal, Role};
use crate::domain::{Error, Result};
use crate::store::Store;
use crate::store::entity::ticket_event;
use crate::store::outbox::{self, NewDelivery};

use super::mail::Mailing;

/// What an event writes into the outbox besides its webhook rows, set at
/// start: whom it tells (the e-mails' recipients, and the `notify` list of
/// the webhook documents) and, when e-mail is on, how e-mails are rendered.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// Who is told about what (`--notify-rules`).
    pub rules: Rules,
    /// E-mail is on (`--smtp-url`).
    pub mail: Option<Mailing>,
}

/// Endpoints one account may have.
pub const MAX_ENDPOINTS_PER_ACCOUNT: u64 = 20;

/// Writes the outbox rows of an event in `txn`, the event's own
/// transaction, so that they exist exactly when the event does: one per
/// endpoint of the ticket's account that wants `payload` (see
/// `notify::webhook_wants`; rows of a paused endpoint are written PAUSED),
/// and, when e-mail is on (`out.mail`), one e-mail per recipient with an
/// address (`notify::recipients` by `out.rules`).
pub async fn enqueue<T: Notifiable>(
    txn: &impl ConnectionTrait,
    ticket: &T,
    event: &ticket_event::Model,
    payload: &EventPayload,
    out: &Outbound,
) -> Result<()> {
    let h = ticket.header();
    let ticketed = h.number.is_some();
    if !ticketed || payload.is_internal() {
        return Ok(());
    }
    let endpoints =
        outbox::list_endpoints(txn, Some(&h.account), MAX_ENDPOINTS_PER_ACCOUNT).await?;
    let wanted: Vec<Endpoint> = endpoints
        .into_iter()
        .filter(|e| notify::webhook_wants(&e.event_types, ticketed, payload))
        .collect();
    if wanted.is_empty() && out.mail.is_none() {
        return Ok(());
    }
    let state = TicketState::after(ticket, payload);
    let actor = Actor {
        id: event.actor_id.clone(),
        name: event.actor_name.clone(),
        role: event.actor_role.clone(),
    };
    let told = notify::recipients(&out.rules, &state, &actor, payload);
    let mut rows = Vec::with_capacity(wanted.len() + told.len());
    for endpoint in wanted {
        let route = route(
            ticket,
            event,
            payload,
            Channel::Webhook,
            endpoint.id,
            endpoint.url,
        );
        let document = WebhookDocument {
            id: &route.id,
            event_type: payload.event_type(),
            sequence: event.sequence,
            occurred_at: notify::rfc3339(event.occurred_at),
            actor: ActorDoc {
                id: actor.id.clone(),
                name: actor.name.clone(),
                role: actor.role.clone(),
            },
            event: payload,
            ticket: state.clone(),
            notify: told.clone(),
        };
        let json = document.to_json()?;
        rows.push(NewDelivery {
            route,
            payload: json,
            state: match endpoint.paused {
                true => DeliveryState::Paused,
                false => DeliveryState::Pending,
            },
            at: event.occurred_at,
        });
    }
    if let Some(mail) = &out.mail {
        rows.extend(emails(ticket, event, payload, &actor, &told, mail)?);
    }
    outbox::insert_deliveries(txn, rows).await
}

/// A new row's route: `event` of `ticket`, to `target` (of `endpoint_id`)
/// on `channel`, under a new id.
fn route<T: Notifiable>(
    ticket: &T,
    event: &ticket_event::Model,
    payload: &EventPayload,
    channel: Channel,
    endpoint_id: String,
    target: String,
) -> Route {
    let h = ticket.header();
    Route {
        id: uuid::Uuid::now_v7().to_string(),
        channel,
        endpoint_id,
        target,
        ticket_id: h.id.clone(),
        ticket_type: T::TYPE,
        account: h.account.clone(),
        sequence: event.sequence,
        event_type: payload.event_type().to_owned(),
    }
}

/// The e-mails of an event: one per recipient with an address, rendered now
/// (the ticket as it is after the event), in the requester's language for
/// the requester and in Spanish for the assignee (an agent). Their
/// `endpoint_id` is `email:requester` or `email:assignee`, so that the
/// dispatcher's order rule keeps one recipient's e-mails of a ticket in
/// sequence order.
fn emails<T: Notifiable>(
    ticket: &T,
    event: &ticket_event::Model,
    payload: &EventPayload,
    actor: &Actor,
    told: &[Recipient],
    mail: &Mailing,
) -> Result<Vec<NewDelivery>> {
    let h = ticket.header();
    let (Some(subject), Some(number)) = (Subject::of(payload), h.number) else {
        return Ok(vec![]);
    };
    let (body, author) = match payload {
        EventPayload::CommentAdded { body, .. } => (body.as_str(), Some(actor.name.as_str())),
        EventPayload::StatusChanged {
            comment: Some(comment),
            ..
        } => (comment.as_str(), None),
        _ => (ticket.description(), None),
    };
    let mut rows = vec![];
    for recipient in told {
        let (address, locale, endpoint) = match recipient.relation {
            Relation::Requester => (
                &h.contacts.requester_email,
                h.contacts.locale,
                "email:requester",
            ),
            Relation::Assignee => (&h.contacts.assignee_email, Locale::Es, "email:assignee"),
        };
        let Some(to) = address else {
            continue;
        };
        let facts = Facts {
            locale,
            ticket_type: T::TYPE,
            number,
            subject: subject.clone(),
            status: ticket.status().label(locale),
            title: mail.catalog.category_name(ticket.category()),
            body,
            author,
            closes_at: ticket.closes_at(),
            time_zone: mail.time_zone,
            link: mail
                .frontend_url
                .as_deref()
                .map(|url| domain_mail::link(url, T::TYPE, &h.id)),
        };
        let route = route(
            ticket,
            event,
            payload,
            Channel::Email,
            endpoint.into(),
            to.clone(),
        );
        rows.push(NewDelivery {
            route,
            payload: domain_mail::render(to, &facts).to_json()?,
            state: DeliveryState::Pending,
            at: event.occurred_at,
        });
    }
    Ok(rows)
}

/// A page of deliveries.
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    /// The last id of the page, when more may follow.
    pub next: Option<String>,
}

/// The NotificationService operations on endpoints and deliveries.
#[derive(Clone)]
pub struct Notifications {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Wakes the dispatcher when rows become due without an event (a retry,
    /// a resumed endpoint).
    wake: Arc<Notify>,
}

impl Notifications {
    pub fn new(store: Store, clock: Arc<dyn Clock>, wake: Arc<Notify>) -> Self {
        Self { store, clock, wake }
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    /// Registers an endpoint (admins); its secret is in the answer.
    pub async fn create_endpoint(&self, who: &Principal, spec: WebhookSpec) -> Result<Endpoint> {
        admins_only(who, "register webhook endpoints")?;
        let now = self.now();
        let endpoint = Endpoint {
            id: uuid::Uuid::now_v7().to_string(),
            account: spec.account,
            url: spec.url,
            secret: spec.secret.unwrap_or_else(notify::generate_secret),
            event_types: spec.event_types,
            paused: false,
            created_by: who.sub.clone(),
            created_at: now,
            updated_at: now,
        };
        let stored = endpoint.clone();
        self.store
            .write(move |txn| {
                Box::pin(async move {
                    let count = outbox::count_endpoints(txn, &stored.account).await?;
                    if count >= MAX_ENDPOINTS_PER_ACCOUNT {
                        return Err(Error::FailedPrecondition(format!(
                            "account {} already has {count} webhook endpoints, the most it may \
                             have; delete one first",
                            stored.account
                        )));
                    }
                    outbox::insert_endpoint(txn, &stored).await
                })
            })
            .await?;
        Ok(endpoint)
    }

    /// Endpoints of `account`, or all (admins).
    pub async fn list_endpoints(
        &self,
        who: &Principal,
        account: Option<&str>,
    ) -> Result<Vec<Endpoint>> {
        admins_only(who, "list webhook endpoints")?;
        outbox::list_endpoints(self.store.conn(), account, 1_000).await
    }

    pub async fn delete_endpoint(&self, who: &Principal, id: &str) -> Result<()> {
        admins_only(who, "delete webhook endpoints")?;
        let (id, now) = (id.to_owned(), self.now());
        self.store
            .write(move |txn| {
                Box::pin(async move {
                    match outbox::delete_endpoint(txn, &id, now).await? {
                        true => Ok(()),
                        false => Err(Error::NotFound(format!("webhook endpoint {id}"))),
                    }
                })
            })
            .await
    }

    /// Pauses (`true`) or resumes an endpoint (admins).
    pub async fn set_paused(&self, who: &Principal, id: &str, paused: bool) -> Result<Endpoint> {
        let verb = match paused {
            true => "pause webhook endpoints",
            false => "resume webhook endpoints",
        };
        admins_only(who, verb)?;
        let (id, now) = (id.to_owned(), self.now());
        let endpoint = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    outbox::set_paused(txn, &id, paused, now)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("webhook endpoint {id}")))
                })
            })
            .await?;
        if !paused {
            self.wake.notify_one();
        }
        Ok(endpoint)
    }

    /// Deliveries `who` may see: all for admins, its account's for a
    /// requester; agents are refused.
    pub async fn list_deliveries(
        &self,
        who: &Principal,
        mut filter: DeliveryFilter,
        after: Option<String>,
        page_size: u64,
    ) -> Result<DeliveryPage> {
        match who.role {
            Role::Admin => {}
            Role::Requester => {
                let own = who.account.clone();
                if filter.account.is_some() && filter.account != own {
                    // Another account's deliveries do not exist for it.
                    return Ok(DeliveryPage {
                        deliveries: vec![],
                        next: None,
                    });
                }
                filter.account = own;
            }
            Role::Agent => {
                return Err(Error::PermissionDenied(
                    "only admins and requesters (their own account's) list deliveries".into(),
                ));
            }
        }
        let mut deliveries =
            outbox::list_deliveries(self.store.conn(), &filter, after.as_deref(), page_size + 1)
                .await?;
        let more = deliveries.len() as u64 > page_size;
        deliveries.truncate(page_size as usize);
        let next = more
            .then(|| deliveries.last().map(|d| d.route.id.clone()))
            .flatten();
        Ok(DeliveryPage { deliveries, next })
    }

    /// Makes a dead delivery due again now (admins).
    pub async fn retry(&self, who: &Principal, id: &str) -> Result<Delivery> {
        admins_only(who, "retry deliveries")?;
        let (id, now) = (id.to_owned(), self.now());
        let delivery = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    let Some(found) = outbox::find_delivery(txn, &id).await? else {
                        return Err(Error::NotFound(format!("delivery {id}")));
                    };
                    if found.state != DeliveryState::Dead {
                        return Err(Error::FailedPrecondition(format!(
                            "delivery {id} is {}, not DEAD; only dead deliveries are retried",
                            found.state.as_str()
                        )));
                    }
                    // An e-mail has no endpoint: its address is in the row.
                    if found.route.channel == Channel::Webhook
                        && outbox::find_endpoint(txn, &found.route.endpoint_id)
                            .await?
                            .is_none()
                    {
                        return Err(Error::FailedPrecondition(format!(
                            "delivery {id} cannot be retried: its endpoint {} was deleted",
                            found.route.endpoint_id
                        )));
                    }
                    outbox::retry(txn, &id, now).await?;
                    outbox::find_delivery(txn, &id)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("delivery {id}")))
                })
            })
            .await?;
        self.wake.notify_one();
        Ok(delivery)
    }
}

fn admins_only(who: &Principal, verb: &str) -> Result<()> {
    match who.role {
        Role::Admin => Ok(()),
        Role::Agent | Role::Requester => {
            Err(Error::PermissionDenied(format!("only admins {verb}")))
        }
    }
}
