//! ConsultationService: validate, call the use case, convert back.
use tonic::{Request, Response, Status};

use super::convert;
use super::validate::{self, MAX_CODE, MAX_ID, MAX_TEXT, enum_list};
use chrono_tz::Tz;

use super::caller;
use super::thread::ticket_service;
use super::watch::Watcher;
use crate::domain::Result;
use crate::domain::consultation::{self, NewConsultation};
use crate::domain::error::Violations;
use crate::domain::principal::Locale;
use crate::domain::text;
use crate::pb::consultation_service_server::ConsultationService;
use crate::pb::*;
use crate::service::consultations::{ConsultationFilters, Consultations, ListQuery};
use crate::service::tickets::Page;
use crate::service::tickets::Paging;

#[derive(Clone)]
pub struct ConsultationApi {
    consultations: Consultations,
    watcher: Watcher,
    /// Reports show dates, and read date ranges, in this time zone.
    time_zone: Tz,
}

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

    /// Returns what builds ListConsultations' response.
    fn list_reply(
        &self,
        _: &ListConsultationsRequest,
        locale: Locale,
    ) -> Result<impl FnOnce(Page<consultation::Consultation>, String) -> ListConsultationsResponse>
    {
        Ok(
            move |page: Page<consultation::Consultation>, next_page_token| {
                ListConsultationsResponse {
                    consultations: page
                        .tickets
                        .iter()
                        .map(|m| convert::consultation(m, locale))
                        .collect(),
                    next_page_token,
                    total_size: page.total_size,
                    status_counts: Some(convert::status_counts(&page.counts)),
                    counts_approximate: page.approximate,
                }
            },
        )
    }
}

ticket_service! {
    impl ConsultationService for ConsultationApi {
        tickets: consultations,
        message: Consultation,
        create: create_consultation(CreateConsultationRequest),
        get: get_consultation(GetConsultationRequest, get_consultation_request),
        list: list_consultations(ListConsultationsRequest) -> ListConsultationsResponse, unpaged: [],
        assign: assign_consultation(AssignConsultationRequest),
        export: ExportConsultationsRequest,
    }

    async fn classify_consultation(
        &self,
        request: Request<ClassifyConsultationRequest>,
    ) -> Result<Response<ClassifyConsultationResponse>, Status> {
        let (_, locale, r) = caller(request)?;
        let code = text::required("category", &r.category, MAX_CODE)?;
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

    async fn change_consultation_status(
        &self,
        request: Request<ChangeConsultationStatusRequest>,
    ) -> Result<Response<Consultation>, Status> {
        let c = validate::change(request, true, |r, v| {
            let to = v.check(convert::parse_consultation_status("status", r.status))?;
            let comment = v.text("comment", &r.comment, MAX_TEXT);
            Ok(to.map(|to| (to, comment)))
        })?;
        let ((to, comment), consultations) = (c.to, &self.consultations);
        let model = consultations
            .change_status(&c.who, &c.id, to, c.expected, comment)
            .await?;
        Ok(self.reply(&model, c.locale))
    }

    async fn reclassify_consultation(
        &self,
        request: Request<ReclassifyConsultationRequest>,
    ) -> Result<Response<Consultation>, Status> {
        let c = validate::change(request, true, |r, v| {
            v.check(convert::parse_complexity("complexity", r.complexity))
        })?;
        let consultations = &self.consultations;
        let model = consultations.reclassify(&c.who, &c.id, c.to, c.expected).await?;
        Ok(self.reply(&model, c.locale))
    }

    async fn list_categories(
        &self,
        _: Request<ListCategoriesRequest>,
    ) -> Result<Response<ListCategoriesResponse>, Status> {
        let with_targets = self.consultations.categories();
        let categories = with_targets
            .map(|(c, due)| Category {
                target_minutes: due.map_or(0, minutes),
                ..convert::category(c)
            })
            .collect();
        Ok(Response::new(ListCategoriesResponse { categories }))
    }
}

fn parse_list(r: &ListConsultationsRequest) -> Result<(ListQuery, Paging<String>)> {
    validate::list(r, &list_fingerprint(r), |v| {
        let filters = ConsultationFilters {
            statuses: enum_list(
                v,
                "statuses",
                &r.statuses,
                convert::parse_consultation_status,
            )?,
            complexities: enum_list(
                v,
                "complexities",
                &r.complexities,
                convert::parse_complexity,
            )?,
        };
        Ok((filters, true))
    })
}

fn parse_create(r: CreateConsultationRequest) -> Result<NewConsultation> {
    let CreateConsultationRequest {
        category,
        description,
        order_reference,
        idempotency_key,
        contact_email,
    } = r;
    let mut v = Violations::default();
    let category = v.check(text::required("category", &category, MAX_CODE))?;
    let description = v.check(text::required("description", &description, MAX_TEXT))?;
    let order_reference = v.text("order_reference", &order_reference, MAX_CODE);
    let idempotency_key = v.text("idempotency_key", &idempotency_key, MAX_ID);
    let contact_email = v
        .check(validate::optional_email("contact_email", &contact_email))?
        .flatten();
    v.finish("category", || {
        Some(NewConsultation {
            category: category?,
            description: description?,
            order_reference,
            idempotency_key,
            contact_email,
        })
    })
}

fn minutes(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs() / 60).unwrap_or(i32::MAX)
}
