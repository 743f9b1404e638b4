//! WebhookService: webhook endpoints and outbox deliveries. Validate, call
//! the use case (`service::notify`), convert back.
use tonic::{Request, Response, Status};

use super::caller;
use super::convert::{self, opt_timestamp, timestamp};
use super::page_token;
use crate::domain::notify::{
    Delivery as StoredDelivery, DeliveryFilter, DeliveryState, Endpoint, WebhookSpec,
};
use crate::domain::{Error, FieldViolation, Result};
use crate::pb;
use crate::pb::webhook_service_server::WebhookService;
use crate::pb::*;
use crate::service::notify::Notifications;

/// Longest account name (as the token claim).
const MAX_ACCOUNT: usize = 128;

#[derive(Clone)]
pub struct WebhookApi {
    notifications: Notifications,
}

impl WebhookApi {
    pub fn new(notifications: Notifications) -> Self {
        Self { notifications }
    }

    /// PauseWebhookEndpoint and ResumeWebhookEndpoint: the endpoint's id.
    async fn set_paused(
        &self,
        request: Request<String>,
        paused: bool,
    ) -> Result<Response<WebhookEndpoint>, Status> {
        let (who, _, id) = caller(request)?;
        let id = uuid_field("id", &id)?;
        let changed = self.notifications.set_paused(&who, &id, paused).await?;
        Ok(Response::new(endpoint(&changed, false)))
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn create_webhook_endpoint(
        &self,
        request: Request<CreateWebhookEndpointRequest>,
    ) -> Result<Response<WebhookEndpoint>, Status> {
        let (who, _, r) = caller(request)?;
        let CreateWebhookEndpointRequest {
            account,
            url,
            secret,
            event_types,
        } = r;
        let spec = WebhookSpec::parse(account, url, secret, event_types)?;
        let created = self.notifications.create_endpoint(&who, spec).await?;
        Ok(Response::new(endpoint(&created, true)))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<ListWebhookEndpointsRequest>,
    ) -> Result<Response<ListWebhookEndpointsResponse>, Status> {
        let (who, _, r) = caller(request)?;
        let ListWebhookEndpointsRequest { account } = r;
        let account = optional_account(&account)?;
        let list = self
            .notifications
            .list_endpoints(&who, account.as_deref())
            .await?;
        Ok(Response::new(ListWebhookEndpointsResponse {
            endpoints: list.iter().map(|e| endpoint(e, false)).collect(),
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<DeleteWebhookEndpointRequest>,
    ) -> Result<Response<DeleteWebhookEndpointResponse>, Status> {
        let (who, _, r) = caller(request)?;
        let id = uuid_field("id", &r.id)?;
        self.notifications.delete_endpoint(&who, &id).await?;
        Ok(Response::new(DeleteWebhookEndpointResponse {}))
    }

    async fn pause_webhook_endpoint(
        &self,
        request: Request<PauseWebhookEndpointRequest>,
    ) -> Result<Response<WebhookEndpoint>, Status> {
        self.set_paused(request.map(|r| r.id), true).await
    }

    async fn resume_webhook_endpoint(
        &self,
        request: Request<ResumeWebhookEndpointRequest>,
    ) -> Result<Response<WebhookEndpoint>, Status> {
        self.set_paused(request.map(|r| r.id), false).await
    }

    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Result<Response<ListDeliveriesResponse>, Status> {
        let (who, _, r) = caller(request)?;
        let ListDeliveriesRequest {
            account,
            states,
            endpoint_id,
            ticket_id,
            page_size,
            page_token,
        } = r;
        let mut bad = vec![];
        let account = keep(&mut bad, optional_account(&account));
        let states = keep(&mut bad, delivery_states(&states));
        let endpoint_id = keep(&mut bad, optional_uuid("endpoint_id", &endpoint_id));
        let ticket_id = keep(&mut bad, optional_uuid("ticket_id", &ticket_id));
        let page_size = keep(&mut bad, page_token::page_size(page_size, 50, 500));
        let (Some(account), Some(states), Some(endpoint_id), Some(ticket_id), Some(page_size)) =
            (account, states, endpoint_id, ticket_id, page_size)
        else {
            return Err(Error::InvalidArgument(bad).into());
        };
        let filter = DeliveryFilter {
            account,
            states,
            endpoint_id,
            ticket_id,
        };
        let fingerprint = page_token::fingerprint(format!("{filter:?}").as_bytes());
        let after: Option<String> = page_token::decode(&page_token, &fingerprint)?;
        let page = self
            .notifications
            .list_deliveries(&who, filter, after, page_size)
            .await?;
        Ok(Response::new(ListDeliveriesResponse {
            deliveries: page.deliveries.iter().map(delivery).collect(),
            next_page_token: page
                .next
                .map(|last| page_token::encode(last, &fingerprint))
                .unwrap_or_default(),
        }))
    }

    async fn retry_delivery(
        &self,
        request: Request<RetryDeliveryRequest>,
    ) -> Result<Response<Delivery>, Status> {
        let (who, _, r) = caller(request)?;
        let id = uuid_field("id", &r.id)?;
        let retried = self.notifications.retry(&who, &id).await?;
        Ok(Response::new(delivery(&retried)))
    }
}

/// The value of a field check, its violations collected into `bad`.
fn keep<T>(bad: &mut Vec<FieldViolation>, checked: Result<T>) -> Option<T> {
    match checked {
        Ok(value) => Some(value),
        Err(Error::InvalidArgument(mut v)) => {
            bad.append(&mut v);
            None
        }
        Err(other) => {
            bad.push(FieldViolation::new("request", other.to_string()));
            None
        }
    }
}

/// An id field: a UUID.
fn uuid_field(field: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > 64 {
        return Err(Error::invalid(field, "must be an id (UUID)"));
    }
    uuid::Uuid::parse_str(value)
        .map(|u| u.to_string())
        .map_err(|_| Error::invalid(field, "must be an id (UUID)"))
}

fn optional_uuid(field: &str, value: &str) -> Result<Option<String>> {
    match value.is_empty() {
        true => Ok(None),
        false => uuid_field(field, value).map(Some),
    }
}

/// An account filter; empty for none.
fn optional_account(value: &str) -> Result<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_ACCOUNT || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "account",
            format!("must be at most {MAX_ACCOUNT} characters, without control characters"),
        ));
    }
    Ok(Some(value.to_owned()))
}

fn delivery_states(values: &[i32]) -> Result<Vec<DeliveryState>> {
    if values.len() > DeliveryState::ALL.len() {
        return Err(Error::invalid(
            "states",
            format!("at most {} values", DeliveryState::ALL.len()),
        ));
    }
    let mut bad = vec![];
    let mut states = vec![];
    for (i, v) in values.iter().enumerate() {
        match pb::DeliveryState::try_from(*v) {
            Ok(pb::DeliveryState::Pending) => states.push(DeliveryState::Pending),
            Ok(pb::DeliveryState::Delivered) => states.push(DeliveryState::Delivered),
            Ok(pb::DeliveryState::Dead) => states.push(DeliveryState::Dead),
            Ok(pb::DeliveryState::Paused) => states.push(DeliveryState::Paused),
            Ok(pb::DeliveryState::Unspecified) | Err(_) => bad.push(FieldViolation::new(
                format!("states[{i}]"),
                format!("{v} is not a delivery state"),
            )),
        }
    }
    match bad.is_empty() {
        true => Ok(states),
        false => Err(Error::InvalidArgument(bad)),
    }
}

fn delivery_state(s: DeliveryState) -> pb::DeliveryState {
    match s {
        DeliveryState::Pending => pb::DeliveryState::Pending,
        DeliveryState::Delivered => pb::DeliveryState::Delivered,
        DeliveryState::Dead => pb::DeliveryState::Dead,
        DeliveryState::Paused => pb::DeliveryState::Paused,
    }
}

/// An endpoint; its secret only when `with_secret` (the create response).
fn endpoint(e: &Endpoint, with_secret: bool) -> WebhookEndpoint {
    let Endpoint {
        id,
        account,
        url,
        secret,
        event_types,
        paused,
        created_by,
        created_at,
        updated_at,
    } = e;
    WebhookEndpoint {
        id: id.clone(),
        account: account.clone(),
        url: url.clone(),
        event_types: event_types.clone(),
        paused: *paused,
        secret: match with_secret {
            true => secret.clone(),
            false => String::new(),
        },
        created_by: created_by.clone(),
        created_at: Some(timestamp(*created_at)),
        updated_at: Some(timestamp(*updated_at)),
    }
}

fn delivery(d: &StoredDelivery) -> Delivery {
    let r = &d.route;
    Delivery {
        id: r.id.clone(),
        channel: r.channel.as_str().to_owned(),
        endpoint_id: r.endpoint_id.clone(),
        target: r.target.clone(),
        ticket_id: r.ticket_id.clone(),
        ticket_type: convert::ticket_type(r.ticket_type) as i32,
        account: r.account.clone(),
        sequence: u64::try_from(r.sequence).unwrap_or_default(),
        event_type: r.event_type.clone(),
        state: delivery_state(d.state) as i32,
        attempts: d.attempts,
        last_error: d.last_error.clone().unwrap_or_default(),
        next_attempt_at: Some(timestamp(d.next_attempt_at)),
        created_at: Some(timestamp(d.created_at)),
        updated_at: Some(timestamp(d.updated_at)),
        delivered_at: opt_timestamp(d.delivered_at),
    }
}
