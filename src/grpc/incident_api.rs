//! IncidentService: validate, call the use case, convert back.
use tonic::{Request, Response, Status};

use chrono_tz::Tz;

use super::convert::{self, micros};
use super::thread::ticket_service;
use super::validate::{self, ChangeRequest, MAX_CODE, MAX_ID, MAX_REASON, MAX_TEXT, enum_list};
use super::watch::Watcher;
use crate::domain::error::Violations;
use crate::domain::event::TicketType;
use crate::domain::incident::{self, NewIncident, StatusChange, TrackingNumber};
use crate::domain::principal::Locale;
use crate::domain::text;
use crate::domain::{Error, Result};
use crate::pb::incident_service_server::IncidentService;
use crate::pb::*;
use crate::service::incidents::{IncidentFilters, Incidents, ListQuery};
use crate::service::tickets::Page;
use crate::service::tickets::Paging;

#[derive(Clone)]
pub struct IncidentApi {
    incidents: Incidents,
    watcher: Watcher,
    /// Reports show dates, and read date ranges, in this time zone.
    time_zone: Tz,
}

impl IncidentApi {
    fn reply(&self, incident: &incident::Incident, locale: Locale) -> Response<Incident> {
        let now = self.incidents.flow().now();
        Response::new(convert::incident(
            incident,
            self.incidents.catalog(),
            locale,
            now,
        ))
    }

    /// Checks the read mask; returns what builds ListIncidents' response.
    fn list_reply(
        &self,
        r: &ListIncidentsRequest,
        locale: Locale,
    ) -> Result<impl FnOnce(Page<incident::Incident>, String) -> ListIncidentsResponse + '_> {
        let mask = read_mask(r.read_mask.as_ref())?;
        Ok(move |page: Page<incident::Incident>, next_page_token| {
            let catalog = self.incidents.catalog();
            let now = self.incidents.flow().now();
            let incidents = page
                .tickets
                .iter()
                .map(|t| {
                    let full = convert::incident(t, catalog, locale, now);
                    match &mask {
                        Some(paths) => convert::mask_incident(full, paths),
                        None => full,
                    }
                })
                .collect();
            ListIncidentsResponse {
                incidents,
                next_page_token,
                total_size: page.total_size,
                stage_counts: Some(convert::stage_counts(&page.counts)),
                counts_approximate: page.approximate,
            }
        })
    }

    /// ChangeIncidentStatus and CancelIncident: validates the request (see
    /// `validate::change`; `read` reads the change it asks for), changes
    /// the status, replies.
    async fn change_status<R: ChangeRequest>(
        &self,
        request: Request<R>,
        version_required: bool,
        read: impl FnOnce(&R, &mut Violations) -> Result<Option<StatusChange>>,
    ) -> Result<Response<Incident>, Status> {
        let c = validate::change(request, version_required, read)?;
        let incidents = &self.incidents;
        let model = incidents
            .change_status(&c.who, &c.id, c.expected, c.to)
            .await?;
        Ok(self.reply(&model, c.locale))
    }

    pub fn new(incidents: Incidents, watcher: Watcher, time_zone: Tz) -> Self {
        Self {
            incidents,
            watcher,
            time_zone,
        }
    }
}

ticket_service! {
    impl IncidentService for IncidentApi {
        tickets: incidents,
        message: Incident,
        create: create_incident(CreateIncidentRequest),
        get: get_incident(GetIncidentRequest, get_incident_request),
        list: list_incidents(ListIncidentsRequest) -> ListIncidentsResponse, unpaged: [read_mask],
        assign: assign_incident(AssignIncidentRequest),
        export: ExportIncidentsRequest,
    }

    async fn change_incident_status(
        &self,
        request: Request<ChangeIncidentStatusRequest>,
    ) -> Result<Response<Incident>, Status> {
        self.change_status(request, true, |r, v| {
            let to = v.check(convert::parse_incident_status("status", r.status))?;
            let reason = v.check(convert::reason_of("reason", r.reason))?.flatten();
            let comment = v.text("comment", &r.comment, MAX_TEXT);
            Ok(to.map(|to| StatusChange {
                to,
                reason,
                comment,
                note: None,
            }))
        })
        .await
    }

    async fn cancel_incident(
        &self,
        request: Request<CancelIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        self.change_status(request, false, |r, v| {
            let reason = v.check(text::required("reason", &r.reason, MAX_REASON))?;
            Ok(reason.map(StatusChange::cancellation))
        })
        .await
    }

    async fn list_categories(
        &self,
        request: Request<ListCategoriesRequest>,
    ) -> Result<Response<ListCategoriesResponse>, Status> {
        let kind = match request.into_inner().incident_kind {
            0 => None,
            k => Some(convert::parse_incident_kind("incident_kind", k)?),
        };
        let categories = self
            .incidents
            .catalog()
            .categories_of(TicketType::Incident)
            .filter(|c| kind.is_none_or(|k| c.incident_kind == Some(k)))
            .map(convert::category)
            .collect();
        Ok(Response::new(ListCategoriesResponse { categories }))
    }

    async fn list_carriers(
        &self,
        _: Request<ListCarriersRequest>,
    ) -> Result<Response<ListCarriersResponse>, Status> {
        let carriers = convert::carriers(self.incidents.catalog());
        Ok(Response::new(ListCarriersResponse { carriers }))
    }
}

fn parse_list(r: &ListIncidentsRequest) -> Result<(ListQuery, Paging<i64>)> {
    validate::list(r, &list_fingerprint(r), |v| {
        let filters = IncidentFilters {
            stage: v.check(convert::stage_of("stage", r.stage))?.flatten(),
            statuses: enum_list(v, "statuses", &r.statuses, convert::parse_incident_status)?,
            kinds: enum_list(v, "kinds", &r.kinds, convert::parse_incident_kind)?,
            carrier: v.text("carrier", &r.carrier, MAX_CODE),
        };
        Ok((filters, descending(v, &r.order_by)))
    })
}

/// ListIncidents' `order_by`: newest first unless it asks otherwise.
fn descending(v: &mut Violations, order_by: &str) -> bool {
    let words = order_by.split_whitespace().collect::<Vec<_>>().join(" ");
    match words.to_ascii_lowercase().as_str() {
        "" | "created_at desc" => true,
        "created_at" | "created_at asc" => false,
        other => {
            let hint = "use \"created_at desc\" or \"created_at asc\"";
            v.push("order_by", format!("unsupported order {other:?}: {hint}"));
            true
        }
    }
}

fn parse_create(r: CreateIncidentRequest) -> Result<NewIncident> {
    let CreateIncidentRequest {
        kind,
        tracking_number,
        carrier,
        category,
        description,
        shipped_at,
        claimed_amount,
        idempotency_key,
        contact_email,
    } = r;
    let mut v = Violations::default();
    let kind = v.check(convert::parse_incident_kind("kind", kind))?;
    let tracking_number = v.check(TrackingNumber::parse(&tracking_number))?;
    let carrier = v.check(text::required("carrier", &carrier, MAX_CODE))?;
    let category = v.check(text::required("category", &category, MAX_CODE))?;
    let description = v.check(text::required("description", &description, MAX_TEXT))?;
    let shipped_at = v
        .check(
            shipped_at
                .as_ref()
                .map(|t| micros("shipped_at", t))
                .transpose(),
        )?
        .flatten();
    let claimed_amount = v
        .check(
            claimed_amount
                .map(|m| incident::Money::parse("claimed_amount", &m.amount, &m.currency))
                .transpose(),
        )?
        .flatten();
    let idempotency_key = v.text("idempotency_key", &idempotency_key, MAX_ID);
    let contact_email = v
        .check(super::validate::optional_email(
            "contact_email",
            &contact_email,
        ))?
        .flatten();
    v.finish("kind", || {
        Some(NewIncident {
            kind: kind?,
            tracking_number: tracking_number?,
            carrier: carrier?,
            category: category?,
            description: description?,
            shipped_at,
            claimed_amount,
            idempotency_key,
            contact_email,
        })
    })
}

fn read_mask(mask: Option<&prost_types::FieldMask>) -> Result<Option<Vec<String>>> {
    let Some(mask) = mask else { return Ok(None) };
    if mask.paths.is_empty() {
        return Ok(None);
    }
    if mask.paths.len() > convert::INCIDENT_FIELDS.len() {
        return Err(Error::invalid("read_mask", "too many paths"));
    }
    for path in &mask.paths {
        if !convert::INCIDENT_FIELDS.contains(&path.as_str()) {
            return Err(Error::invalid(
                "read_mask",
                format!("unknown Incident field {path:?}"),
            ));
        }
    }
    Ok(Some(mask.paths.clone()))
}
