//! Consultation use cases.
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use sha2::{Digest, Sha256};

use chrono_tz::Tz;
use tokio::sync::{Notify, mpsc};

use super::export::{self, Export, RowSource};
use super::thread::{self, TicketRef};
use super::to_micros;
use crate::domain::calendar::Calendar;
use crate::domain::catalog::Catalog;
use crate::domain::catalog::Category;
use crate::domain::clock::Clock;
use crate::domain::consultation::{self, Complexity, ConsultationStatus, Targets};
use crate::domain::event::EventPayload;
use crate::domain::event::{Comment, Event, TicketType};
use crate::domain::principal::{Locale, Principal, Role};
use crate::domain::text::{fold, like_contains};
use crate::domain::{Error, Result};
use crate::report::columns::Column;
use crate::store::consultations::{self as rows, ConsultationFilter};
use crate::store::entity::consultation as row;
use crate::store::events::{self, ActorRef};
use crate::store::tickets::{self, RowStream};
use crate::store::{self, CONSULTATION_NUMBER, Snapshot, Store, db_error};

pub const TICKET_TYPE: TicketType = TicketType::Consultation;

/// A validated CreateConsultation request.
#[derive(Debug, Clone)]
pub struct NewConsultation {
    pub category: String,
    pub description: String,
    pub order_reference: Option<String>,
    pub idempotency_key: Option<String>,
}

impl NewConsultation {
    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            &self.category,
            &self.description,
            self.order_reference.as_deref().unwrap_or(""),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        format!("{:x}", hasher.finalize())
    }
}

pub use crate::domain::ticket::Lookup;

#[derive(Debug, Clone)]
pub struct ListPage {
    pub consultations: Vec<row::Model>,
    pub next: Option<(i64, String)>,
    pub total_size: i64,
    /// (all, received, in progress, solved) for the filters without statuses.
    pub status_counts: [i64; 4],
}

/// A ListConsultations request (or ExportReport's filter) as parsed at the
/// edge; the category code is checked here, in `filter`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub statuses: Vec<ConsultationStatus>,
    pub complexities: Vec<Complexity>,
    pub category: Option<String>,
    pub assignee_id: Option<String>,
    /// Created in [from, to) (µs).
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    /// Free text: a case- and accent-insensitive substring of the searchable fields.
    pub text: Option<String>,
    /// (created_at, id) of the last consultation of the previous page.
    pub after: Option<(i64, String)>,
    pub page_size: u64,
}

#[derive(Clone)]
pub struct Consultations {
    store: Store,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    targets: Targets,
    /// Due times count business hours on it when `targets.business_hours`.
    calendar: Arc<Calendar>,
    /// An export whose client takes nothing for this long is abandoned.
    export_stall: Duration,
    /// Wakes the deadline scheduler when a due time is set (shared with incidents).
    deadlines: Arc<Notify>,
}

impl Consultations {
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        targets: Targets,
        calendar: Arc<Calendar>,
        export_stall: Duration,
        deadlines: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            catalog,
            clock,
            targets,
            calendar,
            export_stall,
            deadlines,
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// A consultation category and its complexity; unknown codes are INVALID_ARGUMENT.
    pub fn classify(&self, code: &str) -> Result<(&Category, Complexity)> {
        let category = self
            .catalog
            .category(code)
            .filter(|c| c.ticket_type == TICKET_TYPE)
            .ok_or_else(|| {
                Error::invalid(
                    "category",
                    format!("unknown consultation category {code:?}; see ListCategories"),
                )
            })?;
        let complexity = category
            .complexity
            .ok_or_else(|| Error::Internal(anyhow!("category {code} has no complexity")))?;
        Ok((category, complexity))
    }

    pub async fn create(&self, who: &Principal, new: NewConsultation) -> Result<row::Model> {
        if who.role != Role::Requester {
            return Err(Error::PermissionDenied(
                "only requesters (drivers) file consultations".into(),
            ));
        }
        let account = who
            .account
            .clone()
            .ok_or_else(|| Error::Unauthenticated("requester token has no account claim".into()))?;
        let (category, complexity) = self.classify(&new.category)?;
        let title = category.name.clone();
        let fingerprint = new.fingerprint();
        let txn = self.store.begin_write().await?;
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = rows::find_by_idempotency_key(&txn, &account, key).await?
        {
            drop(txn);
            return same_request(existing, &fingerprint);
        }
        let now = to_micros(self.clock.now());
        let number = match complexity.creates_ticket() {
            true => Some(store::next_value(&txn, CONSULTATION_NUMBER).await?),
            false => None,
        };
        let mut model = row::Model {
            id: uuid::Uuid::now_v7().to_string(),
            number,
            account,
            category_code: new.category,
            complexity: complexity.as_str().to_owned(),
            status: ConsultationStatus::Received.as_str().to_owned(),
            title,
            description: new.description,
            order_reference: new.order_reference,
            requester_id: who.sub.clone(),
            requester_name: who.name.clone(),
            assignee_id: None,
            assignee_name: None,
            version: 1,
            created_at: now,
            updated_at: now,
            due_at: self.due_at(now, complexity),
            solved_at: None,
            breached_at: None,
            search_text: String::new(),
            idempotency_key: new.idempotency_key.clone(),
            request_hash: new.idempotency_key.as_ref().map(|_| fingerprint.clone()),
        };
        model.search_text = search_text(&model);
        if let Err(err) = rows::insert(&txn, model.clone()).await {
            if store::is_unique_violation(&err)
                && let Some(key) = &new.idempotency_key
            {
                drop(txn);
                if let Some(existing) =
                    rows::find_by_idempotency_key(self.store.conn(), &model.account, key).await?
                {
                    return same_request(existing, &fingerprint);
                }
            }
            return Err(db_error(err));
        }
        let payload = EventPayload::Created {
            status: model.status.clone(),
        };
        events::append(
            &txn,
            &ticket_ref(&model).context(ActorRef::of(who), now),
            &payload,
        )
        .await?;
        self.store.commit(txn).await?;
        // A new due time: the scheduler must not sleep past it.
        self.deadlines.notify_one();
        Ok(model)
    }

    pub async fn get(&self, who: &Principal, lookup: &Lookup) -> Result<row::Model> {
        self.load(self.store.conn(), who, lookup).await
    }

    /// The store's filter for `who`: its account only for a requester, the
    /// category checked (INVALID_ARGUMENT naming it), the text as a LIKE
    /// pattern over the folded search text.
    fn filter(&self, who: &Principal, query: &ListQuery) -> Result<ConsultationFilter> {
        if let Some(c) = &query.category
            && self.classify(c).is_err()
        {
            return Err(Error::invalid(
                "category",
                format!("unknown consultation category {c:?}; see ListCategories"),
            ));
        }
        Ok(ConsultationFilter {
            account: who.scope().map(str::to_owned),
            statuses: query.statuses.iter().map(|s| s.as_str()).collect(),
            complexities: query.complexities.iter().map(|c| c.as_str()).collect(),
            category: query.category.clone(),
            assignee_id: query.assignee_id.clone(),
            created_from: query.created_from,
            created_to: query.created_to,
            search_pattern: query.text.as_deref().map(like_contains),
        })
    }

    pub async fn list(&self, who: &Principal, query: ListQuery) -> Result<ListPage> {
        let conn = self.store.conn();
        let ListQuery {
            ref statuses,
            ref after,
            page_size,
            ..
        } = query;
        let mut filter = self.filter(who, &query)?;
        // The counts are for every status of the other filters.
        filter.statuses = vec![];
        let counts = tickets::count_by_status(conn, &filter).await?;
        let mut status_counts = [0i64; 4];
        for (status, n) in &counts {
            status_counts[0] += n;
            match ConsultationStatus::parse(status) {
                Some(ConsultationStatus::Received) => status_counts[1] += n,
                Some(ConsultationStatus::InProgress) => status_counts[2] += n,
                Some(ConsultationStatus::Solved) => status_counts[3] += n,
                None => {}
            }
        }
        let total_size = if statuses.is_empty() {
            status_counts[0]
        } else {
            counts
                .iter()
                .filter(|(s, _)| statuses.iter().any(|x| x.as_str() == s))
                .map(|(_, n)| n)
                .sum()
        };
        filter.statuses = statuses.iter().map(|s| s.as_str()).collect();
        let mut consultations =
            tickets::page(conn, &filter, true, after.clone(), page_size + 1).await?;
        let next = if consultations.len() as u64 > page_size {
            consultations.truncate(page_size as usize);
            consultations.last().map(|m| (m.created_at, m.id.clone()))
        } else {
            None
        };
        Ok(ListPage {
            consultations,
            next,
            total_size,
            status_counts,
        })
    }

    /// Starts an export of the consultations `statuses` and `filter` select,
    /// oldest first; returns the row count and the file's chunks.
    pub async fn export(
        &self,
        who: &Principal,
        query: ListQuery,
        columns: Vec<&'static Column<row::ExportRow>>,
        locale: Locale,
        time_zone: Tz,
    ) -> Result<(i64, mpsc::Receiver<Result<Vec<u8>>>)> {
        let filter = self.filter(who, &query)?;
        let txn = self.store.begin_snapshot(&who.quota_key()).await?;
        let count = tickets::count(&*txn, &filter).await?;
        let source = ConsultationRows { txn, filter };
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

    /// Records one sla_breached event for every unsolved consultation past
    /// its due time; exactly once, also with several replicas.
    pub async fn breach_due(&self) -> Result<usize> {
        let now = to_micros(self.clock.now());
        let due = rows::due_breach(self.store.conn(), now, 100).await?;
        let mut marked = 0;
        for candidate in due {
            let txn = self.store.begin_write().await?;
            let Some(current) = rows::find_by_id(&txn, &candidate.id).await? else {
                continue;
            };
            if current.breached_at.is_some()
                || current.due_at > now
                || status_of(&current)?.is_terminal()
            {
                continue;
            }
            if !rows::mark_breached(&txn, &current.id, now).await? {
                continue;
            }
            let payload = EventPayload::SlaBreached {
                due_at: current.due_at,
            };
            events::append(
                &txn,
                &ticket_ref(&current).context(ActorRef::SYSTEM, now),
                &payload,
            )
            .await?;
            self.store.commit(txn).await?;
            marked += 1;
        }
        Ok(marked)
    }

    /// The earliest due time still to be watched (µs).
    pub async fn next_deadline(&self) -> Result<Option<i64>> {
        rows::next_breach(self.store.conn()).await
    }

    pub async fn change_status(
        &self,
        who: &Principal,
        id: &str,
        to: ConsultationStatus,
        expected_version: i64,
        comment: Option<String>,
    ) -> Result<row::Model> {
        let txn = self.store.begin_write().await?;
        let current = self.load(&txn, who, &Lookup::Id(id.to_owned())).await?;
        // Who may do this comes before the version and the status.
        consultation::may_change_status(who.role)?;
        check_version(&current, expected_version)?;
        let from = status_of(&current)?;
        consultation::transition(from, to, who.role)?;
        let now = to_micros(self.clock.now());
        let mut next = current.clone();
        next.status = to.as_str().to_owned();
        next.solved_at = to.is_terminal().then_some(now);
        next.version += 1;
        next.updated_at = now;
        persist(&txn, &next, current.version).await?;
        let actor = ActorRef::of(who);
        if let Some(body) = &comment {
            thread::insert_comment(&txn, ticket_ref(&next), actor, body, false, now).await?;
        }
        let payload = EventPayload::StatusChanged {
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            reason: None,
            comment,
        };
        events::append(&txn, &ticket_ref(&next).context(actor, now), &payload).await?;
        self.store.commit(txn).await?;
        Ok(next)
    }

    /// Changes the complexity and recomputes the due time from creation. A
    /// SIMPLE consultation moved up gets its ticket number now.
    pub async fn reclassify(
        &self,
        who: &Principal,
        id: &str,
        to: Complexity,
        expected_version: i64,
    ) -> Result<row::Model> {
        self.agents_only(who, id, "reclassify").await?;
        let txn = self.store.begin_write().await?;
        let current = self.load(&txn, who, &Lookup::Id(id.to_owned())).await?;
        check_version(&current, expected_version)?;
        if status_of(&current)?.is_terminal() {
            return Err(Error::FailedPrecondition(format!(
                "consultation {} is SOLVED; it cannot be reclassified",
                current.id
            )));
        }
        let from = Complexity::parse(&current.complexity).ok_or_else(|| {
            Error::Internal(anyhow!("consultation {} has a bad complexity", current.id))
        })?;
        if from == to {
            return Err(Error::FailedPrecondition(format!(
                "consultation is already {}",
                to.as_str()
            )));
        }
        let now = to_micros(self.clock.now());
        let mut next = current.clone();
        let new_number = match (current.number, to.creates_ticket()) {
            (None, true) => Some(store::next_value(&txn, CONSULTATION_NUMBER).await?),
            _ => None,
        };
        next.number = current.number.or(new_number);
        next.complexity = to.as_str().to_owned();
        next.due_at = self.due_at(current.created_at, to);
        next.version += 1;
        next.updated_at = now;
        next.search_text = search_text(&next);
        persist(&txn, &next, current.version).await?;
        let payload = EventPayload::Reclassified {
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            due_at: Some(next.due_at),
            number: new_number,
        };
        events::append(
            &txn,
            &ticket_ref(&next).context(ActorRef::of(who), now),
            &payload,
        )
        .await?;
        self.store.commit(txn).await?;
        self.deadlines.notify_one();
        Ok(next)
    }

    pub async fn assign(
        &self,
        who: &Principal,
        id: &str,
        assignee: Option<(String, String)>,
        expected_version: i64,
    ) -> Result<row::Model> {
        self.agents_only(who, id, "assign").await?;
        let txn = self.store.begin_write().await?;
        let current = self.load(&txn, who, &Lookup::Id(id.to_owned())).await?;
        check_version(&current, expected_version)?;
        let now = to_micros(self.clock.now());
        let mut next = current.clone();
        next.assignee_id = assignee.as_ref().map(|(id, _)| id.clone());
        next.assignee_name = assignee.map(|(_, name)| name);
        next.version += 1;
        next.updated_at = now;
        next.search_text = search_text(&next);
        persist(&txn, &next, current.version).await?;
        let payload = EventPayload::Assigned {
            assignee_id: next.assignee_id.clone(),
            assignee_name: next.assignee_name.clone(),
            previous_assignee_id: current.assignee_id.clone(),
        };
        events::append(
            &txn,
            &ticket_ref(&next).context(ActorRef::of(who), now),
            &payload,
        )
        .await?;
        self.store.commit(txn).await?;
        Ok(next)
    }

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

    /// Refuses an agent-only change to a requester: NOT_FOUND for another
    /// account's consultation (existence does not leak, DESIGN §7),
    /// PERMISSION_DENIED for one it can see.
    async fn agents_only(&self, who: &Principal, id: &str, verb: &str) -> Result<()> {
        if who.is_agent() {
            return Ok(());
        }
        self.get(who, &Lookup::Id(id.to_owned())).await?;
        Err(Error::PermissionDenied(format!(
            "only agents {verb} consultations"
        )))
    }

    /// Created + the complexity's target: wall-clock time, or business hours
    /// on the calendar when so configured.
    fn due_at(&self, created_at: i64, complexity: Complexity) -> i64 {
        let after = complexity.due_after(&self.targets);
        if self.targets.business_hours {
            return super::to_micros(self.calendar.add(super::from_micros(created_at), after));
        }
        created_at + i64::try_from(after.as_micros()).unwrap_or(i64::MAX / 2)
    }

    /// Loads a consultation the caller may see; another account's is NOT_FOUND.
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
                Lookup::Id(id) => format!("consultation {id}"),
                Lookup::Number(n) => format!("consultation number {n}"),
            })),
        }
    }
}

/// Consultations in creation order, for exports.
struct ConsultationRows {
    /// The export's snapshot: the count and the rows read the same data.
    txn: Snapshot,
    filter: ConsultationFilter,
}

impl RowSource for ConsultationRows {
    type Row = row::ExportRow;

    async fn rows(&self) -> Result<RowStream<'_, row::ExportRow>> {
        tickets::stream(&self.txn, &self.filter).await
    }
}

fn search_text(m: &row::Model) -> String {
    fold(
        &[
            m.number.map(|n| n.to_string()).unwrap_or_default().as_str(),
            &m.title,
            &m.category_code,
            &m.description,
            m.order_reference.as_deref().unwrap_or(""),
            m.assignee_name.as_deref().unwrap_or(""),
            m.assignee_id.as_deref().unwrap_or(""),
        ]
        .join("\n"),
    )
}

fn same_request(existing: row::Model, fingerprint: &str) -> Result<row::Model> {
    if existing.request_hash.as_deref() == Some(fingerprint) {
        Ok(existing)
    } else {
        Err(Error::invalid(
            "idempotency_key",
            "this key was already used with a different request; use a new key for a new consultation",
        ))
    }
}

fn check_version(current: &row::Model, expected: i64) -> Result<()> {
    if expected != current.version {
        return Err(Error::Aborted(format!(
            "consultation {} is at version {}, not {expected}; read it again and retry",
            current.id, current.version
        )));
    }
    Ok(())
}

fn status_of(m: &row::Model) -> Result<ConsultationStatus> {
    ConsultationStatus::parse(&m.status).ok_or_else(|| {
        Error::Internal(anyhow!(
            "consultation {} has unknown status {:?}",
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
            "consultation {} changed meanwhile; read it again and retry",
            next.id
        )))
    }
}

fn ticket_ref(m: &row::Model) -> TicketRef<'_> {
    TicketRef {
        id: &m.id,
        ticket_type: TICKET_TYPE,
        number: m.number.unwrap_or(0),
        account: &m.account,
    }
}
