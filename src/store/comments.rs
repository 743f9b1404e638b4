//! Comment threads.
use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::db_error;
use super::entity::comment;
use crate::domain::Error;
use crate::domain::event::{Actor, Comment, TicketType};

pub async fn insert(conn: &impl ConnectionTrait, c: &Comment) -> Result<(), Error> {
    let active = comment::ActiveModel {
        id: Set(c.id.clone()),
        ticket_id: Set(c.ticket_id.clone()),
        ticket_type: Set(c.ticket_type.as_str().to_owned()),
        author_id: Set(c.author.id.clone()),
        author_name: Set(c.author.name.clone()),
        author_role: Set(c.author.role.clone()),
        body: Set(c.body.clone()),
        internal: Set(c.internal),
        created_at: Set(c.created_at),
    };
    comment::Entity::insert(active)
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// A ticket's comments oldest first, after the (created_at, id) cursor.
pub async fn list(
    conn: &impl ConnectionTrait,
    ticket_id: &str,
    include_internal: bool,
    after: Option<(i64, String)>,
    limit: u64,
) -> Result<Vec<Comment>, Error> {
    let mut query = comment::Entity::find().filter(comment::Column::TicketId.eq(ticket_id));
    if !include_internal {
        query = query.filter(comment::Column::Internal.eq(false));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            Condition::any().add(comment::Column::CreatedAt.gt(at)).add(
                comment::Column::CreatedAt
                    .eq(at)
                    .and(comment::Column::Id.gt(id)),
            ),
        );
    }
    let query = query
        .order_by_asc(comment::Column::CreatedAt)
        .order_by_asc(comment::Column::Id)
        .limit(limit);
    super::decoded(conn, query, decode).await
}

/// A stored comment as the domain's: the one place comment rows are read.
fn decode(m: comment::Model) -> Result<Comment, Error> {
    let ticket_type = TicketType::parse(&m.ticket_type).ok_or_else(|| {
        Error::Internal(anyhow::anyhow!(
            "comment {} has an unknown ticket type {:?}",
            m.id,
            m.ticket_type
        ))
    })?;
    Ok(Comment {
        id: m.id,
        ticket_id: m.ticket_id,
        ticket_type,
        author: Actor {
            id: m.author_id,
            name: m.author_name,
            role: m.author_role,
        },
        body: m.body,
        internal: m.internal,
        created_at: m.created_at,
    })
}
