//! Incident use cases.
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use sha2::{Digest, Sha256};

use chrono_tz::Tz;
use tokio::sync::Notify;
use tokio::sync::mpsc;

use super::export::{self, Export, RowSource};
use super::thread::{self, TicketRef};
use super::to_micros;
use crate::domain::calendar::Calendar;
use crate::domain::catalog::Catalog;
use crate::domain::clock::Clock;
use crate::domain::error::Violations;
use crate::domain::event::{Comment, Event, EventPayload, TicketType};
use crate::domain::incident::{self, IncidentKind, IncidentStatus, ResolutionReason, Stage};
use crate::domain::principal::{Locale, Principal, Role};
use crate::domain::text::{fold, like_contains};
use crate::domain::{Error, Result};
use crate::report::columns::Column;
use crate::store::entity::incident as row;
use crate::store::events::{self, ActorRef, EventContext};
use crate::store::incidents::{self as rows, IncidentFilter};
use crate::store::tickets::{self, RowStream};
use crate::store::{self, INCIDENT_NUMBER, Snapshot, Store, db_error};

pub const TICKET_TYPE: TicketType = TicketType::Incident;

/// A validated CreateIncident request.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub kind: IncidentKind,
    pub tracking_number: String,
    pub carrier: String,
    pub category: String,
    pub description: String,
    pub shipped_at: Option<i64>,
    /// (amount, currency)
    pub claimed_amount: Option<(String, String)>,
    pub idempotency_key: Option<String>,
}

impl NewIncident {
    /// A digest of everything but the idempotency key: a retry must match it.
    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            self.kind.as_str(),
            &self.tracking_number,
            &self.carrier,
            &self.category,
            &self.description,
            &self.shipped_at.map(|t| t.to_string()).unwrap_or_default(),
            &self
                .claimed_amount
                .as_ref()
                .map(|(a, c)| format!("{a} {c}"))
                .unwrap_or_default(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        format!("{:x}", hasher.finalize())
    }
}

pub use crate::domain::ticket::Lookup;

/// A ListIncidents request (or ExportReport's filter) as parsed at the edge;
/// the catalog codes are checked here, in `filter`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub stage: Option<Stage>,
    pub statuses: Vec<IncidentStatus>,
    pub kinds: Vec<IncidentKind>,
    pub carrier: Option<String>,
    pub category: Option<String>,
    pub assignee_id: Option<String>,
    /// Created in [from, to) (µs).
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    /// Free text: a case- and accent-insensitive substring of the searchable fields.
    pub text: Option<String>,
    pub descending: bool,
    /// (created_at, number) of the last incident of the previous page.
    pub after: Option<(i64, i64)>,
    pub page_size: u64,
}

impl ListQuery {
    /// The store's filter for `who`: its account only for a requester, the
    /// catalog codes checked (INVALID_ARGUMENT naming the field), the text as
    /// a LIKE pattern over the folded search text.
    fn filter(&self, who: &Principal, catalog: &Catalog) -> Result<IncidentFilter> {
        let mut v = Violations::default();
        if let Some(c) = &self.carrier
            && catalog.carrier(c).is_none()
        {
            v.push(
                "carrier",
                format!("unknown carrier {c:?}; see ListCarriers"),
            );
        }
        if let Some(c) = &self.category
            && catalog.category(c).is_none()
        {
            v.push(
                "category",
                format!("unknown category {c:?}; see ListCategories"),
            );
        }
        v.into_result()?;
        Ok(IncidentFilter {
            account: who.scope().map(str::to_owned),
            statuses: vec![],
            kinds: self.kinds.iter().map(|k| k.as_str()).collect(),
            carrier: self.carrier.clone(),
            category: self.category.clone(),
            assignee_id: self.assignee_id.clone(),
            created_from: self.created_from,
            created_to: self.created_to,
            search_pattern: self.text.as_deref().map(like_contains),
        })
    }
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub incidents: Vec<row::Model>,
    /// (created_at, number) of the page's last incident, when more follow.
    pub next: Option<(i64, i64)>,
    pub total_size: i64,
    /// (all, new, in review, resolved) for the filters without stage and statuses.
    pub stage_counts: [i64; 4],
}

/// A status change asked through ChangeIncidentStatus or CancelIncident.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub to: IncidentStatus,
    pub expected_version: Option<i64>,
    pub reason: Option<ResolutionReason>,
    pub comment: Option<String>,
    /// Free text kept as the resolution note (cancellations).
    pub note: Option<String>,
}

#[derive(Clone)]
pub struct Incidents {
    store: Store,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    /// The business calendar; dates in messages are in its time zone.
    calendar: Arc<Calendar>,
    /// Poked when a deadline is set, so the scheduler re-plans its sleep.
    deadlines: Arc<Notify>,
    /// An export whose client takes nothing for this long is abandoned.
    export_stall: Duration,
}

/// An incident waiting for the store's data this long, in business time,
/// without a requester comment, is finalized by the system.
pub const MISSING_DATA_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

impl Incidents {
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        calendar: Arc<Calendar>,
        export_stall: Duration,
    ) -> Self {
        Self {
            store,
            catalog,
            clock,
            calendar,
            deadlines: Arc::new(Notify::new()),
            export_stall,
        }
    }

    /// The signal raised when a new deadline is set.
    pub fn deadlines(&self) -> Arc<Notify> {
        self.deadlines.clone()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The earliest pending deadline (µs): an auto-close or an estimate to breach.
    pub async fn next_deadline(&self) -> Result<Option<i64>> {
        let conn = self.store.conn();
        let (close, breach) = (
            rows::next_auto_close(conn).await?,
            rows::next_breach(conn).await?,
        );
        Ok(close.into_iter().chain(breach).min())
    }

    /// Finalizes every MISSING_DATA incident whose deadline has passed, by the
    /// system actor, with reason NO_CUSTOMER_RESPONSE. Safe with several
    /// replicas: each incident is re-read under the write lock, and only one
    /// replica finds it still due. Returns how many it closed.
    pub async fn auto_close_due(&self) -> Result<usize> {
        let now = to_micros(self.clock.now());
        let due = rows::due_auto_close(self.store.conn(), now, 100).await?;
        let mut closed = 0;
        for candidate in due {
            let txn = self.store.begin_write().await?;
            let Some(current) = rows::find_by_id(&txn, &candidate.id).await? else {
                continue;
            };
            let still_due = current.auto_close_at.is_some_and(|at| at <= now);
            if !still_due || status_of(&current)? != IncidentStatus::MissingData {
                continue;
            }
            let mut next = moved(&current, IncidentStatus::Finalized, now, None)?;
            next.resolution_reason = Some(ResolutionReason::NoCustomerResponse.as_str().to_owned());
            persist(&txn, &next, current.version).await?;
            let payload = EventPayload::StatusChanged {
                from: IncidentStatus::MissingData.as_str().to_owned(),
                to: IncidentStatus::Finalized.as_str().to_owned(),
                reason: Some(ResolutionReason::NoCustomerResponse.as_str().to_owned()),
                comment: None,
            };
            events::append(&txn, &context(&next, ActorRef::SYSTEM, now), &payload).await?;
            self.store.commit(txn).await?;
            closed += 1;
        }
        Ok(closed)
    }

    /// Records one sla_breached event for every open incident whose estimate
    /// has passed (paused ones wait). Exactly once, also with several replicas:
    /// the mark is set under the write lock only where it is still unset.
    pub async fn breach_due(&self) -> Result<usize> {
        let now = to_micros(self.clock.now());
        let due = rows::due_breach(self.store.conn(), now, 100).await?;
        let mut marked = 0;
        for candidate in due {
            let txn = self.store.begin_write().await?;
            let Some(current) = rows::find_by_id(&txn, &candidate.id).await? else {
                continue;
            };
            let Some(due_at) = current.estimated_resolution_at else {
                continue;
            };
            if current.breached_at.is_some()
                || current.paused_since.is_some()
                || due_at > now
                || status_of(&current)?.is_terminal()
            {
                continue;
            }
            if !rows::mark_breached(&txn, &current.id, now).await? {
                continue;
            }
            events::append(
                &txn,
                &context(&current, ActorRef::SYSTEM, now),
                &EventPayload::SlaBreached { due_at },
            )
            .await?;
            self.store.commit(txn).await?;
            marked += 1;
        }
        Ok(marked)
    }

    /// Why an incident shipped at `shipped_at` is filed too late, if it is:
    /// each carrier accepts claims for `claim_window_days` calendar days, unless
    /// the category sets its own window.
    fn outside_claim_window(
        &self,
        carrier: &str,
        category: &str,
        shipped_at: Option<i64>,
        now: i64,
    ) -> Option<String> {
        let carrier = self.catalog.carrier(carrier)?;
        let shipped = shipped_at?;
        let days = self.catalog.claim_window_days(carrier, category);
        let deadline = shipped + i64::from(days) * DAY;
        (now > deadline).then(|| {
            let day = |us: i64| super::from_micros(us).with_timezone(&self.calendar.time_zone()).date_naive();
            format!(
                "{} acepta reclamaciones hasta {} días después del envío: enviado el {}, plazo hasta el {}, presentado el {}",
                carrier.name,
                days,
                day(shipped),
                day(deadline),
                day(now)
            )
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub async fn create(&self, who: &Principal, new: NewIncident) -> Result<row::Model> {
        if who.role != Role::Requester {
            return Err(Error::PermissionDenied(
                "only requesters file incidents".into(),
            ));
        }
        let account = who
            .account
            .clone()
            .ok_or_else(|| Error::Unauthenticated("requester token has no account claim".into()))?;
        if self.catalog.carrier(&new.carrier).is_none() {
            return Err(Error::invalid(
                "carrier",
                format!("unknown carrier {:?}; see ListCarriers", new.carrier),
            ));
        }
        match self.catalog.category(&new.category) {
            Some(c) if c.ticket_type == TICKET_TYPE && c.incident_kind == Some(new.kind) => {}
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
        }
        // A little clock skew between the caller and us is tolerated.
        let latest_shipping = to_micros(self.clock.now()) + 5 * 60 * 1_000_000;
        if new.shipped_at.is_some_and(|t| t > latest_shipping) {
            return Err(Error::invalid("shipped_at", "must not be in the future"));
        }
        let fingerprint = new.fingerprint();
        let txn = self.store.begin_write().await?;
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = rows::find_by_idempotency_key(&txn, &account, key).await?
        {
            drop(txn);
            return same_request(existing, &fingerprint);
        }
        let now = to_micros(self.clock.now());
        let number = store::next_value(&txn, INCIDENT_NUMBER).await?;
        let mut model = row::Model {
            id: uuid::Uuid::now_v7().to_string(),
            number,
            account,
            kind: new.kind.as_str().to_owned(),
            status: IncidentStatus::NewTicket.as_str().to_owned(),
            previous_status: None,
            tracking_number: new.tracking_number,
            carrier_code: new.carrier,
            category_code: new.category,
            description: new.description,
            shipped_at: new.shipped_at,
            claimed_amount: new.claimed_amount.as_ref().map(|(a, _)| a.clone()),
            claimed_currency: new.claimed_amount.map(|(_, c)| c),
            requester_id: who.sub.clone(),
            requester_name: who.name.clone(),
            assignee_id: None,
            assignee_name: None,
            resolution_reason: None,
            resolution_note: None,
            version: 1,
            created_at: now,
            updated_at: now,
            resolved_at: None,
            search_text: String::new(),
            idempotency_key: new.idempotency_key.clone(),
            request_hash: new.idempotency_key.as_ref().map(|_| fingerprint.clone()),
            auto_close_at: None,
            estimated_resolution_at: None,
            paused_since: None,
            breached_at: None,
        };
        let target_days = self
            .catalog
            .category(&model.category_code)
            .and_then(|c| c.resolution_target_days)
            .unwrap_or(21);
        model.estimated_resolution_at = Some(now + i64::from(target_days) * DAY);
        model.search_text = self.search_text(&model);
        // Filed after the carrier's claim window: created already declined, so the store sees why.
        let late = self.outside_claim_window(
            &model.carrier_code,
            &model.category_code,
            model.shipped_at,
            now,
        );
        if let Some(note) = &late {
            model.status = IncidentStatus::Declined.as_str().to_owned();
            model.resolution_reason = Some(ResolutionReason::OutOfClaimWindow.as_str().to_owned());
            model.resolution_note = Some(note.clone());
            model.resolved_at = Some(now);
            model.version = 2;
        }
        if let Err(err) = rows::insert(&txn, model.clone()).await {
            if store::is_unique_violation(&err) {
                // Another replica's transaction with the same key won the race.
                drop(txn);
                if let Some(key) = &new.idempotency_key
                    && let Some(existing) =
                        rows::find_by_idempotency_key(self.store.conn(), &model.account, key)
                            .await?
                {
                    return same_request(existing, &fingerprint);
                }
            }
            return Err(db_error(err));
        }
        let created = EventPayload::Created {
            status: IncidentStatus::NewTicket.as_str().to_owned(),
        };
        events::append(&txn, &context(&model, ActorRef::of(who), now), &created).await?;
        if let Some(note) = late {
            let declined = EventPayload::StatusChanged {
                from: IncidentStatus::NewTicket.as_str().to_owned(),
                to: IncidentStatus::Declined.as_str().to_owned(),
                reason: Some(ResolutionReason::OutOfClaimWindow.as_str().to_owned()),
                comment: Some(note),
            };
            events::append(&txn, &context(&model, ActorRef::SYSTEM, now), &declined).await?;
        }
        self.store.commit(txn).await?;
        Ok(model)
    }

    pub async fn get(&self, who: &Principal, lookup: &Lookup) -> Result<row::Model> {
        self.load(self.store.conn(), who, lookup).await
    }

    pub async fn list(&self, who: &Principal, query: ListQuery) -> Result<ListPage> {
        let conn = self.store.conn();
        let mut filter = query.filter(who, &self.catalog)?;
        let counts = tickets::count_by_status(conn, &filter).await?;
        let mut stage_counts = [0i64; 4];
        for (status, n) in &counts {
            stage_counts[0] += n;
            match IncidentStatus::parse(status).map(IncidentStatus::stage) {
                Some(Stage::New) => stage_counts[1] += n,
                Some(Stage::InReview) => stage_counts[2] += n,
                Some(Stage::Resolved) => stage_counts[3] += n,
                None => {}
            }
        }
        let narrowing = narrowed_statuses(query.stage, &query.statuses);
        let narrowed = narrowing.is_some();
        let statuses = narrowing.unwrap_or_default();
        let total_size = if narrowed {
            counts
                .iter()
                .filter(|(s, _)| statuses.iter().any(|x| x.as_str() == s))
                .map(|(_, n)| n)
                .sum()
        } else {
            stage_counts[0]
        };
        if narrowed && statuses.is_empty() {
            return Ok(ListPage {
                incidents: vec![],
                next: None,
                total_size: 0,
                stage_counts,
            });
        }
        if narrowed {
            filter.statuses = statuses.iter().map(|s| s.as_str()).collect();
        }
        let mut incidents = tickets::page(
            conn,
            &filter,
            query.descending,
            query.after,
            query.page_size + 1,
        )
        .await?;
        let next = if incidents.len() as u64 > query.page_size {
            incidents.truncate(query.page_size as usize);
            incidents.last().map(|m| (m.created_at, m.number))
        } else {
            None
        };
        Ok(ListPage {
            incidents,
            next,
            total_size,
            stage_counts,
        })
    }

    /// Starts an export of the incidents `query` selects (its paging is
    /// ignored), oldest first; returns the row count and the file's chunks.
    pub async fn export(
        &self,
        who: &Principal,
        query: ListQuery,
        columns: Vec<&'static Column<row::ExportRow>>,
        locale: Locale,
        time_zone: Tz,
    ) -> Result<(i64, mpsc::Receiver<Result<Vec<u8>>>)> {
        let mut filter = query.filter(who, &self.catalog)?;
        let narrowed = narrowed_statuses(query.stage, &query.statuses);
        let empty = narrowed.as_ref().is_some_and(Vec::is_empty);
        filter.statuses = narrowed
            .unwrap_or_default()
            .iter()
            .map(|s| s.as_str())
            .collect();
        let txn = self.store.begin_snapshot(&who.quota_key()).await?;
        let count = if empty {
            0
        } else {
            tickets::count(&*txn, &filter).await?
        };
        let source = IncidentRows { txn, filter, empty };
        let export = Export {
            source,
            columns,
            catalog: self.catalog.clone(),
            locale,
            time_zone,
            now: to_micros(self.clock.now()),
            stall_timeout: self.export_stall,
        };
        Ok((count, export::start(export)))
    }

    pub async fn change_status(
        &self,
        who: &Principal,
        id: &str,
        change: StatusChange,
    ) -> Result<row::Model> {
        let txn = self.store.begin_write().await?;
        let current = self.load(&txn, who, &Lookup::Id(id.to_owned())).await?;
        // Who may do this comes before the version and the status.
        incident::may_change_to(change.to, who.role)?;
        check_version(&current, change.expected_version)?;
        let from = status_of(&current)?;
        let rule = incident::transition(from, change.to, who.role)?;
        if rule.needs_comment && change.comment.is_none() {
            return Err(Error::invalid(
                "comment",
                format!(
                    "a comment saying what is missing is required to move to {}",
                    change.to.as_str()
                ),
            ));
        }
        let reason = match (rule.reasons, change.reason) {
            ([], None) => None,
            ([], Some(r))
                if change.to == IncidentStatus::Cancelled && r == ResolutionReason::Cancelled =>
            {
                Some(r)
            }
            ([], Some(r)) => {
                return Err(Error::invalid(
                    "reason",
                    format!("{} takes no reason, got {}", change.to.as_str(), r.as_str()),
                ));
            }
            (allowed, Some(r)) if allowed.contains(&r) => Some(r),
            (allowed, _) => {
                let names: Vec<_> = allowed.iter().map(|r| r.as_str()).collect();
                return Err(Error::invalid(
                    "reason",
                    format!(
                        "moving to {} requires a reason among {}",
                        change.to.as_str(),
                        names.join(", ")
                    ),
                ));
            }
        };
        let reason = if change.to == IncidentStatus::Cancelled {
            Some(ResolutionReason::Cancelled)
        } else {
            reason
        };
        let now = to_micros(self.clock.now());
        // Waiting for the store starts the auto-close clock.
        let auto_close_at = (change.to == IncidentStatus::MissingData)
            .then(|| to_micros(self.calendar.add(self.clock.now(), MISSING_DATA_TIMEOUT)));
        let mut next = moved(&current, change.to, now, auto_close_at)?;
        if change.to.is_terminal() {
            next.resolution_reason = reason.map(|r| r.as_str().to_owned());
            next.resolution_note = change.note.clone();
        }
        persist(&txn, &next, current.version).await?;
        let actor = ActorRef::of(who);
        if let Some(body) = &change.comment {
            thread::insert_comment(&txn, ticket_ref(&next), actor, body, false, now).await?;
        }
        let ctx = context(&next, actor, now);
        let payload = EventPayload::StatusChanged {
            from: from.as_str().to_owned(),
            to: change.to.as_str().to_owned(),
            reason: reason.map(|r| r.as_str().to_owned()),
            comment: change.comment.or(change.note),
        };
        events::append(&txn, &ctx, &payload).await?;
        self.store.commit(txn).await?;
        if next.auto_close_at.is_some() {
            self.deadlines.notify_one();
        }
        Ok(next)
    }

    pub async fn assign(
        &self,
        who: &Principal,
        id: &str,
        assignee: Option<(String, String)>,
        expected_version: i64,
    ) -> Result<row::Model> {
        if !who.is_agent() {
            // Another account's incident is NOT_FOUND (existence does not
            // leak, DESIGN §7); only one the requester can see is refused.
            self.get(who, &Lookup::Id(id.to_owned())).await?;
            return Err(Error::PermissionDenied(
                "only agents assign incidents".into(),
            ));
        }
        let txn = self.store.begin_write().await?;
        let current = self.load(&txn, who, &Lookup::Id(id.to_owned())).await?;
        check_version(&current, Some(expected_version))?;
        let now = to_micros(self.clock.now());
        let mut next = current.clone();
        next.assignee_id = assignee.as_ref().map(|(id, _)| id.clone());
        next.assignee_name = assignee.map(|(_, name)| name);
        next.version += 1;
        next.updated_at = now;
        next.search_text = self.search_text(&next);
        persist(&txn, &next, current.version).await?;
        let payload = EventPayload::Assigned {
            assignee_id: next.assignee_id.clone(),
            assignee_name: next.assignee_name.clone(),
            previous_assignee_id: current.assignee_id.clone(),
        };
        events::append(&txn, &context(&next, ActorRef::of(who), now), &payload).await?;
        self.store.commit(txn).await?;
        Ok(next)
    }

    /// Adds a comment. A requester's comment on an incident waiting for its
    /// data (MISSING_DATA) returns it to the status it came from.
    pub async fn add_comment(
        &self,
        who: &Principal,
        id: &str,
        body: String,
        internal: bool,
    ) -> Result<Comment> {
        let txn = self.store.begin_write().await?;
        // Another account's ticket is NOT_FOUND before anything is refused.
        let current = self.load(&txn, who, &Lookup::Id(id.to_owned())).await?;
        if internal && !who.is_agent() {
            return Err(Error::PermissionDenied(
                "requesters cannot write internal comments".into(),
            ));
        }
        let now = to_micros(self.clock.now());
        let comment = thread::insert_comment(
            &txn,
            ticket_ref(&current),
            ActorRef::of(who),
            &body,
            internal,
            now,
        )
        .await?;
        if who.role == Role::Requester && status_of(&current)? == IncidentStatus::MissingData {
            let back = current
                .previous_status
                .as_deref()
                .and_then(IncidentStatus::parse)
                .unwrap_or(IncidentStatus::NewTicket);
            let next = moved(&current, back, now, None)?;
            persist(&txn, &next, current.version).await?;
            let payload = EventPayload::StatusChanged {
                from: IncidentStatus::MissingData.as_str().to_owned(),
                to: back.as_str().to_owned(),
                reason: None,
                comment: None,
            };
            events::append(&txn, &context(&next, ActorRef::SYSTEM, now), &payload).await?;
        }
        self.store.commit(txn).await?;
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
        thread::list_comments(conn, ticket_ref(&ticket), who, after, limit).await
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
        thread::list_events(conn, ticket_ref(&ticket), who, after_sequence, limit).await
    }

    /// Loads an incident the caller may see; another account's is NOT_FOUND.
    async fn load(
        &self,
        conn: &impl ConnectionTrait,
        who: &Principal,
        lookup: &Lookup,
    ) -> Result<row::Model> {
        let found = match lookup {
            Lookup::Id(id) => rows::find_by_id(conn, id).await?,
            Lookup::Number(n) => rows::find_by_number(conn, *n).await?,
        };
        match found {
            Some(m) if who.scope().is_none_or(|account| account == m.account) => Ok(m),
            _ => Err(Error::NotFound(match lookup {
                Lookup::Id(id) => format!("incident {id}"),
                Lookup::Number(n) => format!("incident number {n}"),
            })),
        }
    }

    /// The folded text free-text search looks in.
    fn search_text(&self, m: &row::Model) -> String {
        fold(
            &[
                m.number.to_string().as_str(),
                &m.tracking_number,
                self.catalog.category_name(&m.category_code),
                &m.category_code,
                self.catalog.carrier_name(&m.carrier_code),
                &m.carrier_code,
                m.assignee_name.as_deref().unwrap_or(""),
                m.assignee_id.as_deref().unwrap_or(""),
                &m.description,
            ]
            .join("\n"),
        )
    }
}

/// The statuses a stage and a status list leave (they narrow each other; an
/// empty result matches nothing), or None when neither narrows.
fn narrowed_statuses(
    stage: Option<Stage>,
    statuses: &[IncidentStatus],
) -> Option<Vec<IncidentStatus>> {
    if stage.is_none() && statuses.is_empty() {
        return None;
    }
    let mut allowed = match stage {
        Some(stage) => IncidentStatus::of_stage(stage),
        None => IncidentStatus::ALL.to_vec(),
    };
    if !statuses.is_empty() {
        allowed.retain(|s| statuses.contains(s));
    }
    Some(allowed)
}

/// Incidents in creation order, for exports.
struct IncidentRows {
    /// The export's snapshot: the count and the rows read the same data.
    txn: Snapshot,
    filter: IncidentFilter,
    /// Stage and statuses left nothing to match.
    empty: bool,
}

impl RowSource for IncidentRows {
    type Row = row::ExportRow;

    async fn rows(&self) -> Result<RowStream<'_, row::ExportRow>> {
        if self.empty {
            return Ok(Box::pin(tokio_stream::empty()));
        }
        tickets::stream(&self.txn, &self.filter).await
    }
}

const DAY: i64 = 86_400_000_000;

/// Ends a pause of the estimate: it moves on by the time spent paused.
/// The incident after moving to `to` at `now`: the one place where a status
/// change keeps its bookkeeping. Entering MISSING_DATA remembers where it
/// came from, pauses the estimate and starts the auto-close clock
/// (`auto_close_at`); any other status forgets both and moves the estimate on
/// by the wait; a terminal status is resolved now. One version more.
fn moved(
    current: &row::Model,
    to: IncidentStatus,
    now: i64,
    auto_close_at: Option<i64>,
) -> Result<row::Model> {
    let from = status_of(current)?;
    let mut next = current.clone();
    next.status = to.as_str().to_owned();
    if to == IncidentStatus::MissingData {
        next.previous_status = Some(from.as_str().to_owned());
        next.paused_since = Some(now);
        next.auto_close_at = auto_close_at;
    } else {
        next.previous_status = None;
        next.auto_close_at = None;
        resume(&mut next, now);
    }
    if to.is_terminal() {
        next.resolved_at = Some(now);
    }
    next.version += 1;
    next.updated_at = now;
    Ok(next)
}

/// Ends a wait for data: the estimate keeps the time it moved on meanwhile.
fn resume(m: &mut row::Model, now: i64) {
    let since = m.paused_since.take();
    m.estimated_resolution_at =
        crate::domain::incident::estimate_at(m.estimated_resolution_at, since, now);
}

fn same_request(existing: row::Model, fingerprint: &str) -> Result<row::Model> {
    if existing.request_hash.as_deref() == Some(fingerprint) {
        Ok(existing)
    } else {
        Err(Error::invalid(
            "idempotency_key",
            "this key was already used with a different request; use a new key for a new incident",
        ))
    }
}

fn check_version(current: &row::Model, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(v) if v != current.version => Err(Error::Aborted(format!(
            "incident {} is at version {}, not {v}; read it again and retry",
            current.number, current.version
        ))),
        _ => Ok(()),
    }
}

fn status_of(m: &row::Model) -> Result<IncidentStatus> {
    IncidentStatus::parse(&m.status).ok_or_else(|| {
        Error::Internal(anyhow!(
            "incident {} has unknown status {:?}",
            m.id,
            m.status
        ))
    })
}

async fn persist(
    txn: &DatabaseTransaction,
    next: &row::Model,
    expected_version: i64,
) -> Result<()> {
    if rows::update_versioned(txn, next, expected_version).await? {
        Ok(())
    } else {
        Err(Error::Aborted(format!(
            "incident {} changed meanwhile; read it again and retry",
            next.number
        )))
    }
}

fn ticket_ref(m: &row::Model) -> TicketRef<'_> {
    TicketRef {
        id: &m.id,
        ticket_type: TICKET_TYPE,
        number: m.number,
        account: &m.account,
    }
}

fn context<'a>(m: &'a row::Model, actor: ActorRef<'a>, at: i64) -> EventContext<'a> {
    ticket_ref(m).context(actor, at)
}
