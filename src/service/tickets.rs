//! The one workflow both ticket types run through: idempotent filing,
//! loading with the access check, versioned changes with their events in one
//! transaction, comments, assignment, SLA breaches, lists and exports. Each
//! ticket type's service adds only what is its own (`incidents`,
//! `consultations`); the rules themselves are the domain's.
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use tokio::sync::{Notify, mpsc};

use super::export::{self, Export, RowSource};
use super::thread;
use crate::domain::catalog::Catalog;
use crate::domain::clock::Clock;
use crate::domain::event::{Comment, Event, EventPayload};
use crate::domain::principal::{Locale, Principal};
use crate::domain::text::fold;
use crate::domain::ticket::{
    self, By, Criteria, Header, Idempotency, Lookup, Outcome, Person, Ticket,
};
use crate::domain::{Error, Result};
use crate::report::columns::Column;
use crate::store::events::{self, ActorRef};
use crate::store::tickets::{self, ExportRow, RowStream, Stored, TicketFilter, TicketTable, Tie};
use crate::store::{self, Snapshot, Store, db_error};

/// A ticket type the workflow can run: its domain rules and its rows.
pub trait Kind: Stored {}

impl<T: Stored> Kind for T {}

/// A list request of one ticket type (ListIncidents, ListConsultations,
/// the filter of their reports), as parsed at the edge.
pub trait Query<T: Kind>: Send + Sync {
    /// The filters every ticket type has.
    fn criteria(&mut self) -> &mut Criteria;

    /// What `who` may list of it: its account only for a requester, the
    /// catalog codes checked (INVALID_ARGUMENT naming the field), the
    /// status narrowing.
    fn selection(&self, who: &Principal, catalog: &Catalog) -> Result<Selection<T>>;
}

/// The validated filters of a list or a report, with its status narrowing.
pub struct Selection<T: Kind> {
    pub filter: T::Filter,
    /// The statuses to show; `None` for all. Counts ignore it.
    pub statuses: Option<Vec<T::Status>>,
}

/// A page of a ticket list.
pub struct Page<T: Kind> {
    pub tickets: Vec<T>,
    /// (created_at, tie) of the page's last ticket, when more follow.
    pub next: Option<(i64, Tie<T>)>,
    /// How many tickets the whole selection holds.
    pub total_size: i64,
    /// Per status, for the filters without the status narrowing.
    pub counts: Vec<(T::Status, i64)>,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone)]
pub struct Paging<Tie> {
    pub descending: bool,
    pub after: Option<(i64, Tie)>,
    pub page_size: u64,
}

pub struct Workflow<T> {
    store: Store,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    /// Poked when a deadline is set, so the scheduler re-plans its sleep.
    deadlines: Arc<Notify>,
    /// An export whose client takes nothing for this long is abandoned.
    export_stall: Duration,
    ticket: PhantomData<fn() -> T>,
}

impl<T> Clone for Workflow<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            clock: self.clock.clone(),
            deadlines: self.deadlines.clone(),
            export_stall: self.export_stall,
            ticket: PhantomData,
        }
    }
}

/// A change under way: the write transaction, the ticket as it is in it,
/// who asks, and when.
pub struct Change<'a, T: Kind> {
    flow: &'a Workflow<T>,
    txn: DatabaseTransaction,
    pub current: T,
    /// Who is recorded as making it.
    caller: ActorRef<'a>,
    pub now: i64,
}

impl<T: Kind> Change<'_, T> {
    /// The next number of the ticket type's counter, inside the change.
    pub async fn next_number(&self) -> Result<i64> {
        store::next_value(&self.txn, <T::Table as TicketTable>::NUMBERS).await
    }

    /// Writes the outcome (if the ticket is still at the version read), its
    /// comment and events, and commits.
    pub async fn finish(self, outcome: Outcome<T>) -> Result<T> {
        let Change {
            flow,
            txn,
            current,
            caller,
            now,
        } = self;
        flow.record(&txn, caller, &current, &outcome, now).await?;
        flow.store.commit(txn).await?;
        flow.poke_if_new_deadline(Some(&current), &outcome.next);
        Ok(outcome.next)
    }
}

impl<T: Kind> Workflow<T> {
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        deadlines: Arc<Notify>,
        export_stall: Duration,
    ) -> Self {
        Self {
            store,
            catalog,
            clock,
            deadlines,
            export_stall,
            ticket: PhantomData,
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The signal raised when a change sets a new deadline.
    pub fn deadlines(&self) -> Arc<Notify> {
        self.deadlines.clone()
    }

    /// Now, in µs since the epoch.
    pub fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    /// A ticket the caller may see; another account's is NOT_FOUND.
    pub async fn get(&self, who: &Principal, lookup: &Lookup) -> Result<T> {
        self.load(self.store.conn(), who, lookup).await
    }

    async fn load(
        &self,
        conn: &impl ConnectionTrait,
        who: &Principal,
        lookup: &Lookup,
    ) -> Result<T> {
        match tickets::find::<T>(conn, lookup).await? {
            Some(t) if ticket::may_see(who, &t) => Ok(t),
            _ => Err(Error::NotFound(match lookup {
                Lookup::Id(id) => format!("{} {id}", T::TYPE.noun()),
                Lookup::Number(n) => format!("{} number {n}", T::TYPE.noun()),
            })),
        }
    }

    /// Files a ticket `who` asks for; `file` makes it from its header (with
    /// a number when `numbered`). A retry with the same idempotency key
    /// gets the ticket the first request made, also when two replicas race.
    pub async fn create(
        &self,
        who: &Principal,
        key: Option<String>,
        fingerprint: String,
        numbered: bool,
        file: impl FnOnce(Header) -> Result<Outcome<T>>,
    ) -> Result<T> {
        // Who may file, before anything is read.
        let idempotency = key.map(|key| Idempotency {
            key,
            request_hash: fingerprint.clone(),
        });
        let draft = Header::filed(T::TYPE, who, None, 0, idempotency)?;
        let txn = self.store.begin_write().await?;
        if let Some(i) = &draft.idempotency
            && let Some(existing) =
                tickets::find_by_idempotency_key::<T>(&txn, &draft.account, &i.key).await?
        {
            drop(txn);
            return ticket::same_request(existing, &fingerprint);
        }
        let now = self.now();
        let number = match numbered {
            true => Some(store::next_value(&txn, <T::Table as TicketTable>::NUMBERS).await?),
            false => None,
        };
        let header = Header {
            number,
            created_at: now,
            updated_at: now,
            ..draft
        };
        let outcome = file(header)?;
        let created = &outcome.next;
        if let Err(err) = tickets::insert(&txn, created, self.search_text(created)).await {
            // Another replica's transaction with the same key won the race.
            if store::is_unique_violation(&err)
                && let Some(i) = &created.header().idempotency
            {
                drop(txn);
                let account = &created.header().account;
                if let Some(existing) =
                    tickets::find_by_idempotency_key::<T>(self.store.conn(), account, &i.key)
                        .await?
                {
                    return ticket::same_request(existing, &fingerprint);
                }
            }
            return Err(db_error(err));
        }
        self.append(&txn, ActorRef::of(who), created, &outcome.events, now)
            .await?;
        self.store.commit(txn).await?;
        self.poke_if_new_deadline(None, &outcome.next);
        Ok(outcome.next)
    }

    /// Starts a change of ticket `id`: a write transaction with the ticket
    /// as it is now. Another account's ticket is NOT_FOUND here, before
    /// anything is refused.
    pub async fn begin<'a>(&'a self, who: &'a Principal, id: &str) -> Result<Change<'a, T>> {
        let txn = self.store.begin_write().await?;
        let current = self.load(&txn, who, &Lookup::Id(id.to_owned())).await?;
        Ok(Change {
            flow: self,
            txn,
            current,
            caller: ActorRef::of(who),
            now: self.now(),
        })
    }

    /// A versioned change, its checks in order: the ticket is visible
    /// (NOT_FOUND), `authorize` lets `who` ever make it (PERMISSION_DENIED),
    /// the version is the one read (ABORTED), then `decide` applies the rule
    /// (input and state: INVALID_ARGUMENT, FAILED_PRECONDITION).
    pub async fn change(
        &self,
        who: &Principal,
        id: &str,
        expected_version: Option<i64>,
        authorize: impl FnOnce(&T) -> Result<()>,
        decide: impl FnOnce(&T, i64) -> Result<Outcome<T>>,
    ) -> Result<T> {
        let change = self.begin(who, id).await?;
        authorize(&change.current)?;
        ticket::check_version(&change.current, expected_version)?;
        let outcome = decide(&change.current, change.now)?;
        change.finish(outcome).await
    }

    /// Assigns the ticket, or unassigns it with `None`; agents only.
    pub async fn assign(
        &self,
        who: &Principal,
        id: &str,
        assignee: Option<Person>,
        expected_version: i64,
    ) -> Result<T> {
        self.change(
            who,
            id,
            Some(expected_version),
            |_| ticket::agents_only::<T>(who, "assign"),
            |current, now| Ok(ticket::assign(current, assignee, now)),
        )
        .await
    }

    /// Adds a comment, and whatever a requester's comment does to the
    /// ticket (see `Ticket::on_requester_comment`).
    pub async fn add_comment(
        &self,
        who: &Principal,
        id: &str,
        body: String,
        internal: bool,
    ) -> Result<Comment> {
        let change = self.begin(who, id).await?;
        ticket::may_comment(who, internal)?;
        let (current, now) = (&change.current, change.now);
        let actor = ActorRef::of(who);
        let comment = thread::insert_comment(
            &change.txn,
            T::TYPE,
            current.header(),
            actor,
            &body,
            internal,
            now,
        )
        .await?;
        let follow_up = match who.is_agent() {
            false => current.on_requester_comment(now),
            true => None,
        };
        match follow_up {
            Some(outcome) => {
                change.finish(outcome).await?;
            }
            None => self.store.commit(change.txn).await?,
        }
        Ok(comment)
    }

    pub async fn list_comments(
        &self,
        who: &Principal,
        id: &str,
        after: Option<(i64, String)>,
        limit: u64,
    ) -> Result<(Vec<Comment>, bool)> {
        let conn = self.store.conn();
        let ticket = self.load(conn, who, &Lookup::Id(id.to_owned())).await?;
        thread::list_comments(conn, &ticket.header().id, who, after, limit).await
    }

    pub async fn list_events(
        &self,
        who: &Principal,
        id: &str,
        after_sequence: i64,
        limit: u64,
    ) -> Result<(Vec<Event>, bool)> {
        let conn = self.store.conn();
        let ticket = self.load(conn, who, &Lookup::Id(id.to_owned())).await?;
        thread::list_events(conn, &ticket.header().id, who, after_sequence, limit).await
    }

    /// A page of the tickets `query` picks for `who`, with the per-status counts.
    pub async fn list(
        &self,
        who: &Principal,
        query: &impl Query<T>,
        paging: Paging<Tie<T>>,
    ) -> Result<Page<T>> {
        let conn = self.store.conn();
        let Selection {
            mut filter,
            statuses,
        } = query.selection(who, &self.catalog)?;
        let counts = tickets::count_by_status::<T>(conn, &filter).await?;
        let total_size = counts
            .iter()
            .filter(|(s, _)| statuses.as_ref().is_none_or(|only| only.contains(s)))
            .map(|(_, n)| n)
            .sum();
        let mut page = Page {
            tickets: vec![],
            next: None,
            total_size,
            counts,
        };
        if let Some(only) = &statuses {
            if only.is_empty() {
                return Ok(page);
            }
            filter.common().statuses = only
                .iter()
                .map(|s| crate::domain::Code::as_str(*s))
                .collect();
        }
        let limit = paging.page_size;
        let mut tickets =
            tickets::page::<T>(conn, &filter, paging.descending, paging.after, limit + 1).await?;
        if tickets.len() as u64 > limit {
            tickets.truncate(limit as usize);
            page.next = tickets.last().map(|t| (t.header().created_at, t.tie()));
        }
        page.tickets = tickets;
        Ok(page)
    }

    /// Starts an export of the tickets `query` picks for `who`, oldest
    /// first; returns the row count and the file's chunks.
    pub async fn export(
        &self,
        who: &Principal,
        query: &impl Query<T>,
        columns: Vec<&'static Column<ExportRow<T>>>,
        locale: Locale,
        time_zone: Tz,
    ) -> Result<(i64, mpsc::Receiver<Result<Vec<u8>>>)> {
        let Selection {
            mut filter,
            statuses,
        } = query.selection(who, &self.catalog)?;
        let empty = statuses.as_ref().is_some_and(Vec::is_empty);
        if let Some(only) = &statuses {
            filter.common().statuses = only
                .iter()
                .map(|s| crate::domain::Code::as_str(*s))
                .collect();
        }
        let txn = self.store.begin_snapshot(&who.quota_key()).await?;
        let count = match empty {
            true => 0,
            false => tickets::count(&*txn, &filter).await?,
        };
        let source = Rows::<T> { txn, filter, empty };
        let export = Export {
            source,
            columns,
            catalog: self.catalog.clone(),
            locale,
            time_zone,
            now: self.now(),
            stall_timeout: self.export_stall,
        };
        Ok((count, export::start(export)))
    }

    /// The earliest target an open ticket may still breach (µs).
    pub async fn next_breach(&self) -> Result<Option<i64>> {
        tickets::next_breach::<T>(self.store.conn()).await
    }

    /// Records one sla_breached event for every open ticket whose target has
    /// passed (paused ones wait). Exactly once, also with several replicas:
    /// the mark is set under the write lock only where it is still unset.
    pub async fn breach_due(&self) -> Result<usize> {
        let now = self.now();
        let due = tickets::due_breach::<T>(self.store.conn(), now, 100).await?;
        let mut marked = 0;
        for candidate in due {
            let txn = self.store.begin_write().await?;
            let lookup = Lookup::Id(candidate.header().id.clone());
            let Some(current) = tickets::find::<T>(&txn, &lookup).await? else {
                continue;
            };
            let Some(event) = ticket::breach(&current, now) else {
                continue;
            };
            if !tickets::mark_breached::<T>(&txn, &current.header().id, now).await? {
                continue;
            }
            let ctx = thread::context(T::TYPE, current.header(), ActorRef::SYSTEM, now);
            events::append(&txn, &ctx, &event).await?;
            self.store.commit(txn).await?;
            marked += 1;
        }
        Ok(marked)
    }

    /// Applies `decide` to every ticket in `due` that it still finds due,
    /// each in its own transaction, as the system (auto-close). Safe with
    /// several replicas: each ticket is re-read under the write lock, and
    /// only one replica finds it still due. Returns how many changed.
    pub async fn sweep(
        &self,
        due: Vec<T>,
        decide: impl Fn(&T, i64) -> Option<Outcome<T>>,
    ) -> Result<usize> {
        let mut changed = 0;
        for candidate in due {
            let txn = self.store.begin_write().await?;
            let lookup = Lookup::Id(candidate.header().id.clone());
            let Some(current) = tickets::find::<T>(&txn, &lookup).await? else {
                continue;
            };
            let now = self.now();
            let Some(outcome) = decide(&current, now) else {
                continue;
            };
            let change = Change {
                flow: self,
                txn,
                current,
                caller: ActorRef::SYSTEM,
                now,
            };
            change.finish(outcome).await?;
            changed += 1;
        }
        Ok(changed)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The folded text free-text search looks in.
    fn search_text(&self, t: &T) -> String {
        fold(&t.search_fields(&self.catalog).join("\n"))
    }

    /// Persists an outcome of a change from `current`, its comment and its
    /// events, inside `txn`.
    async fn record(
        &self,
        txn: &DatabaseTransaction,
        caller: ActorRef<'_>,
        current: &T,
        outcome: &Outcome<T>,
        now: i64,
    ) -> Result<()> {
        let next = &outcome.next;
        let version = current.header().version;
        if !tickets::update_versioned(txn, next, self.search_text(next), version).await? {
            return Err(Error::Aborted(format!(
                "{} changed meanwhile; read it again and retry",
                next.name()
            )));
        }
        if let Some(body) = &outcome.comment {
            thread::insert_comment(txn, T::TYPE, next.header(), caller, body, false, now).await?;
        }
        self.append(txn, caller, next, &outcome.events, now).await
    }

    async fn append(
        &self,
        txn: &DatabaseTransaction,
        caller: ActorRef<'_>,
        ticket: &T,
        emitted: &[(By, EventPayload)],
        now: i64,
    ) -> Result<()> {
        for (by, event) in emitted {
            let actor = match by {
                By::Caller => caller,
                By::System => ActorRef::SYSTEM,
            };
            let ctx = thread::context(T::TYPE, ticket.header(), actor, now);
            events::append(txn, &ctx, event).await?;
        }
        Ok(())
    }

    /// Wakes the scheduler when `next` has a deadline `current` did not.
    fn poke_if_new_deadline(&self, current: Option<&T>, next: &T) {
        let before = current.and_then(Ticket::next_deadline);
        if let Some(at) = next.next_deadline()
            && before != Some(at)
        {
            self.deadlines.notify_one();
        }
    }
}

/// Tickets in creation order, for exports.
struct Rows<T: Kind> {
    /// The export's snapshot: the count and the rows read the same data.
    txn: Snapshot,
    filter: T::Filter,
    /// The status narrowing left nothing to match.
    empty: bool,
}

impl<T: Kind> RowSource for Rows<T> {
    type Row = ExportRow<T>;

    async fn rows(&self) -> Result<RowStream<'_, ExportRow<T>>> {
        if self.empty {
            return Ok(Box::pin(tokio_stream::empty()));
        }
        tickets::stream::<T>(&self.txn, &self.filter).await
    }
}
