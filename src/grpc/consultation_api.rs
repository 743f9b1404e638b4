//! ConsultationService: validate, call the use case, convert back.
use prost::Message;
use tonic::{Request, Response, Status};

use super::convert;
use super::validate::{self, MAX_CODE, MAX_ID, MAX_TEXT, enum_list, incomplete};
use chrono_tz::Tz;

use super::thread::ticket_service;
use super::watch::Watcher;
use super::{caller, page_token};
use crate::domain::Result;
use crate::domain::consultation::{self, NewConsultation};
use crate::domain::error::Violations;
use crate::domain::event::TicketType;
use crate::domain::principal::Locale;
use crate::domain::text;
use crate::pb::consultation_service_server::ConsultationService;
use crate::pb::*;
use crate::report::columns::CONSULTATION_COLUMNS;
use crate::service::consultations::{Consultations, ListQuery};
use crate::service::tickets::Paging;

#[derive(Clone)]
pub struct ConsultationApi {
    consultations: Consultations,
    watcher: Watcher,
    /// Reports show dates, and read date ranges, in this time zone.
    time_zone: Tz,
}

/// No. … Solución.
const DEFAULT_CONSULTATION_COLUMNS: usize = 9;

impl ConsultationApi {
    pub fn new(consultations: Consultations, watcher: Watcher, time_zone: Tz) -> Self {
        Self {
            consultations,
            watcher,
            time_zone,
        }
    }

    fn reply(
        &self,
        consultation: &consultation::Consultation,
        locale: Locale,
    ) -> Response<Consultation> {
        Response::new(convert::consultation(consultation, locale))
    }
}

ticket_service! {
    impl ConsultationService for ConsultationApi {
        tickets: consultations,
        message: Consultation,
        create: create_consultation(CreateConsultationRequest),
        get: get_consultation(GetConsultationRequest, get_consultation_request),
        assign: assign_consultation(AssignConsultationRequest),
        export: ExportConsultationsRequest,
        report: (CONSULTATION_COLUMNS, DEFAULT_CONSULTATION_COLUMNS, es = "consultas", en = "consultations"),
    }

    async fn classify_consultation(
        &self,
        request: Request<ClassifyConsultationRequest>,
    ) -> Result<Response<ClassifyConsultationResponse>, Status> {
        let (_, locale) = caller(&request)?;
        let code = text::required("category", &request.into_inner().category, MAX_CODE)?;
        let (category, complexity) = self.consultations.classify(&code)?;
        let (min, max) = complexity.window();
        let targets = self.consultations.targets();
        Ok(Response::new(ClassifyConsultationResponse {
            category: Some(convert::category(category)),
            complexity: convert::complexity(complexity) as i32,
            target_min_minutes: minutes(min),
            target_max_minutes: max.map_or(0, minutes),
            creates_ticket: complexity.creates_ticket(),
            message: complexity.promise(targets, locale),
            due_in_minutes: minutes(complexity.due_after(targets)),
        }))
    }

    async fn list_consultations(
        &self,
        request: Request<ListConsultationsRequest>,
    ) -> Result<Response<ListConsultationsResponse>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let fingerprint = list_fingerprint(&r);
        let (query, paging) = parse_list(&r)?;
        let page = self.consultations.flow().list(&who, &query, paging).await?;
        Ok(Response::new(ListConsultationsResponse {
            consultations: page
                .tickets
                .iter()
                .map(|m| convert::consultation(m, locale))
                .collect(),
            next_page_token: page
                .next
                .map(|c| page_token::encode(c, &fingerprint))
                .unwrap_or_default(),
            total_size: page.total_size,
            status_counts: Some(convert::status_counts(&page.counts)),
            counts_approximate: page.approximate,
        }))
    }

    async fn change_consultation_status(
        &self,
        request: Request<ChangeConsultationStatusRequest>,
    ) -> Result<Response<Consultation>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let (id, expected, (to, comment)) =
            validate::change(&r.id, r.expected_version, true, |v| {
                let to = v.check(convert::parse_consultation_status("status", r.status))?;
                let comment = v.text("comment", &r.comment, MAX_TEXT);
                Ok(to.map(|to| (to, comment)))
            })?;
        let consultations = &self.consultations;
        let model = consultations
            .change_status(&who, &id, to, expected, comment)
            .await?;
        Ok(self.reply(&model, locale))
    }

    async fn reclassify_consultation(
        &self,
        request: Request<ReclassifyConsultationRequest>,
    ) -> Result<Response<Consultation>, Status> {
        let (who, locale) = caller(&request)?;
        let r = request.into_inner();
        let (id, expected, to) = validate::change(&r.id, r.expected_version, true, |v| {
            v.check(convert::parse_complexity("complexity", r.complexity))
        })?;
        let consultations = &self.consultations;
        let model = consultations.reclassify(&who, &id, to, expected).await?;
        Ok(self.reply(&model, locale))
    }

    async fn list_categories(
        &self,
        _: Request<ListCategoriesRequest>,
    ) -> Result<Response<ListCategoriesResponse>, Status> {
        let categories = self
            .consultations
            .catalog()
            .categories_of(TicketType::Consultation)
            .map(|c| {
                let mut category = convert::category(c);
                if let Ok((_, complexity)) = self.consultations.classify(&c.code) {
                    category.target_minutes =
                        minutes(complexity.due_after(self.consultations.targets()));
                }
                category
            })
            .collect();
        Ok(Response::new(ListCategoriesResponse { categories }))
    }
}

/// The parts of a list request that must stay the same across its pages.
fn list_fingerprint(r: &ListConsultationsRequest) -> String {
    let mut stable = r.clone();
    stable.page_token.clear();
    stable.page_size = 0;
    page_token::fingerprint(&stable.encode_to_vec())
}

fn parse_list(r: &ListConsultationsRequest) -> Result<(ListQuery, Paging<String>)> {
    let mut v = Violations::default();
    let statuses = v
        .check(enum_list(
            "statuses",
            &r.statuses,
            convert::parse_consultation_status,
        ))?
        .unwrap_or_default();
    let complexities = v
        .check(enum_list(
            "complexities",
            &r.complexities,
            convert::parse_complexity,
        ))?
        .unwrap_or_default();
    let (from, to) = (r.created_from.as_ref(), r.created_to.as_ref());
    let criteria = validate::criteria(&mut v, &r.category, &r.assignee_id, from, to, &r.query)?;
    let paging = validate::paging(
        &mut v,
        r.page_size,
        &r.page_token,
        &list_fingerprint(r),
        true,
    )?;
    v.into_result()?;
    let query = ListQuery {
        criteria,
        statuses,
        complexities,
    };
    Ok((query, paging))
}

fn parse_create(r: CreateConsultationRequest) -> Result<NewConsultation> {
    let CreateConsultationRequest {
        category,
        description,
        order_reference,
        idempotency_key,
    } = r;
    let mut v = Violations::default();
    let category = v.check(text::required("category", &category, MAX_CODE))?;
    let description = v.check(text::required("description", &description, MAX_TEXT))?;
    let order_reference = v.text("order_reference", &order_reference, MAX_CODE);
    let idempotency_key = v.text("idempotency_key", &idempotency_key, MAX_ID);
    v.into_result()?;
    let (Some(category), Some(description)) = (category, description) else {
        return Err(incomplete("category"));
    };
    Ok(NewConsultation {
        category,
        description,
        order_reference,
        idempotency_key,
    })
}

fn minutes(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs() / 60).unwrap_or(i32::MAX)
}
