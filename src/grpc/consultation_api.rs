//! ConsultationService: answers UNIMPLEMENTED until the consultations issue lands.
use tonic::{Request, Response, Status};

use crate::pb::consultation_service_server::ConsultationService;
use crate::pb::*;

#[derive(Debug, Default, Clone)]
pub struct ConsultationApi;

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "ConsultationService.{rpc} is not implemented yet: consultations are being built (see the README's roadmap)"
    ))
}

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl ConsultationService for ConsultationApi {
    async fn classify_consultation(
        &self,
        _: Request<ClassifyConsultationRequest>,
    ) -> Result<Response<ClassifyConsultationResponse>, Status> {
        Err(pending("ClassifyConsultation"))
    }
    async fn create_consultation(
        &self,
        _: Request<CreateConsultationRequest>,
    ) -> Result<Response<Consultation>, Status> {
        Err(pending("CreateConsultation"))
    }
    async fn get_consultation(
        &self,
        _: Request<GetConsultationRequest>,
    ) -> Result<Response<Consultation>, Status> {
        Err(pending("GetConsultation"))
    }
    async fn list_consultations(
        &self,
        _: Request<ListConsultationsRequest>,
    ) -> Result<Response<ListConsultationsResponse>, Status> {
        Err(pending("ListConsultations"))
    }
    async fn change_consultation_status(
        &self,
        _: Request<ChangeConsultationStatusRequest>,
    ) -> Result<Response<Consultation>, Status> {
        Err(pending("ChangeConsultationStatus"))
    }
    async fn reclassify_consultation(
        &self,
        _: Request<ReclassifyConsultationRequest>,
    ) -> Result<Response<Consultation>, Status> {
        Err(pending("ReclassifyConsultation"))
    }
    async fn assign_consultation(
        &self,
        _: Request<AssignConsultationRequest>,
    ) -> Result<Response<Consultation>, Status> {
        Err(pending("AssignConsultation"))
    }
    async fn add_comment(
        &self,
        _: Request<AddCommentRequest>,
    ) -> Result<Response<Comment>, Status> {
        Err(pending("AddComment"))
    }
    async fn list_comments(
        &self,
        _: Request<ListCommentsRequest>,
    ) -> Result<Response<ListCommentsResponse>, Status> {
        Err(pending("ListComments"))
    }
    async fn list_ticket_events(
        &self,
        _: Request<ListTicketEventsRequest>,
    ) -> Result<Response<ListTicketEventsResponse>, Status> {
        Err(pending("ListTicketEvents"))
    }
    type WatchTicketStream = Stream<WatchResponse>;
    async fn watch_ticket(
        &self,
        _: Request<WatchTicketRequest>,
    ) -> Result<Response<Self::WatchTicketStream>, Status> {
        Err(pending("WatchTicket"))
    }
    type ExportReportStream = Stream<ExportReportResponse>;
    async fn export_report(
        &self,
        _: Request<ExportConsultationsRequest>,
    ) -> Result<Response<Self::ExportReportStream>, Status> {
        Err(pending("ExportReport"))
    }
    async fn list_categories(
        &self,
        _: Request<ListCategoriesRequest>,
    ) -> Result<Response<ListCategoriesResponse>, Status> {
        Err(pending("ListCategories"))
    }
}
