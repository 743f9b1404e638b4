//! Consultation use cases: what the shared workflow (`service::tickets`)
//! does not — classifying, filing by complexity, status changes and
//! reclassification.
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use tokio::sync::{Notify, mpsc};

use super::tickets::{Page, Paging, Selection, Workflow};
use crate::domain::Result;
use crate::domain::calendar::Calendar;
use crate::domain::catalog::{Catalog, Category};
use crate::domain::clock::Clock;
use crate::domain::consultation::{
    self, Complexity, Consultation, ConsultationStatus, NewConsultation, Targets,
};
use crate::domain::principal::{Locale, Principal};
use crate::domain::text::like_contains;
use crate::domain::ticket;
use crate::report::columns::Column;
use crate::store::Store;
use crate::store::consultations::ConsultationFilter;
use crate::store::entity::consultation::ExportRow;
use crate::store::tickets::Filter;

/// A ListConsultations request (or ExportReport's filter) as parsed at the
/// edge; the category code is checked here, in `selection`.
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
}

impl ListQuery {
    /// What `who` may list of it: its account only for a requester, the
    /// category checked (INVALID_ARGUMENT naming it), the text as a LIKE
    /// pattern over the folded search text.
    fn selection(&self, who: &Principal, catalog: &Catalog) -> Result<Selection<Consultation>> {
        if let Some(c) = &self.category {
            consultation::classify(catalog, c)?;
        }
        let filter = ConsultationFilter {
            common: Filter {
                account: who.scope().map(str::to_owned),
                statuses: vec![],
                category: self.category.clone(),
                assignee_id: self.assignee_id.clone(),
                created_from: self.created_from,
                created_to: self.created_to,
                search_pattern: self.text.as_deref().map(like_contains),
            },
            complexities: self.complexities.iter().map(|c| c.as_str()).collect(),
        };
        let statuses = (!self.statuses.is_empty()).then(|| self.statuses.clone());
        Ok(Selection { filter, statuses })
    }
}

#[derive(Clone)]
pub struct Consultations {
    flow: Workflow<Consultation>,
    targets: Targets,
    /// Due times count business hours on it when `targets.business_hours`.
    calendar: Arc<Calendar>,
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
            flow: Workflow::new(store, catalog, clock, deadlines, export_stall),
            targets,
            calendar,
        }
    }

    /// What consultations share with every ticket type: get, assign,
    /// comments, events, breaches.
    pub fn flow(&self) -> &Workflow<Consultation> {
        &self.flow
    }

    pub fn catalog(&self) -> &Catalog {
        self.flow.catalog()
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// A consultation category and its complexity; unknown codes are INVALID_ARGUMENT.
    pub fn classify(&self, code: &str) -> Result<(&Category, Complexity)> {
        consultation::classify(self.flow.catalog(), code)
    }

    pub async fn create(&self, who: &Principal, new: NewConsultation) -> Result<Consultation> {
        let (_, complexity) = self.classify(&new.category)?;
        let fingerprint = new.fingerprint();
        let key = new.idempotency_key.clone();
        let catalog = self.flow.catalog();
        self.flow
            .create(
                who,
                key,
                fingerprint,
                complexity.creates_ticket(),
                |header| Consultation::file(header, new, catalog, &self.targets, &self.calendar),
            )
            .await
    }

    pub async fn list(
        &self,
        who: &Principal,
        query: ListQuery,
        paging: Paging<String>,
    ) -> Result<Page<Consultation>> {
        let selection = query.selection(who, self.flow.catalog())?;
        self.flow.list(selection, paging).await
    }

    /// Starts an export of the consultations `query` selects, oldest first;
    /// returns the row count and the file's chunks.
    pub async fn export(
        &self,
        who: &Principal,
        query: ListQuery,
        columns: Vec<&'static Column<ExportRow>>,
        locale: Locale,
        time_zone: Tz,
    ) -> Result<(i64, mpsc::Receiver<Result<Vec<u8>>>)> {
        let selection = query.selection(who, self.flow.catalog())?;
        self.flow
            .export(who, selection, columns, locale, time_zone)
            .await
    }

    pub async fn change_status(
        &self,
        who: &Principal,
        id: &str,
        to: ConsultationStatus,
        expected_version: i64,
        comment: Option<String>,
    ) -> Result<Consultation> {
        self.flow
            .change(
                who,
                id,
                Some(expected_version),
                |_| consultation::may_change_status(who.role),
                |current, now| current.change_status(to, comment, who.role, now),
            )
            .await
    }

    /// Changes the complexity and recomputes the due time from creation. A
    /// SIMPLE consultation moved up gets its ticket number now.
    pub async fn reclassify(
        &self,
        who: &Principal,
        id: &str,
        to: Complexity,
        expected_version: i64,
    ) -> Result<Consultation> {
        let change = self.flow.begin(who, id).await?;
        ticket::agents_only::<Consultation>(who, "reclassify")?;
        ticket::check_version(&change.current, Some(expected_version))?;
        let number = match change.current.gets_number(to) {
            true => Some(change.next_number().await?),
            false => None,
        };
        let outcome =
            change
                .current
                .reclassify(to, number, &self.targets, &self.calendar, change.now)?;
        change.finish(outcome).await
    }
}
