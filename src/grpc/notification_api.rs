//! NotificationService: answers UNIMPLEMENTED until the live-events issue lands.
use tonic::{Request, Response, Status};

use crate::pb::notification_service_server::NotificationService;
use crate::pb::{WatchNotificationsRequest, WatchResponse};

#[derive(Debug, Default, Clone)]
pub struct NotificationApi;

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    type WatchNotificationsStream = Stream<WatchResponse>;

    async fn watch_notifications(
        &self,
        _: Request<WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        Err(Status::unimplemented(
            "NotificationService.WatchNotifications is not implemented yet: live event streams are being built",
        ))
    }
}
