//! SLA state: incidents' estimated resolution (paused while waiting for data)
//! and, for both ticket types, when the due time was passed.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Incidents {
    Table,
    EstimatedResolutionAt,
    PausedSince,
    BreachedAt,
}

#[derive(DeriveIden)]
enum Consultations {
    Table,
    BreachedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            Incidents::EstimatedResolutionAt,
            Incidents::PausedSince,
            Incidents::BreachedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Incidents::Table)
                        .add_column(ColumnDef::new(column).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Consultations::Table)
                    .add_column(
                        ColumnDef::new(Consultations::BreachedAt)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Consultations::Table)
                    .drop_column(Consultations::BreachedAt)
                    .to_owned(),
            )
            .await?;
        for column in [
            Incidents::EstimatedResolutionAt,
            Incidents::PausedSince,
            Incidents::BreachedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Incidents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
