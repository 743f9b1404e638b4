//! Consultation rows: the mapping to `domain::consultation::Consultation`
//! and the list filters of their own.
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Select};

use super::entity::consultation::{self, Column, Entity};
use super::tickets::{Filter, Stored, TicketFilter, header_of, parse_code, row_of};
use crate::domain::Error;
use crate::domain::consultation::{Consultation, ConsultationStatus};
use crate::domain::ticket::Ticket as _;

/// The filters of ListConsultations, already validated.
#[derive(Debug, Clone, Default)]
pub struct ConsultationFilter {
    pub common: Filter,
    /// Empty means any.
    pub complexities: Vec<&'static str>,
}

impl TicketFilter for ConsultationFilter {
    type Table = Entity;

    fn common(&mut self) -> &mut Filter {
        &mut self.common
    }

    fn is_plain(&self) -> bool {
        self.common.is_plain() && self.complexities.is_empty()
    }

    fn apply(&self, query: Select<Entity>) -> Select<Entity> {
        let query = self.common.apply(query);
        if self.complexities.is_empty() {
            return query;
        }
        query.filter(Column::Complexity.is_in(self.complexities.iter().copied()))
    }
}

impl Stored for Consultation {
    type Table = Entity;
    type Filter = ConsultationFilter;

    fn from_row(m: consultation::Model) -> Result<Self, Error> {
        Ok(Consultation {
            status: parse_code("status", &m.id, &m.status)?,
            complexity: parse_code("complexity", &m.id, &m.complexity)?,
            category: m.category_code.clone(),
            title: m.title.clone(),
            description: m.description.clone(),
            order_reference: m.order_reference.clone(),
            due_at: m.due_at,
            solved_at: m.solved_at,
            header: header_of!(m),
        })
    }

    fn to_row(&self) -> consultation::Model {
        row_of!(consultation::Model, &self.header, self.search_text(), self.header.number, {
            category_code: self.category.clone(),
            complexity: self.complexity.as_str().to_owned(),
            status: self.status.as_str().to_owned(),
            title: self.title.clone(),
            description: self.description.clone(),
            order_reference: self.order_reference.clone(),
            due_at: self.due_at,
            solved_at: self.solved_at,
        })
    }

    fn tie(&self) -> String {
        self.header.id.clone()
    }

    fn breach_candidates() -> (Select<Entity>, Column) {
        let candidates = Entity::find()
            .filter(Column::BreachedAt.is_null())
            .filter(Column::Status.ne(ConsultationStatus::Solved.as_str()));
        (candidates, Column::DueAt)
    }
}
