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
use tokio::sync::mpsc;

use super::scheduler::Alarm;

use super::export::{self, Export, RowSource};
use super::notify::Outbound;
use super::thread::{self, Thread};
use crate::domain::catalog::Catalog;
use crate::domain::clock::Clock;
use crate::domain::event::{Comment, EventPayload};
use crate::domain::notify::Notifiable;
use crate::domain::principal::{Locale, Principal};
use crate::domain::ticket::{
    self, By, Criteria, Header, Idempotency, Lookup, Outcome, Person, Search, Ticket,
};
use crate::domain::{Error, Result};
use crate::report::columns::Column;
use crate::store::events::ActorRef;
use crate::store::search::{self, Matching};
use crate::store::tickets::{self, Filter, RowStream, Stored, TicketFilter, TicketTable, Tie};
use crate::store::writer::TxnFuture;
use crate::store::{self, Snapshot, Store, db_error};

/// A ticket type the workflow can run: its domain rules and its rows.
pub trait Kind: Stored + Notifiable {}

impl<T: Stored + Notifiable> Kind for T {}

/// A list request of one ticket type (ListIncidents, ListConsultations,
/// the filter of their reports), as parsed at the edge: the criteria every
/// type has and the type's own filters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery<Own> {
    pub criteria: Criteria,
    pub own: Own,
}

/// The filters only one ticket type has (stage and carrier, complexity…).
pub trait OwnFilters<T: Kind>: Send + Sync {
    /// The type's filter around `common` (what every list of it filters),
    /// the catalog codes checked (INVALID_ARGUMENT naming the field), and
    /// the status narrowing.
    fn selection(&self, common: Filter, catalog: &Catalog) -> Result<Selection<T>>;
}

impl<Own> ListQuery<Own> {
    /// What `who` may list: its account only for a requester.
    fn selection<T: Kind>(&self, who: &Principal, catalog: &Catalog) -> Result<Selection<T>>
    where
        Own: OwnFilters<T>,
    {
        let common = common_filter::<T>(who, &self.criteria, catalog);
        self.own.selection(common, catalog)
    }
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
    /// The counts (and `total_size`) are estimates: a search matched more
    /// than `search::EXACT_UP_TO` tickets.
    pub approximate: bool,
}

/// The filters every list of `T` has: the caller's scope, the criteria, and
/// the search their text asks for.
fn common_filter<T: Ticket>(who: &Principal, criteria: &Criteria, catalog: &Catalog) -> Filter {
    Filter {
        account: who.scope().map(str::to_owned),
        statuses: vec![],
        criteria: criteria.clone(),
        search: criteria
            .text
            .as_deref()
            .map(|t| Search::new::<T>(t, catalog)),
        matching: Matching::default(),
    }
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
    deadlines: Arc<Alarm>,
    /// An export whose client takes nothing for this long is abandoned.
    export_stall: Duration,
    /// Who events tell (`--notify-rules`), and e-mail when it is on
    /// (`--smtp-url`): what events write into the outbox.
    outbound: Arc<Outbound>,
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
            outbound: self.outbound.clone(),
            ticket: PhantomData,
        }
    }
}

impl<T: Kind> Workflow<T> {
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        deadlines: Arc<Alarm>,
        export_stall: Duration,
    ) -> Self {
        Self {
            store,
            catalog,
            clock,
            deadlines,
            export_stall,
            outbound: Arc::default(),
            ticket: PhantomData,
        }
    }

    /// Sets the notification rules, and e-mail on or off.
    pub fn set_outbound(&mut self, outbound: Arc<Outbound>) {
        self.outbound = outbound;
    }

    fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The catalog, for rules that run inside a write.
    pub fn shared_catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    /// The signal raised when a change sets a new deadline.
    pub fn deadlines(&self) -> Arc<Alarm> {
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
    /// gets the ticket the first request made, also when it lands in the
    /// same batch or another replica's.
    pub async fn create(
        &self,
        who: &Principal,
        key: Option<String>,
        fingerprint: String,
        numbered: bool,
        file: impl FnOnce(Header) -> Result<Outcome<T>> + Send + 'static,
    ) -> Result<T> {
        // Who may file, before anything is read.
        let idempotency = key.map(|key| Idempotency {
            key,
            request_hash: fingerprint.clone(),
        });
        let draft = Header::filed(T::TYPE, who, None, 0, idempotency)?;
        let (flow, caller) = (self.clone(), who.clone());
        let account = draft.account.clone();
        let key = draft.idempotency.as_ref().map(|i| i.key.clone());
        let filed = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    if let Some(i) = &draft.idempotency
                        && let Some(existing) =
                            tickets::find_by_idempotency_key::<T>(txn, &draft.account, &i.key)
                                .await?
                    {
                        return Ok(Filed::Existing(existing));
                    }
                    let now = flow.now();
                    let number = match numbered {
                        true => Some(store::next_value(txn, T::Table::NUMBERS).await?),
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
                    if let Err(err) = tickets::insert(txn, created).await {
                        return Err(match store::is_unique_violation(&err) {
                            // Another replica committed the same key first.
                            true => Error::Aborted(RACED.into()),
                            false => db_error(err),
                        });
                    }
                    let actor = ActorRef::of(&caller);
                    flow.append(txn, actor, created, &outcome.events, now)
                        .await?;
                    Ok(Filed::New(outcome.next))
                })
            })
            .await;
        match (filed, key) {
            (Ok(Filed::New(created)), _) => {
                self.poke_if_new_deadline(None, &created);
                Ok(created)
            }
            (Ok(Filed::Existing(existing)), _) => ticket::same_request(existing, &fingerprint),
            (Err(Error::Aborted(why)), Some(key)) if why == RACED => {
                let conn = self.store.conn();
                match tickets::find_by_idempotency_key::<T>(conn, &account, &key).await? {
                    Some(existing) => ticket::same_request(existing, &fingerprint),
                    None => Err(Error::Aborted(RACED.into())),
                }
            }
            (Err(e), _) => Err(e),
        }
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
        authorize: impl FnOnce(&T) -> Result<()> + Send + 'static,
        decide: impl FnOnce(&T, i64) -> Result<Outcome<T>> + Send + 'static,
    ) -> Result<T> {
        let never = |_: &T| false;
        self.change_numbered(who, id, expected_version, authorize, never, |t, now, _| {
            decide(t, now)
        })
        .await
    }

    /// `change`, for a rule that may give the ticket its number: when
    /// `wants_number` says so, `decide` gets the next one of the counter.
    pub async fn change_numbered(
        &self,
        who: &Principal,
        id: &str,
        expected_version: Option<i64>,
        authorize: impl FnOnce(&T) -> Result<()> + Send + 'static,
        wants_number: impl FnOnce(&T) -> bool + Send + 'static,
        decide: impl FnOnce(&T, i64, Option<i64>) -> Result<Outcome<T>> + Send + 'static,
    ) -> Result<T> {
        let (flow, caller, id) = (self.clone(), who.clone(), id.to_owned());
        let (current, next) = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    let current = flow.load(txn, &caller, &Lookup::Id(id)).await?;
                    authorize(&current)?;
                    ticket::check_version(&current, expected_version)?;
                    let number = match wants_number(&current) {
                        true => Some(store::next_value(txn, T::Table::NUMBERS).await?),
                        false => None,
                    };
                    let now = flow.now();
                    let outcome = decide(&current, now, number)?;
                    let actor = ActorRef::of(&caller);
                    flow.record(txn, actor, &current, &outcome, now).await?;
                    Ok((current, outcome.next))
                })
            })
            .await?;
        self.poke_if_new_deadline(Some(&current), &next);
        Ok(next)
    }

    /// Assigns the ticket, or unassigns it with `None`; agents only. The
    /// assignee's e-mails go to `email`, if given.
    pub async fn assign(
        &self,
        who: &Principal,
        id: &str,
        assignee: Option<Person>,
        email: Option<String>,
        expected_version: i64,
    ) -> Result<T> {
        let role = who.clone();
        self.change(
            who,
            id,
            Some(expected_version),
            move |_| ticket::agents_only::<T>(&role, "assign"),
            |current, now| Ok(ticket::assign(current, assignee, email, now)),
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
        let (flow, caller, id) = (self.clone(), who.clone(), id.to_owned());
        let (comment, moved) = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    // Another account's ticket is NOT_FOUND before anything is refused.
                    let current = flow.load(txn, &caller, &Lookup::Id(id)).await?;
                    ticket::may_comment(&caller, internal)?;
                    let now = flow.now();
                    let actor = ActorRef::of(&caller);
                    let comment = thread::insert_comment(
                        txn,
                        &current,
                        actor,
                        &body,
                        internal,
                        now,
                        flow.outbound(),
                    )
                    .await?;
                    let follow_up = match caller.is_agent() {
                        false => current.on_requester_comment(now),
                        true => None,
                    };
                    let Some(outcome) = follow_up else {
                        return Ok((comment, None));
                    };
                    flow.record(txn, actor, &current, &outcome, now).await?;
                    Ok((comment, Some((current, outcome.next))))
                })
            })
            .await?;
        if let Some((current, next)) = moved {
            self.poke_if_new_deadline(Some(&current), &next);
        }
        Ok(comment)
    }

    /// A page of the ticket's comments or events, as `who` may see them,
    /// and whether more follow; NOT_FOUND for a ticket it may not see.
    pub async fn thread<I: Thread>(
        &self,
        who: &Principal,
        id: &str,
        after: I::After,
        limit: u64,
    ) -> Result<(Vec<I>, bool)> {
        let conn = self.store.conn();
        let ticket = self.load(conn, who, &Lookup::Id(id.to_owned())).await?;
        thread::page(conn, &ticket.header().id, who, after, limit).await
    }

    /// A page of the tickets `query` picks for `who`, with the per-status
    /// counts (see `store::search` for how a search is answered).
    pub async fn list(
        &self,
        who: &Principal,
        query: &ListQuery<impl OwnFilters<T>>,
        paging: Paging<Tie<T>>,
    ) -> Result<Page<T>> {
        let conn = self.store.lists();
        let Selection {
            mut filter,
            statuses,
        } = query.selection(who, &self.catalog)?;
        let picked = |s: &T::Status| statuses.as_ref().is_none_or(|only| only.contains(s));
        if let Some(keys) = search::probe::<T>(conn, &filter).await? {
            return self.page_of(conn, keys, picked, paging).await;
        }
        let mut counts = search::totals::<T>(conn, &filter).await?;
        let approximate = filter.common().search.is_some();
        if approximate {
            counts = search::estimate::<T>(conn, &filter, &counts).await?;
        }
        let mut page = Page {
            tickets: vec![],
            next: None,
            total_size: counts
                .iter()
                .filter(|(s, _)| picked(s))
                .map(|(_, n)| n)
                .sum(),
            counts,
            approximate,
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

    /// A page out of every match of a search (its keys), with exact counts.
    async fn page_of(
        &self,
        conn: &impl ConnectionTrait,
        keys: Vec<search::Key<T>>,
        picked: impl Fn(&T::Status) -> bool,
        paging: Paging<Tie<T>>,
    ) -> Result<Page<T>> {
        let mut counts: Vec<(T::Status, i64)> = vec![];
        for key in &keys {
            match counts.iter_mut().find(|(s, _)| *s == key.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((key.status, 1)),
            }
        }
        let mut keys: Vec<_> = keys.into_iter().filter(|k| picked(&k.status)).collect();
        let total_size = keys.len() as i64;
        keys.sort_by(|a, b| (a.created_at, &a.tie).cmp(&(b.created_at, &b.tie)));
        if paging.descending {
            keys.reverse();
        }
        if let Some((at, tie)) = &paging.after {
            let after = (*at, tie);
            keys.retain(|k| match paging.descending {
                true => (k.created_at, &k.tie) < after,
                false => (k.created_at, &k.tie) > after,
            });
        }
        let limit = (paging.page_size as usize).max(1);
        let next =
            (keys.len() > limit).then(|| (keys[limit - 1].created_at, keys[limit - 1].tie.clone()));
        keys.truncate(limit);
        Ok(Page {
            tickets: search::fetch::<T>(conn, &keys).await?,
            next,
            total_size,
            counts,
            approximate: false,
        })
    }

    /// Starts an export of the tickets `query` picks for `who`, oldest
    /// first; returns the row count and the file's chunks.
    pub async fn export(
        &self,
        who: &Principal,
        query: &ListQuery<impl OwnFilters<T>>,
        columns: Vec<&'static Column<T>>,
        locale: Locale,
        time_zone: Tz,
    ) -> Result<(i64, mpsc::Receiver<Result<Vec<u8>>>)> {
        let Selection {
            mut filter,
            statuses,
        } = query.selection(who, &self.catalog)?;
        let empty = statuses.as_ref().is_some_and(Vec::is_empty);
        filter.common().matching = Matching::for_all_matches(self.store.backend());
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
            let marked_now = self
                .under_lock(&candidate, move |txn, flow, current| {
                    Box::pin(async move {
                        let Some(event) = ticket::breach(&current, now) else {
                            return Ok(None);
                        };
                        if !tickets::mark_breached::<T>(txn, &current.header().id, now).await? {
                            return Ok(None);
                        }
                        let out = flow.outbound();
                        thread::append(txn, &current, ActorRef::SYSTEM, now, &event, out).await?;
                        Ok(Some(()))
                    })
                })
                .await?;
            marked += usize::from(marked_now.is_some());
        }
        Ok(marked)
    }

    /// Applies `decide` to every ticket in `due` that it still finds due,
    /// each in its own write, as the system (auto-close). Safe with several
    /// replicas: each ticket is re-read under the write lock, and only one
    /// replica finds it still due. Returns how many changed.
    pub async fn sweep(
        &self,
        due: Vec<T>,
        decide: fn(&T, i64) -> Option<Outcome<T>>,
    ) -> Result<usize> {
        let mut changed = 0;
        for candidate in due {
            let moved = self
                .under_lock(&candidate, move |txn, flow, current| {
                    Box::pin(async move {
                        let now = flow.now();
                        let Some(outcome) = decide(&current, now) else {
                            return Ok(None);
                        };
                        flow.record(txn, ActorRef::SYSTEM, &current, &outcome, now)
                            .await?;
                        Ok(Some((current, outcome.next)))
                    })
                })
                .await?;
            if let Some((current, next)) = moved {
                self.poke_if_new_deadline(Some(&current), &next);
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// The system's work on one ticket it found due (`breach_due`, `sweep`):
    /// `act` runs in a write of its own on the ticket as it stands under the
    /// write lock, if it still exists, and returns `None` where there is
    /// nothing left to do (another replica got there first).
    async fn under_lock<R, A>(&self, candidate: &T, act: A) -> Result<Option<R>>
    where
        R: Send + 'static,
        A: for<'a> FnOnce(&'a DatabaseTransaction, Self, T) -> TxnFuture<'a, Result<Option<R>>>
            + Send
            + 'static,
    {
        let (flow, id) = (self.clone(), candidate.header().id.clone());
        self.store
            .write(move |txn| {
                Box::pin(async move {
                    match tickets::find::<T>(txn, &Lookup::Id(id)).await? {
                        Some(current) => act(txn, flow, current).await,
                        None => Ok(None),
                    }
                })
            })
            .await
    }

    pub fn store(&self) -> &Store {
        &self.store
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
        if !tickets::update_versioned(txn, next, version).await? {
            return Err(Error::Aborted(format!(
                "{} changed meanwhile; read it again and retry",
                next.name()
            )));
        }
        if let Some(body) = &outcome.comment {
            thread::insert_comment(txn, next, caller, body, false, now, self.outbound()).await?;
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
            thread::append(txn, ticket, actor, now, event, self.outbound()).await?;
        }
        Ok(())
    }

    /// Tells the scheduler about a deadline `next` has and `current` did not.
    fn poke_if_new_deadline(&self, current: Option<&T>, next: &T) {
        let before = current.and_then(Ticket::next_deadline);
        if let Some(at) = next.next_deadline()
            && before != Some(at)
        {
            self.deadlines.set(at);
        }
    }
}

/// What a create found or made.
enum Filed<T> {
    New(T),
    /// The idempotency key's ticket, already there.
    Existing(T),
}

/// Why a create lost a race for its idempotency key (then read again).
const RACED: &str = "another request with this idempotency key was committed first; retry";

/// Tickets in creation order, for exports.
struct Rows<T: Kind> {
    /// The export's snapshot: the count and the rows read the same data.
    txn: Snapshot,
    filter: T::Filter,
    /// The status narrowing left nothing to match.
    empty: bool,
}

impl<T: Kind> RowSource for Rows<T> {
    type Row = T;

    async fn rows(&self) -> Result<RowStream<'_, T>> {
        if self.empty {
            return Ok(Box::pin(tokio_stream::empty()));
        }
        tickets::stream::<T>(&self.txn, &self.filter).await
    }
}
