//! Carriers and categories. They change only by migration, so they are read
//! once at start and served from memory.
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

use super::db_error;
use super::entity::{carrier, category};
use crate::domain::Error;

#[derive(Debug, Clone)]
pub struct Catalog {
    pub carriers: Vec<carrier::Model>,
    pub categories: Vec<category::Model>,
}

impl Catalog {
    pub async fn load(conn: &impl ConnectionTrait) -> Result<Self, Error> {
        let carriers = carrier::Entity::find()
            .order_by_asc(carrier::Column::Position)
            .all(conn)
            .await
            .map_err(db_error)?;
        let categories = category::Entity::find()
            .order_by_asc(category::Column::Position)
            .all(conn)
            .await
            .map_err(db_error)?;
        Ok(Self {
            carriers,
            categories,
        })
    }

    pub fn carrier(&self, code: &str) -> Option<&carrier::Model> {
        self.carriers.iter().find(|c| c.code == code)
    }

    pub fn category(&self, code: &str) -> Option<&category::Model> {
        self.categories.iter().find(|c| c.code == code)
    }

    /// The display name of a carrier code (the code itself if unknown).
    pub fn carrier_name<'a>(&'a self, code: &'a str) -> &'a str {
        self.carrier(code).map_or(code, |c| c.name.as_str())
    }

    pub fn category_name<'a>(&'a self, code: &'a str) -> &'a str {
        self.category(code).map_or(code, |c| c.name.as_str())
    }
}
