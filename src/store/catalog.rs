//! Reads the catalogs (carriers, categories) into their domain form, once at start.
use anyhow::anyhow;
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

use super::db_error;
use super::entity::{carrier, category};
use crate::domain::Error;
use crate::domain::catalog::{Carrier, Catalog, Category};
use crate::domain::consultation::Complexity;
use crate::domain::event::TicketType;
use crate::domain::incident::IncidentKind;

pub async fn load(conn: &impl ConnectionTrait) -> Result<Catalog, Error> {
    let carriers = in_order::<carrier::Entity>(conn, carrier::Column::Position)
        .await?
        .into_iter()
        .map(|m| Carrier {
            code: m.code,
            name: m.name,
            claim_window_days: m.claim_window_days,
        })
        .collect();
    let categories = in_order::<category::Entity>(conn, category::Column::Position)
        .await?
        .into_iter()
        .map(decode_category)
        .collect::<Result<_, _>>()?;
    Ok(Catalog {
        carriers,
        categories,
    })
}

/// Every row of a catalog table, in its `position` order.
async fn in_order<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    position: E::Column,
) -> Result<Vec<E::Model>, Error> {
    E::find()
        .order_by_asc(position)
        .all(conn)
        .await
        .map_err(db_error)
}

/// A category row as the domain's; a value the code does not know is a
/// corrupt catalog, refused at start.
fn decode_category(m: category::Model) -> Result<Category, Error> {
    let bad = |what: &str, value: &str| {
        Error::Internal(anyhow!(
            "category {} has an unknown {what} {value:?}",
            m.code
        ))
    };
    let ticket_type =
        TicketType::parse(&m.ticket_type).ok_or_else(|| bad("ticket type", &m.ticket_type))?;
    let incident_kind = match m.incident_kind.as_deref() {
        None => None,
        Some(k) => Some(IncidentKind::parse(k).ok_or_else(|| bad("incident kind", k))?),
    };
    let complexity = match m.complexity.as_deref() {
        None => None,
        Some(c) => Some(Complexity::parse(c).ok_or_else(|| bad("complexity", c))?),
    };
    Ok(Category {
        code: m.code,
        name: m.name,
        ticket_type,
        incident_kind,
        complexity,
        resolution_target_days: m.resolution_target_days,
        claim_window_days: m.claim_window_days,
    })
}
