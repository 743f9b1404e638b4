//! NotificationService: one stream of every event the caller may see.
use tonic::{Request, Response, Status};

use super::caller;
use super::watch::{WatchStream, Watcher};
use crate::pb::WatchNotificationsRequest;
use crate::pb::notification_service_server::NotificationService;
use crate::store::events::LogFilter;

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
        let (who, locale) = caller(&request)?;
        let filter = LogFilter {
            ticket_id: None,
            account: who.scope().map(str::to_owned),
            include_internal: who.is_agent(),
            // SIMPLE consultations are recorded for operations only.
            only_numbered: true,
        };
        let stream = self
            .watcher
            .open(filter, request.into_inner().after_sequence, locale)
            .await?;
        Ok(Response::new(stream))
    }
}
