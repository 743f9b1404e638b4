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
use crate::service::thread::Thread;
use crate::service::tickets::{Kind, Workflow};

/// Assign…: validates the request, assigns (agents only).
pub async fn assign<T: Kind>(
    flow: &Workflow<T>,
    who: &Principal,
    id: &str,
    assignee_id: &str,
    assignee_name: &str,
    assignee_email: &str,
    expected_version: i64,
) -> Result<T> {
    let Assignment {
        id,
        assignee,
        assignee_email,
        expected_version,
    } = assignment(
        id,
        assignee_id,
        assignee_name,
        assignee_email,
        expected_version,
    )?;
    flow.assign(who, &id, assignee, assignee_email, expected_version)
        .await
}

/// AddComment: a ticket id and a body; internal notes are for agents.
pub async fn add_comment<T: Kind>(
    flow: &Workflow<T>,
    request: Request<pb::AddCommentRequest>,
) -> Result<Response<pb::Comment>, Status> {
    let (who, _, r) = super::caller(request)?;
    let mut v = Violations::default();
    let id = v.check(ticket_id("ticket_id", &r.ticket_id))?;
    let body = v.check(text::required("body", &r.body, MAX_TEXT))?;
    let (id, body) = v.finish("ticket_id", || Some((id?, body?)))?;
    let comment = flow.add_comment(&who, &id, body, r.internal).await?;
    Ok(Response::new(convert::comment(&comment)))
}

/// ListComments: a page of comments, oldest first.
pub async fn list_comments<T: Kind>(
    flow: &Workflow<T>,
    request: Request<pb::ListCommentsRequest>,
) -> Result<Response<pb::ListCommentsResponse>, Status> {
    let (who, _, r) = super::caller(request)?;
    let page = (r.page_size, r.page_token.as_str());
    let (comments, next_page_token) = thread_page(flow, &who, &r.ticket_id, page, 50, None).await?;
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
    let (who, locale, r) = super::caller(request)?;
    let after = i64::try_from(r.after_sequence)
        .map_err(|_| crate::domain::Error::invalid("after_sequence", "is too large"))?;
    let page = (r.page_size, r.page_token.as_str());
    let (events, next_page_token) = thread_page(flow, &who, &r.ticket_id, page, 100, after).await?;
    let events = events.iter().map(|e| convert::event(e, locale)).collect();
    Ok(Response::new(pb::ListTicketEventsResponse {
        events,
        next_page_token,
    }))
}

/// A page of a ticket's thread from `(page_size, page_token)` (`first`
/// where there is no token) and the token of the next page, bound to the
/// ticket; at most 500 items.
async fn thread_page<T: Kind, I: Thread>(
    flow: &Workflow<T>,
    who: &Principal,
    ticket_id: &str,
    (page_size, page_token): (i32, &str),
    default_size: u64,
    first: I::After,
) -> Result<(Vec<I>, String)> {
    let id = super::validate::ticket_id("ticket_id", ticket_id)?;
    let limit = page_token::page_size(page_size, default_size, 500)?;
    let fingerprint = page_token::fingerprint(id.as_bytes());
    let after = page_token::decode(page_token, &fingerprint)?.unwrap_or(first);
    let (items, more) = flow.thread::<I>(who, &id, after, limit).await?;
    let next_page_token = match items.last() {
        Some(last) if more => page_token::encode(last.position(), &fingerprint),
        _ => String::new(),
    };
    Ok((items, next_page_token))
}

/// WatchTicket: the ticket's events from `after_sequence` on, as the caller
/// may see them; NOT_FOUND for a ticket it may not see.
pub async fn watch<T: Kind>(
    flow: &Workflow<T>,
    watcher: &Watcher,
    request: Request<pb::WatchTicketRequest>,
) -> Result<Response<WatchStream>, Status> {
    let (who, locale, r) = super::caller(request)?;
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
/// &ticket, locale)` and `list_reply(&self, &ListRequest, locale)` (which
/// validates how the page is shown and returns what builds the response),
/// and its module `parse_create(CreateRequest)` and `parse_list(&ListRequest)`.
/// `unpaged` names the list request's fields that may change between pages
/// besides the page token and size.
macro_rules! ticket_service {
    (
        impl $service:ident for $api:ty {
            tickets: $tickets:ident,
            message: $message:ty,
            create: $create:ident($create_request:ty),
            get: $get:ident($get_request:ty, $lookup:ident),
            list: $list:ident($list_request:ty) -> $list_response:ty, unpaged: [$($unpaged:ident),*],
            assign: $assign:ident($assign_request:ty),
            export: $export_request:ty,
        }
        $($own:tt)*
    ) => {
        #[tonic::async_trait]
        impl $service for $api {
            async fn $create(
                &self,
                request: tonic::Request<$create_request>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                let (who, locale, r) = $crate::grpc::caller(request)?;
                let new = parse_create(r)?;
                let ticket = self.$tickets.create(&who, new, locale).await?;
                Ok(self.reply(&ticket, locale))
            }

            async fn $get(
                &self,
                request: tonic::Request<$get_request>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                use $crate::pb::$lookup::Lookup;
                use $crate::grpc::validate::lookup;
                let (who, locale, r) = $crate::grpc::caller(request)?;
                let lookup = match r.lookup {
                    Some(Lookup::Id(id)) => lookup(Some(id), None),
                    Some(Lookup::Number(n)) => lookup(None, Some(n)),
                    None => lookup(None, None),
                }?;
                let ticket = self.$tickets.flow().get(&who, &lookup).await?;
                Ok(self.reply(&ticket, locale))
            }

            async fn $list(
                &self,
                request: tonic::Request<$list_request>,
            ) -> Result<tonic::Response<$list_response>, tonic::Status> {
                let (who, locale, r) = $crate::grpc::caller(request)?;
                let reply = self.list_reply(&r, locale)?;
                let (query, paging) = parse_list(&r)?;
                let page = self.$tickets.flow().list(&who, &query, paging).await?;
                let next_page_token = match &page.next {
                    Some(after) => $crate::grpc::page_token::encode(after, &list_fingerprint(&r)),
                    None => String::new(),
                };
                Ok(tonic::Response::new(reply(page, next_page_token)))
            }

            async fn $assign(
                &self,
                request: tonic::Request<$assign_request>,
            ) -> Result<tonic::Response<$message>, tonic::Status> {
                let (who, locale, r) = $crate::grpc::caller(request)?;
                let flow = self.$tickets.flow();
                let (id, assignee, name) = (&r.id, &r.assignee_id, &r.assignee_name);
                let ticket = $crate::grpc::thread::assign(
                    flow, &who, id, assignee, name, &r.assignee_email, r.expected_version,
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
                let (who, _, r) = $crate::grpc::caller(request)?;
                let asked = $crate::grpc::export::Asked {
                    from_date: &r.from_date,
                    to_date: &r.to_date,
                    locale: &r.locale,
                    columns: &r.columns,
                };
                let filter = r.filter.unwrap_or_default();
                let parse_filter = || parse_list(&filter);
                let flow = self.$tickets.flow();
                $crate::grpc::export::report(flow, &who, asked, parse_filter, self.time_zone).await
            }

            $($own)*
        }

        /// The parts of a list request that must stay the same across its pages.
        fn list_fingerprint(r: &$list_request) -> String {
            use prost::Message as _;
            let mut stable = r.clone();
            stable.page_token.clear();
            stable.page_size = 0;
            $(stable.$unpaged = Default::default();)*
            $crate::grpc::page_token::fingerprint(&stable.encode_to_vec())
        }
    };
}
pub(crate) use ticket_service;
