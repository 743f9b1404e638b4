//! IncidentService: validate, call the use case, convert back.
use prost::Message;
use tonic::{Request, Response, Status};

use chrono_tz::Tz;

use super::caller;
use super::convert::{self, micros};
use super::export::{self, ExportStream};
use super::page_token;
use super::thread;
use super::validate::{
    self, Assignment, MAX_CODE, MAX_ID, MAX_QUERY, MAX_REASON, MAX_TEXT, assignment, created_range,
    enum_list, expected_version, incomplete, ticket_id,
};
use super::watch::{WatchStream, Watcher};
use crate::domain::error::Violations;
use crate::domain::event::Audience;
use crate::domain::incident::IncidentStatus;
use crate::domain::principal::Locale;
use crate::domain::text;
use crate::domain::{Error, Result};
use crate::pb::incident_service_server::IncidentService;
use crate::pb::*;
use crate::report::columns::{self, INCIDENT_COLUMNS};
use crate::service::incidents::{Incidents, ListQuery, Lookup, NewIncident, StatusChange};

#[derive(Clone)]
pub struct IncidentApi {
    incidents: Incidents,
    watcher: Watcher,
    /// Reports show dates, and read date ranges, in this time zone.
    time_zone: Tz,
}

impl IncidentApi {
    fn reply(
        &self,
        model: &crate::store::entity::incident::Model,
        locale: Locale,
    ) -> Response<Incident> {
        let now = self.incidents.clock().now().timestamp_micros();
        Response::new(convert::incident(
            model,
            self.incidents.catalog(),
            locale,
            now,
        ))
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

#[tonic::async_trait]
impl IncidentService for IncidentApi {
    async fn create_incident(
        &self,
        request: Request<CreateIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        let (who, locale) = caller(&request)?;
        let new = parse_create(request.into_inner())?;
        let model = self.incidents.create(&who, new).await?;
        Ok(self.reply(&model, locale))
    }

    async fn get_incident(
        &self,
        request: Request<GetIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        let (who, locale) = caller(&request)?;
        let lookup = match request.into_inner().lookup {
            Some(get_incident_request::Lookup::Id(id)) => validate::lookup(Some(id), None),
            Some(get_incident_request::Lookup::Number(n)) => validate::lookup(None, Some(n)),
            None => validate::lookup(None, None),
        }?;
        let model = self.incidents.get(&who, &lookup).await?;
        Ok(self.reply(&model, locale))
    }

    async fn list_incidents(
        &self,
        request: Request<ListIncidentsRequest>,
    ) -> Result<Response<ListIncidentsResponse>, Status> {
        let (who, locale) = caller(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let fingerprint = list_fingerprint(&request);
        let query = self.parse_list(request)?;
        let page = self.incidents.list(&who, query).await?;
        let catalog = self.incidents.catalog();
        let now = self.incidents.clock().now().timestamp_micros();
        let incidents = page
            .incidents
            .iter()
            .map(|m| {
                let full = convert::incident(m, catalog, locale, now);
                match &mask {
                    Some(paths) => convert::mask_incident(full, paths),
                    None => full,
                }
            })
            .collect();
        let [all, new, in_review, resolved] = page.stage_counts;
        Ok(Response::new(ListIncidentsResponse {
            incidents,
            next_page_token: page
                .next
                .map(|after| page_token::encode(after, &fingerprint))
                .unwrap_or_default(),
            total_size: page.total_size,
            stage_counts: Some(StageCounts {
                all,
                new,
                in_review,
                resolved,
            }),
        }))
    }

    async fn change_incident_status(
        &self,
        request: Request<ChangeIncidentStatusRequest>,
    ) -> Result<Response<Incident>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let id = v.check(ticket_id("id", &r.id))?;
        let to = v.check(convert::parse_incident_status("status", r.status))?;
        let expected = v
            .check(expected_version(r.expected_version, true))?
            .flatten();
        let reason = v.check(convert::parse_reason(r.reason))?.flatten();
        let comment = v
            .check(text::optional("comment", &r.comment, MAX_TEXT))?
            .flatten();
        v.into_result()?;
        let (Some(id), Some(to)) = (id, to) else {
            return Err(incomplete("id").into());
        };
        let change = StatusChange {
            to,
            expected_version: expected,
            reason,
            comment,
            note: None,
        };
        let model = self.incidents.change_status(&who, &id, change).await?;
        Ok(self.reply(&model, locale))
    }

    async fn assign_incident(
        &self,
        request: Request<AssignIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let Assignment {
            id,
            assignee,
            expected_version: expected,
        } = assignment(&r.id, &r.assignee_id, &r.assignee_name, r.expected_version)?;
        let model = self.incidents.assign(&who, &id, assignee, expected).await?;
        Ok(self.reply(&model, locale))
    }

    async fn cancel_incident(
        &self,
        request: Request<CancelIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let id = v.check(ticket_id("id", &r.id))?;
        let reason = v.check(text::required("reason", &r.reason, MAX_REASON))?;
        let expected = v
            .check(expected_version(r.expected_version, false))?
            .flatten();
        v.into_result()?;
        let (Some(id), Some(reason)) = (id, reason) else {
            return Err(incomplete("id").into());
        };
        let change = StatusChange {
            to: IncidentStatus::Cancelled,
            expected_version: expected,
            reason: None,
            comment: None,
            note: Some(reason),
        };
        let model = self.incidents.change_status(&who, &id, change).await?;
        Ok(self.reply(&model, locale))
    }

    async fn add_comment(
        &self,
        request: Request<AddCommentRequest>,
    ) -> Result<Response<Comment>, Status> {
        let (who, _) = caller(&request)?;
        let (id, body, internal) = thread::parse_add_comment(request.into_inner())?;
        let comment = self
            .incidents
            .add_comment(&who, &id, body, internal)
            .await?;
        Ok(Response::new(convert::comment(&comment)))
    }

    async fn list_comments(
        &self,
        request: Request<ListCommentsRequest>,
    ) -> Result<Response<ListCommentsResponse>, Status> {
        thread::list_comments(request, |who, id, after, limit| async move {
            self.incidents.list_comments(&who, &id, after, limit).await
        })
        .await
    }

    async fn list_ticket_events(
        &self,
        request: Request<ListTicketEventsRequest>,
    ) -> Result<Response<ListTicketEventsResponse>, Status> {
        thread::list_events(request, |who, id, after, limit| async move {
            self.incidents.list_events(&who, &id, after, limit).await
        })
        .await
    }

    type WatchTicketStream = WatchStream;

    async fn watch_ticket(
        &self,
        request: Request<WatchTicketRequest>,
    ) -> Result<Response<Self::WatchTicketStream>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let id = ticket_id("ticket_id", &r.ticket_id)?;
        // NOT_FOUND for a ticket the caller may not see.
        self.incidents.get(&who, &Lookup::Id(id.clone())).await?;
        Ok(Response::new(
            self.watcher
                .open(Audience::of_ticket(&who, id), r.after_sequence, locale)
                .await?,
        ))
    }

    type ExportReportStream = ExportStream;

    async fn export_report(
        &self,
        request: Request<ExportIncidentsRequest>,
    ) -> Result<Response<Self::ExportReportStream>, Status> {
        let (who, _) = caller(&request)?;
        let r = request.into_inner();
        let (range, locale) = export::parse(&r.from_date, &r.to_date, &r.locale, self.time_zone)?;
        let columns = columns::select(INCIDENT_COLUMNS, DEFAULT_INCIDENT_COLUMNS, &r.columns)?;
        let mut query = self.parse_list(r.filter.unwrap_or_default())?;
        let (from, to) = range.clamp(query.created_from, query.created_to);
        (query.created_from, query.created_to) = (Some(from), Some(to));
        let (count, chunks) = self
            .incidents
            .export(&who, query, columns, locale, self.time_zone)
            .await?;
        let stem = match locale {
            Locale::Es => "incidencias",
            Locale::En => "incidents",
        };
        Ok(Response::new(export::stream(
            range.file_name(stem),
            count,
            chunks,
        )))
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
            .categories_of(crate::service::incidents::TICKET_TYPE)
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

impl IncidentApi {
    fn parse_list(&self, r: ListIncidentsRequest) -> Result<ListQuery> {
        let mut v = Violations::default();
        let stage = v.check(convert::parse_stage(r.stage))?.flatten();
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
        let carrier = v
            .check(text::optional("carrier", &r.carrier, MAX_CODE))?
            .flatten();
        let category = v
            .check(text::optional("category", &r.category, MAX_CODE))?
            .flatten();
        let assignee_id = v
            .check(text::optional("assignee_id", &r.assignee_id, MAX_ID))?
            .flatten();
        let (created_from, created_to) =
            created_range(&mut v, r.created_from.as_ref(), r.created_to.as_ref())?;
        let query = v
            .check(text::optional("query", &r.query, MAX_QUERY))?
            .flatten();
        let page_size = v
            .check(page_token::page_size(r.page_size, 50, 500))?
            .unwrap_or(50);
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
        let fingerprint = list_fingerprint(&r);
        let cursor = v
            .check(page_token::decode::<(i64, i64)>(
                &r.page_token,
                &fingerprint,
            ))?
            .flatten();
        v.into_result()?;
        Ok(ListQuery {
            stage,
            statuses,
            kinds,
            carrier,
            category,
            assignee_id,
            created_from,
            created_to,
            text: query,
            descending,
            after: cursor,
            page_size,
        })
    }
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
    let tracking_number = v.check(tracking(&tracking_number))?;
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
    let claimed_amount = v.check(claimed_amount.map(money).transpose())?.flatten();
    let idempotency_key = v
        .check(text::optional("idempotency_key", &idempotency_key, MAX_ID))?
        .flatten();
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

/// A tracking number (guía): 3 to 64 letters, digits, '-' or '_'.
fn tracking(value: &str) -> Result<String> {
    let value = text::required("tracking_number", value, 64)?;
    if value.chars().count() < 3
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(
            "tracking_number",
            "must be 3 to 64 letters, digits, '-' or '_'",
        ));
    }
    Ok(value)
}

/// A non-negative decimal with at most 2 fractional digits and an ISO 4217 code.
fn money(m: Money) -> Result<(String, String)> {
    let mut v = Violations::default();
    let amount = m.amount.trim();
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let amount_ok = !int.is_empty()
        && int.len() <= 12
        && digits(int)
        && frac.len() <= 2
        && digits(frac)
        && frac.is_empty() != amount.contains('.');
    if !amount_ok {
        v.push("claimed_amount.amount", "must be a non-negative decimal like 1250.50 (at most 12 integer and 2 fractional digits)");
    }
    let currency = m.currency.trim();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        v.push(
            "claimed_amount.currency",
            "must be an ISO 4217 code such as MXN",
        );
    }
    v.into_result()?;
    Ok((amount.to_owned(), currency.to_owned()))
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
