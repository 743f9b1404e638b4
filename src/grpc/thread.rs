//! The RPCs every ticket service shares — assignment, comments, events and
//! watching — written once over the shared workflow of the ticket type.
use tonic::{Request, Response, Status};

use super::convert;
use super::page_token;
use super::validate::{Assignment, MAX_TEXT, assignment, ticket_id};
use super::watch::{WatchStream, Watcher};
use crate::domain::Result;
use crate::domain::error::Violations;
use crate::domain::event::Audience;
use crate::domain::principal::Principal;
use crate::domain::text;
use crate::domain::ticket::Lookup;
use crate::pb;
use crate::service::tickets::{Kind, Workflow};

/// Assign…: validates the request, assigns (agents only).
pub async fn assign<T: Kind>(
    flow: &Workflow<T>,
    who: &Principal,
    id: &str,
    assignee_id: &str,
    assignee_name: &str,
    expected_version: i64,
) -> Result<T> {
    let Assignment {
        id,
        assignee,
        expected_version,
    } = assignment(id, assignee_id, assignee_name, expected_version)?;
    flow.assign(who, &id, assignee, expected_version).await
}

/// AddComment: a ticket id and a body; internal notes are for agents.
pub async fn add_comment<T: Kind>(
    flow: &Workflow<T>,
    request: Request<pb::AddCommentRequest>,
) -> Result<Response<pb::Comment>, Status> {
    let (who, _) = super::caller(&request)?;
    let r = request.into_inner();
    let mut v = Violations::default();
    let id = v.check(ticket_id("ticket_id", &r.ticket_id))?;
    let body = v.check(text::required("body", &r.body, MAX_TEXT))?;
    v.into_result()?;
    let (Some(id), Some(body)) = (id, body) else {
        return Err(super::validate::incomplete("ticket_id").into());
    };
    let comment = flow.add_comment(&who, &id, body, r.internal).await?;
    Ok(Response::new(convert::comment(&comment)))
}

/// ListComments: validates, pages with a token bound to the ticket, converts.
pub async fn list_comments<T: Kind>(
    flow: &Workflow<T>,
    request: Request<pb::ListCommentsRequest>,
) -> Result<Response<pb::ListCommentsResponse>, Status> {
    let (who, _) = super::caller(&request)?;
    let r = request.into_inner();
    let id = ticket_id("ticket_id", &r.ticket_id)?;
    let limit = page_token::page_size(r.page_size, 50, 500)?;
    let fingerprint = page_token::fingerprint(id.as_bytes());
    let after: Option<(i64, String)> = page_token::decode(&r.page_token, &fingerprint)?;
    let (comments, more) = flow.list_comments(&who, &id, after, limit).await?;
    let next_page_token = match comments.last() {
        Some(last) if more => page_token::encode((last.created_at, &last.id), &fingerprint),
        _ => String::new(),
    };
    Ok(Response::new(pb::ListCommentsResponse {
        comments: comments.iter().map(convert::comment).collect(),
        next_page_token,
    }))
}

/// ListTicketEvents: after_sequence or a page token, in sequence order.
pub async fn list_events<T: Kind>(
    flow: &Workflow<T>,
    request: Request<pb::ListTicketEventsRequest>,
) -> Result<Response<pb::ListTicketEventsResponse>, Status> {
    let (who, locale) = super::caller(&request)?;
    let r = request.into_inner();
    let id = ticket_id("ticket_id", &r.ticket_id)?;
    let limit = page_token::page_size(r.page_size, 100, 500)?;
    let fingerprint = page_token::fingerprint(id.as_bytes());
    let after = match page_token::decode::<i64>(&r.page_token, &fingerprint)? {
        Some(sequence) => sequence,
        None => i64::try_from(r.after_sequence)
            .map_err(|_| crate::domain::Error::invalid("after_sequence", "is too large"))?,
    };
    let (events, more) = flow.list_events(&who, &id, after, limit).await?;
    let next_page_token = match events.last() {
        Some(last) if more => page_token::encode(last.sequence, &fingerprint),
        _ => String::new(),
    };
    let events = events.iter().map(|e| convert::event(e, locale)).collect();
    Ok(Response::new(pb::ListTicketEventsResponse {
        events,
        next_page_token,
    }))
}

/// WatchTicket: the ticket's events from `after_sequence` on, as the caller
/// may see them; NOT_FOUND for a ticket it may not see.
pub async fn watch<T: Kind>(
    flow: &Workflow<T>,
    watcher: &Watcher,
    request: Request<pb::WatchTicketRequest>,
) -> Result<Response<WatchStream>, Status> {
    let (who, locale) = super::caller(&request)?;
    let r = request.into_inner();
    let id = ticket_id("ticket_id", &r.ticket_id)?;
    flow.get(&who, &Lookup::Id(id.clone())).await?;
    let audience = Audience::of_ticket(&who, id);
    Ok(Response::new(
        watcher.open(audience, r.after_sequence, locale).await?,
    ))
}

/// Implements a ticket service's tonic trait: the RPCs every ticket type
/// shares, written here once over the service's workflow (`$tickets.flow()`),
/// and the service's own RPCs (`$own`). The API type provides `reply(&self,
/// &ticket, locale)` and its module `parse_create(CreateRequest)` and
/// `parse_list(&ListRequest)`.
macro_rules! ticket_service {
    (
        impl $service:ident for $api:ty {
            tickets: $tickets:ident,
            message: $message:ty,
            create: $create:ident($create_request:ty),
            get: $get:ident($get_request:ty, $lookup:ident),
            assign: $assign:ident($assign_request:ty),
            export: $export_request:ty,
            report: ($columns:expr, $defaults:expr, es = $es:literal, en = $en:literal),
        }
        $($own:tt)*
    ) => {
        #[tonic::async_trait]
        impl $service for $api {
            async fn $create(
                &self,
                request: tonic::Request<$create_request>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                let (who, locale) = $crate::grpc::caller(&request)?;
                let new = parse_create(request.into_inner())?;
                let ticket = self.$tickets.create(&who, new).await?;
                Ok(self.reply(&ticket, locale))
            }

            async fn $get(
                &self,
                request: tonic::Request<$get_request>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                use $crate::pb::$lookup::Lookup;
                use $crate::grpc::validate::lookup;
                let (who, locale) = $crate::grpc::caller(&request)?;
                let lookup = match request.into_inner().lookup {
                    Some(Lookup::Id(id)) => lookup(Some(id), None),
                    Some(Lookup::Number(n)) => lookup(None, Some(n)),
                    None => lookup(None, None),
                }?;
                let ticket = self.$tickets.flow().get(&who, &lookup).await?;
                Ok(self.reply(&ticket, locale))
            }

            async fn $assign(
                &self,
                request: tonic::Request<$assign_request>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                let (who, locale) = $crate::grpc::caller(&request)?;
                let r = request.into_inner();
                let flow = self.$tickets.flow();
                let (id, assignee, name) = (&r.id, &r.assignee_id, &r.assignee_name);
                let ticket = $crate::grpc::thread::assign(
                    flow, &who, id, assignee, name, r.expected_version,
                ).await?;
                Ok(self.reply(&ticket, locale))
            }

            async fn add_comment(
                &self,
                request: tonic::Request<$crate::pb::AddCommentRequest>,
            ) -> Result<tonic::Response<$crate::pb::Comment>, tonic::Status> {
                $crate::grpc::thread::add_comment(self.$tickets.flow(), request).await
            }

            async fn list_comments(
                &self,
                request: tonic::Request<$crate::pb::ListCommentsRequest>,
            ) -> Result<tonic::Response<$crate::pb::ListCommentsResponse>, tonic::Status> {
                $crate::grpc::thread::list_comments(self.$tickets.flow(), request).await
            }

            async fn list_ticket_events(
                &self,
                request: tonic::Request<$crate::pb::ListTicketEventsRequest>,
            ) -> Result<tonic::Response<$crate::pb::ListTicketEventsResponse>, tonic::Status> {
                $crate::grpc::thread::list_events(self.$tickets.flow(), request).await
            }

            type WatchTicketStream = $crate::grpc::watch::WatchStream;

            async fn watch_ticket(
                &self,
                request: tonic::Request<$crate::pb::WatchTicketRequest>,
            ) -> Result<tonic::Response<Self::WatchTicketStream>, tonic::Status> {
                $crate::grpc::thread::watch(self.$tickets.flow(), &self.watcher, request).await
            }

            type ExportReportStream = $crate::grpc::export::ExportStream;

            async fn export_report(
                &self,
                request: tonic::Request<$export_request>,
            ) -> Result<tonic::Response<Self::ExportReportStream>, tonic::Status> {
                use $crate::grpc::export;
                use $crate::service::tickets::Query as _;
                let (who, _) = $crate::grpc::caller(&request)?;
                let r = request.into_inner();
                let (range, locale) =
                    export::parse(&r.from_date, &r.to_date, &r.locale, self.time_zone)?;
                let columns = $crate::report::columns::select($columns, $defaults, &r.columns)?;
                let (mut query, _) = parse_list(&r.filter.unwrap_or_default())?;
                let criteria = query.criteria();
                let (from, to) = range.clamp(criteria.created_from, criteria.created_to);
                (criteria.created_from, criteria.created_to) = (Some(from), Some(to));
                let flow = self.$tickets.flow();
                let (count, chunks) = flow
                    .export(&who, &query, columns, locale, self.time_zone)
                    .await?;
                let stem = match locale {
                    $crate::domain::principal::Locale::Es => $es,
                    $crate::domain::principal::Locale::En => $en,
                };
                Ok(tonic::Response::new(export::stream(range.file_name(stem), count, chunks)))
            }

            $($own)*
        }
    };
}
pub(crate) use ticket_service;
