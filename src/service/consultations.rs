//! Consultation use cases: what the shared workflow (`service::tickets`)
//! does not — classifying, filing by complexity, status changes and
//! reclassification.
use std::sync::Arc;
use std::time::Duration;

use super::notify::Outbound;
use super::scheduler::Alarm;

use super::tickets::{self, OwnFilters, Selection, Workflow};
use crate::domain::Result;
use crate::domain::calendar::Calendar;
use crate::domain::catalog::{Catalog, Category};
use crate::domain::clock::Clock;
use crate::domain::consultation::{
    self, Complexity, Consultation, ConsultationStatus, NewConsultation, Targets,
};
use crate::domain::event::TicketType;
use crate::domain::principal::{Locale, Principal};
use crate::domain::ticket;
use crate::store::Store;
use crate::store::consultations::ConsultationFilter;
use crate::store::tickets::Filter;

/// A ListConsultations request (or ExportReport's filter) as parsed at the
/// edge.
pub type ListQuery = tickets::ListQuery<ConsultationFilters>;

/// The filters only consultations have; the category code is checked in
/// `selection`.
#[derive(Debug, Clone, Default)]
pub struct ConsultationFilters {
    pub statuses: Vec<ConsultationStatus>,
    pub complexities: Vec<Complexity>,
}

impl OwnFilters<Consultation> for ConsultationFilters {
    fn selection(&self, common: Filter, catalog: &Catalog) -> Result<Selection<Consultation>> {
        if let Some(c) = &common.criteria.category {
            consultation::classify(catalog, c)?;
        }
        let filter = ConsultationFilter {
            common,
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
        deadlines: Arc<Alarm>,
    ) -> Self {
        Self {
            flow: Workflow::new(store, catalog, clock, deadlines, export_stall),
            targets,
            calendar,
        }
    }

    /// Who events tell (`--notify-rules`), and e-mail when it is on.
    pub fn with_outbound(mut self, outbound: Arc<Outbound>) -> Self {
        self.flow.set_outbound(outbound);
        self
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

    /// The consultation categories in display order, each with how long a
    /// consultation of it may take (its complexity's due time; `None` for a
    /// category without a complexity).
    pub fn categories(&self) -> impl Iterator<Item = (&Category, Option<Duration>)> {
        let due = |c: &Category| Some(self.classify(&c.code).ok()?.1.due_after(&self.targets));
        let catalog = self.flow.catalog();
        catalog
            .categories_of(TicketType::Consultation)
            .map(move |c| (c, due(c)))
    }

    /// A consultation category and its complexity; unknown codes are INVALID_ARGUMENT.
    pub fn classify(&self, code: &str) -> Result<(&Category, Complexity)> {
        consultation::classify(self.flow.catalog(), code)
    }

    /// Files a consultation; the requester's e-mails go to its
    /// `contact_email` (else the token's address), in `locale`.
    pub async fn create(
        &self,
        who: &Principal,
        new: NewConsultation,
        locale: Locale,
    ) -> Result<Consultation> {
        let (_, complexity) = self.classify(&new.category)?;
        let fingerprint = new.fingerprint();
        let key = new.idempotency_key.clone();
        let (catalog, targets) = (self.flow.shared_catalog(), self.targets);
        let calendar = self.calendar.clone();
        let contact = new.contact_email.clone();
        self.flow
            .create(
                who,
                key,
                fingerprint,
                complexity.creates_ticket(),
                move |mut header| {
                    header.contacts.filed(contact, locale);
                    Consultation::file(header, new, &catalog, &targets, &calendar)
                },
            )
            .await
    }

    pub async fn change_status(
        &self,
        who: &Principal,
        id: &str,
        to: ConsultationStatus,
        expected_version: Option<i64>,
        comment: Option<String>,
    ) -> Result<Consultation> {
        let role = who.role;
        self.flow
            .change(
                who,
                id,
                expected_version,
                move |_| consultation::may_change_status(role),
                move |current, now| current.change_status(to, comment, role, now),
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
        expected_version: Option<i64>,
    ) -> Result<Consultation> {
        let (caller, targets, calendar) = (who.clone(), self.targets, self.calendar.clone());
        self.flow
            .change_numbered(
                who,
                id,
                expected_version,
                move |_| ticket::agents_only::<Consultation>(&caller, "reclassify"),
                move |current| current.gets_number(to),
                move |current, now, number| {
                    current.reclassify(to, number, &targets, &calendar, now)
                },
            )
            .await
    }
}
