//! Where a ticket's e-mails go (issue #15, e-mail channel): the requester's
//! address (the create request's `contact_email`, else the token's `email`
//! claim) and language at filing, and the assignee's address (the
//! assignment's `assignee_email`). All nullable: tickets filed before, and
//! people without an address, get no e-mail.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Incidents {
    Table,
}

#[derive(DeriveIden)]
enum Consultations {
    Table,
}

#[derive(DeriveIden)]
enum Contact {
    RequesterEmail,
    /// "es" or "en": the language of the requester's e-mails.
    NotifyLocale,
    AssigneeEmail,
}

fn tables() -> [DynIden; 2] {
    [
        Incidents::Table.into_iden(),
        Consultations::Table.into_iden(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for table in tables() {
            for column in [
                ColumnDef::new(Contact::RequesterEmail)
                    .text()
                    .null()
                    .to_owned(),
                ColumnDef::new(Contact::NotifyLocale)
                    .string_len(8)
                    .null()
                    .to_owned(),
                ColumnDef::new(Contact::AssigneeEmail)
                    .text()
                    .null()
                    .to_owned(),
            ] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table.clone())
                            .add_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            for column in [
                Contact::RequesterEmail.into_iden(),
                Contact::NotifyLocale.into_iden(),
                Contact::AssigneeEmail.into_iden(),
            ] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table.clone())
                            .drop_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
