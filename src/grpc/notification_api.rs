//! NotificationService: one stream of every event the caller may see.
use tonic::{Request, Response, Status};

use super::caller;
use super::watch::{WatchStream, Watcher};
use crate::domain::event::Audience;
use crate::pb::WatchNotificationsRequest;
use crate::pb::notification_service_server::NotificationService;

#[derive(Clone)]
pub struct NotificationApi {
    watcher: Watcher,
}

impl NotificationApi {
    pub fn new(watcher: Watcher) -> Self {
        Self { watcher }
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    type WatchNotificationsStream = WatchStream;

    async fn watch_notifications(
        &self,
        request: Request<WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        let (who, locale, r) = caller(request)?;
        let stream = self
            .watcher
            .open(Audience::feed(&who), r.after_sequence, locale)
            .await?;
        Ok(Response::new(stream))
    }
}
