//! Comment threads.
use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::db_error;
use super::entity::comment;
use crate::domain::Error;

pub async fn insert(conn: &impl ConnectionTrait, model: &comment::Model) -> Result<(), Error> {
    let active = comment::ActiveModel {
        id: Set(model.id.clone()),
        ticket_id: Set(model.ticket_id.clone()),
        ticket_type: Set(model.ticket_type.clone()),
        author_id: Set(model.author_id.clone()),
        author_name: Set(model.author_name.clone()),
        author_role: Set(model.author_role.clone()),
        body: Set(model.body.clone()),
        internal: Set(model.internal),
        created_at: Set(model.created_at),
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
) -> Result<Vec<comment::Model>, Error> {
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
    query
        .order_by_asc(comment::Column::CreatedAt)
        .order_by_asc(comment::Column::Id)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}
