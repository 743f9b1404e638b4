//! Outbound notifications (DESIGN §4): webhook endpoints registered per
//! account, and the transactional outbox — one row per (event, endpoint,
//! channel), written in the event's own transaction and worked off by the
//! dispatcher (`service::dispatcher`).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    Account,
    Url,
    Secret,
    /// Comma-separated event types; empty for every type.
    EventTypes,
    Paused,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    /// The delivery id (UUID v7), sent as `Ticketd-Delivery`.
    Id,
    Channel,
    /// The webhook endpoint (channel `webhook`).
    EndpointId,
    /// Where it goes, as it was when written (the endpoint's URL).
    Target,
    TicketId,
    TicketType,
    Account,
    /// The event's global sequence.
    Sequence,
    EventType,
    /// The document sent, JSON.
    Payload,
    /// PENDING, DELIVERED, DEAD or PAUSED.
    State,
    Attempts,
    /// Due at (PENDING); also the lease of a claimed row: a dispatcher that
    /// claims it moves it past the attempt's timeout, so a row whose
    /// dispatcher died becomes due again by itself.
    NextAttemptAt,
    /// Retries stop this long after it (the retry horizon): created_at, or
    /// the instant of a manual retry.
    RetryFrom,
    LastError,
    CreatedAt,
    UpdatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(
                        ColumnDef::new(WebhookEndpoints::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::Account)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Secret).text().not_null())
                    .col(
                        ColumnDef::new(WebhookEndpoints::EventTypes)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::Paused)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::CreatedBy)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_endpoints_by_account")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::Account)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(
                        ColumnDef::new(Outbox::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Outbox::Channel).string_len(16).not_null())
                    .col(ColumnDef::new(Outbox::EndpointId).string_len(36).not_null())
                    .col(ColumnDef::new(Outbox::Target).text().not_null())
                    .col(ColumnDef::new(Outbox::TicketId).string_len(36).not_null())
                    .col(ColumnDef::new(Outbox::TicketType).string_len(32).not_null())
                    .col(ColumnDef::new(Outbox::Account).string_len(128).not_null())
                    .col(ColumnDef::new(Outbox::Sequence).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::EventType).string_len(32).not_null())
                    .col(ColumnDef::new(Outbox::Payload).text().not_null())
                    .col(ColumnDef::new(Outbox::State).string_len(16).not_null())
                    .col(ColumnDef::new(Outbox::Attempts).big_integer().not_null())
                    .col(
                        ColumnDef::new(Outbox::NextAttemptAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Outbox::RetryFrom).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::LastError).text().null())
                    .col(ColumnDef::new(Outbox::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::UpdatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::DeliveredAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        // What the dispatcher claims: due rows by state and time.
        manager
            .create_index(
                Index::create()
                    .name("outbox_due")
                    .table(Outbox::Table)
                    .col(Outbox::State)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // The order check: an earlier row of the same endpoint and ticket.
        manager
            .create_index(
                Index::create()
                    .name("outbox_order")
                    .table(Outbox::Table)
                    .col(Outbox::EndpointId)
                    .col(Outbox::TicketId)
                    .col(Outbox::Sequence)
                    .to_owned(),
            )
            .await?;
        // ListDeliveries of one account.
        manager
            .create_index(
                Index::create()
                    .name("outbox_by_account")
                    .table(Outbox::Table)
                    .col(Outbox::Account)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await
    }
}
