//! Incident use cases: what the shared workflow (`service::tickets`) does
//! not — filing, status changes, auto-close, and the stage tabs of lists.
use std::sync::Arc;
use std::time::Duration;

use super::notify::Outbound;
use super::scheduler::Alarm;

use super::tickets::{self, OwnFilters, Selection, Workflow};
use crate::domain::Result;
use crate::domain::calendar::Calendar;
use crate::domain::catalog::Catalog;
use crate::domain::clock::Clock;
use crate::domain::error::Violations;
use crate::domain::incident::{
    self, Incident, IncidentKind, IncidentStatus, NewIncident, Stage, StatusChange,
};
use crate::domain::principal::{Locale, Principal};
use crate::store::Store;
use crate::store::incidents::{self as rows, IncidentFilter};
use crate::store::tickets::Filter;

/// A ListIncidents request (or ExportReport's filter) as parsed at the edge.
pub type ListQuery = tickets::ListQuery<IncidentFilters>;

/// The filters only incidents have; the catalog codes are checked in
/// `selection`.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilters {
    pub stage: Option<Stage>,
    pub statuses: Vec<IncidentStatus>,
    pub kinds: Vec<IncidentKind>,
    pub carrier: Option<String>,
}

impl OwnFilters<Incident> for IncidentFilters {
    /// The stage and the status list narrow each other.
    fn selection(&self, common: Filter, catalog: &Catalog) -> Result<Selection<Incident>> {
        let mut v = Violations::default();
        if let Some(c) = &self.carrier
            && catalog.carrier(c).is_none()
        {
            v.push(
                "carrier",
                format!("unknown carrier {c:?}; see ListCarriers"),
            );
        }
        if let Some(c) = &common.criteria.category
            && catalog.category(c).is_none()
        {
            v.push(
                "category",
                format!("unknown category {c:?}; see ListCategories"),
            );
        }
        v.into_result()?;
        let narrowed = (self.stage.is_some() || !self.statuses.is_empty()).then(|| {
            IncidentStatus::ALL
                .iter()
                .copied()
                .filter(|s| self.stage.is_none_or(|stage| s.stage() == stage))
                .filter(|s| self.statuses.is_empty() || self.statuses.contains(s))
                .collect()
        });
        let filter = IncidentFilter {
            common,
            kinds: self.kinds.iter().map(|k| k.as_str()).collect(),
            carrier: self.carrier.clone(),
        };
        Ok(Selection {
            filter,
            statuses: narrowed,
        })
    }
}

#[derive(Clone)]
pub struct Incidents {
    flow: Workflow<Incident>,
    /// The business calendar; dates in messages are in its time zone.
    calendar: Arc<Calendar>,
}

impl Incidents {
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        calendar: Arc<Calendar>,
        export_stall: Duration,
    ) -> Self {
        let deadlines = Arc::new(Alarm::default());
        Self {
            flow: Workflow::new(store, catalog, clock, deadlines, export_stall),
            calendar,
        }
    }

    /// Who events tell (`--notify-rules`), and e-mail when it is on.
    pub fn with_outbound(mut self, outbound: Arc<Outbound>) -> Self {
        self.flow.set_outbound(outbound);
        self
    }

    /// What incidents share with every ticket type: get, assign, comments,
    /// events, breaches.
    pub fn flow(&self) -> &Workflow<Incident> {
        &self.flow
    }

    /// The signal raised when a new deadline is set (shared with consultations).
    pub fn deadlines(&self) -> Arc<Alarm> {
        self.flow.deadlines()
    }

    pub fn catalog(&self) -> &Catalog {
        self.flow.catalog()
    }

    /// The earliest pending deadline (µs): an auto-close or an estimate to breach.
    pub async fn next_deadline(&self) -> Result<Option<i64>> {
        let close = rows::next_auto_close(self.flow.store().conn()).await?;
        let breach = self.flow.next_breach().await?;
        Ok(close.into_iter().chain(breach).min())
    }

    /// Finalizes every MISSING_DATA incident whose deadline has passed, by the
    /// system actor, with reason NO_CUSTOMER_RESPONSE. Returns how many.
    pub async fn auto_close_due(&self) -> Result<usize> {
        let due = rows::due_auto_close(self.flow.store().conn(), self.flow.now(), 100).await?;
        self.flow.sweep(due, Incident::auto_close).await
    }

    /// Files an incident; the requester's e-mails go to its `contact_email`
    /// (else the token's address), in `locale`.
    pub async fn create(
        &self,
        who: &Principal,
        new: NewIncident,
        locale: Locale,
    ) -> Result<Incident> {
        let fingerprint = new.fingerprint();
        let key = new.idempotency_key.clone();
        let (catalog, time_zone) = (self.flow.shared_catalog(), self.calendar.time_zone());
        let contact = new.contact_email.clone();
        self.flow
            .create(who, key, fingerprint, true, move |mut header| {
                header.contacts.filed(contact, locale);
                Incident::file(header, new, &catalog, time_zone)
            })
            .await
    }

    /// ChangeIncidentStatus and CancelIncident; a requester may only cancel,
    /// which is decided before the version and the status are looked at.
    pub async fn change_status(
        &self,
        who: &Principal,
        id: &str,
        expected_version: Option<i64>,
        change: StatusChange,
    ) -> Result<Incident> {
        let (calendar, to, role) = (self.calendar.clone(), change.to, who.role);
        self.flow
            .change(
                who,
                id,
                expected_version,
                move |_| incident::may_change_to(to, role),
                move |current, now| current.change_status(change, role, now, &calendar),
            )
            .await
    }
}
