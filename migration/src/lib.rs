//! ticketd's schema, as sea-orm migrations. `Migrator::up` runs at server
//! start and with `ticketd migrate`.
pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_catalogs;
mod m20261125_000002_create_tickets;
mod m20261125_000003_create_consultations;
mod m20261125_000004_missing_data_deadline;
mod m20261125_000005_sla;
mod m20261125_000006_category_claim_windows;
mod m20261129_000007_search;
mod m20261129_000008_outbox;
mod m20261129_000009_contacts;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_catalogs::Migration),
            Box::new(m20261125_000002_create_tickets::Migration),
            Box::new(m20261125_000003_create_consultations::Migration),
            Box::new(m20261125_000004_missing_data_deadline::Migration),
            Box::new(m20261125_000005_sla::Migration),
            Box::new(m20261125_000006_category_claim_windows::Migration),
            Box::new(m20261129_000007_search::Migration),
            Box::new(m20261129_000008_outbox::Migration),
            Box::new(m20261129_000009_contacts::Migration),
        ]
    }
}
