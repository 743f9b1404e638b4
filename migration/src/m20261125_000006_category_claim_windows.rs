//! An optional per-category claim window that overrides the carrier's.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Categories {
    Table,
    Code,
    ClaimWindowDays,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Categories::Table)
                    .add_column(ColumnDef::new(Categories::ClaimWindowDays).integer().null())
                    .to_owned(),
            )
            .await?;
        // Additional charges are disputed against the carrier's invoice: 15 days.
        for code in [
            "overweight",
            "extended_zone",
            "dimensional_weight",
            "redelivery",
            "address_change_fee",
        ] {
            let update = Query::update()
                .table(Categories::Table)
                .value(Categories::ClaimWindowDays, 15)
                .and_where(Expr::col(Categories::Code).eq(code))
                .to_owned();
            manager.exec_stmt(update).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Categories::Table)
                    .drop_column(Categories::ClaimWindowDays)
                    .to_owned(),
            )
            .await
    }
}
