//! IncidentService: validate, call the use case, convert back.
use prost::Message;
use tonic::{Request, Response, Status};

use chrono_tz::Tz;

use super::caller;
use super::convert::{self, micros};
use super::page_token;
use super::thread::ticket_service;
use super::validate::{self, MAX_CODE, MAX_ID, MAX_REASON, MAX_TEXT, enum_list, incomplete};
use super::watch::Watcher;
use crate::domain::error::Violations;
use crate::domain::event::TicketType;
use crate::domain::incident::{self, NewIncident, StatusChange, TrackingNumber};
use crate::domain::principal::{Locale, Principal};
use crate::domain::text;
use crate::domain::{Error, Result};
use crate::pb::incident_service_server::IncidentService;
use crate::pb::*;
use crate::report::columns::INCIDENT_COLUMNS;
use crate::service::incidents::{Incidents, ListQuery};
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

    /// ChangeIncidentStatus and CancelIncident, once validated.
    async fn change_status(
        &self,
        who: &Principal,
        id: &str,
        expected: Option<i64>,
        change: StatusChange,
        locale: Locale,
    ) -> Result<Response<Incident>, Status> {
        let model = self
            .incidents
            .change_status(who, id, expected, change)
            .await?;
        Ok(self.reply(&model, locale))
    }

    pub fn new(incidents: Incidents, watcher: Watcher, time_zone: Tz) -> Self {
        Self {
            incidents,
            watcher,
            time_zone,
        }
    }
}

/// The module's report: No. … Resolución.
const DEFAULT_INCIDENT_COLUMNS: usize = 10;

ticket_service! {
    impl IncidentService for IncidentApi {
        tickets: incidents,
        message: Incident,
        create: create_incident(CreateIncidentRequest),
        get: get_incident(GetIncidentRequest, get_incident_request),
        assign: assign_incident(AssignIncidentRequest),
        export: ExportIncidentsRequest,
        report: (INCIDENT_COLUMNS, DEFAULT_INCIDENT_COLUMNS, es = "incidencias", en = "incidents"),
    }

    async fn list_incidents(
        &self,
        request: Request<ListIncidentsRequest>,
    ) -> Result<Response<ListIncidentsResponse>, Status> {
        let (who, locale) = caller(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let fingerprint = list_fingerprint(&request);
        let (query, paging) = parse_list(&request)?;
        let page = self.incidents.flow().list(&who, &query, paging).await?;
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
        let stages = convert::stage_counts(&page.counts);
        Ok(Response::new(ListIncidentsResponse {
            incidents,
            next_page_token: page
                .next
                .map(|after| page_token::encode(after, &fingerprint))
                .unwrap_or_default(),
            total_size: page.total_size,
            stage_counts: Some(stages),
            counts_approximate: page.approximate,
        }))
    }

    async fn change_incident_status(
        &self,
        request: Request<ChangeIncidentStatusRequest>,
    ) -> Result<Response<Incident>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let (id, expected, change) = validate::change(&r.id, r.expected_version, true, |v| {
            let to = v.check(convert::parse_incident_status("status", r.status))?;
            let reason = v.check(convert::reason_of("reason", r.reason))?.flatten();
            let comment = v.text("comment", &r.comment, MAX_TEXT);
            Ok(to.map(|to| StatusChange {
                to,
                reason,
                comment,
                note: None,
            }))
        })?;
        self.change_status(&who, &id, expected, change, locale)
            .await
    }

    async fn cancel_incident(
        &self,
        request: Request<CancelIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let (id, expected, change) = validate::change(&r.id, r.expected_version, false, |v| {
            let reason = v.check(text::required("reason", &r.reason, MAX_REASON))?;
            Ok(reason.map(StatusChange::cancellation))
        })?;
        self.change_status(&who, &id, expected, change, locale)
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
        let carriers = self
            .incidents
            .catalog()
            .carriers
            .iter()
            .map(convert::carrier)
            .collect();
        Ok(Response::new(ListCarriersResponse { carriers }))
    }
}

fn parse_list(r: &ListIncidentsRequest) -> Result<(ListQuery, Paging<i64>)> {
    let mut v = Violations::default();
    let stage = v.check(convert::stage_of("stage", r.stage))?.flatten();
    let statuses = v
        .check(enum_list(
            "statuses",
            &r.statuses,
            convert::parse_incident_status,
        ))?
        .unwrap_or_default();
    let kinds = v
        .check(enum_list("kinds", &r.kinds, convert::parse_incident_kind))?
        .unwrap_or_default();
    let carrier = v.text("carrier", &r.carrier, MAX_CODE);
    let (from, to) = (r.created_from.as_ref(), r.created_to.as_ref());
    let criteria = validate::criteria(&mut v, &r.category, &r.assignee_id, from, to, &r.query)?;
    let descending = match r
        .order_by
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "created_at desc" => true,
        "created_at" | "created_at asc" => false,
        other => {
            v.push(
                "order_by",
                format!(
                    "unsupported order {other:?}: use \"created_at desc\" or \"created_at asc\""
                ),
            );
            true
        }
    };
    let paging = validate::paging(
        &mut v,
        r.page_size,
        &r.page_token,
        &list_fingerprint(r),
        descending,
    )?;
    v.into_result()?;
    let query = ListQuery {
        criteria,
        stage,
        statuses,
        kinds,
        carrier,
    };
    Ok((query, paging))
}

/// The parts of a list request that must stay the same across its pages.
fn list_fingerprint(r: &ListIncidentsRequest) -> String {
    let mut stable = r.clone();
    stable.page_token.clear();
    stable.page_size = 0;
    stable.read_mask = None;
    page_token::fingerprint(&stable.encode_to_vec())
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
    v.into_result()?;
    let (Some(kind), Some(tracking_number), Some(carrier), Some(category), Some(description)) =
        (kind, tracking_number, carrier, category, description)
    else {
        return Err(incomplete("kind"));
    };
    Ok(NewIncident {
        kind,
        tracking_number,
        carrier,
        category,
        description,
        shipped_at,
        claimed_amount,
        idempotency_key,
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
