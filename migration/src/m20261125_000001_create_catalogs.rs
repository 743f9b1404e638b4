//! Carriers and categories, seeded with realistic Mexican defaults.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Carriers {
    Table,
    Code,
    Name,
    ClaimWindowDays,
    Position,
}

#[derive(DeriveIden)]
enum Categories {
    Table,
    Code,
    Name,
    TicketType,
    IncidentKind,
    Complexity,
    ResolutionTargetDays,
    Position,
}

/// (code, display name, claim window in days after shipping).
const CARRIERS: &[(&str, &str, i32)] = &[
    ("estafeta", "Estafeta", 30),
    ("dhl", "DHL Express", 30),
    ("fedex", "FedEx", 21),
    ("redpack", "Redpack", 15),
    ("paquetexpress", "Paquetexpress", 30),
    ("99minutos", "99minutos", 7),
    ("ups", "UPS", 30),
    ("jtexpress", "J&T Express", 15),
    ("sendex", "Sendex", 15),
    ("ampm", "AMPM", 15),
];

/// (code, display name, kind, resolution target in days).
const INCIDENT_CATEGORIES: &[(&str, &str, &str, i32)] = &[
    ("damaged", "Paquete dañado", "SHIPMENT", 21),
    ("lost", "Paquete extraviado", "SHIPMENT", 21),
    ("delayed", "Entrega retrasada", "SHIPMENT", 10),
    (
        "delivered_not_received",
        "Entregado no recibido",
        "SHIPMENT",
        21,
    ),
    (
        "returned_to_sender",
        "Devuelto al remitente",
        "SHIPMENT",
        15,
    ),
    (
        "address_correction",
        "Corrección de dirección",
        "SHIPMENT",
        5,
    ),
    ("failed_pickup", "Recolección fallida", "SHIPMENT", 5),
    ("incomplete_content", "Contenido incompleto", "SHIPMENT", 21),
    ("overweight", "Sobrepeso", "ADDITIONAL_CHARGE", 21),
    ("extended_zone", "Zona extendida", "ADDITIONAL_CHARGE", 21),
    (
        "dimensional_weight",
        "Peso volumétrico",
        "ADDITIONAL_CHARGE",
        21,
    ),
    (
        "redelivery",
        "Reexpedición / segundo intento de entrega",
        "ADDITIONAL_CHARGE",
        21,
    ),
    (
        "address_change_fee",
        "Cargo por cambio de domicilio",
        "ADDITIONAL_CHARGE",
        21,
    ),
];

/// (code, display name, complexity) — the examples of DESIGN §3.
const CONSULTATION_CATEGORIES: &[(&str, &str, &str)] = &[
    (
        "remove_orders_from_route",
        "Quitar pedidos de la ruta",
        "SIMPLE",
    ),
    (
        "cancel_or_pause_orders",
        "Cancelar o pausar pedidos",
        "SIMPLE",
    ),
    ("order_status", "Consultar el estado de un pedido", "SIMPLE"),
    (
        "delivery_not_acknowledged",
        "El cliente no reconoce la entrega",
        "COLLABORATIVE",
    ),
    (
        "badly_assembled_on_route",
        "Pedido mal armado en ruta",
        "COLLABORATIVE",
    ),
    (
        "unreported_time_limit",
        "Pedido con horario límite no informado",
        "COLLABORATIVE",
    ),
    (
        "check_address_or_contact",
        "Verificar dirección o teléfono de un pedido en ruta",
        "COLLABORATIVE",
    ),
    (
        "earnings_difference",
        "Diferencias en el detalle de ganancias quincenales",
        "TECHNOLOGY",
    ),
    (
        "category_or_service_level",
        "Corrección de categoría o nivel de servicio",
        "TECHNOLOGY",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Carriers::Table)
                    .col(
                        ColumnDef::new(Carriers::Code)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Carriers::Name).string_len(128).not_null())
                    .col(
                        ColumnDef::new(Carriers::ClaimWindowDays)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Carriers::Position).integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Categories::Table)
                    .col(
                        ColumnDef::new(Categories::Code)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Categories::Name).string_len(128).not_null())
                    .col(
                        ColumnDef::new(Categories::TicketType)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Categories::IncidentKind)
                            .string_len(32)
                            .null(),
                    )
                    .col(ColumnDef::new(Categories::Complexity).string_len(16).null())
                    .col(
                        ColumnDef::new(Categories::ResolutionTargetDays)
                            .integer()
                            .null(),
                    )
                    .col(ColumnDef::new(Categories::Position).integer().not_null())
                    .to_owned(),
            )
            .await?;

        let mut carriers = Query::insert()
            .into_table(Carriers::Table)
            .columns([
                Carriers::Code,
                Carriers::Name,
                Carriers::ClaimWindowDays,
                Carriers::Position,
            ])
            .to_owned();
        for (position, (code, name, days)) in CARRIERS.iter().enumerate() {
            carriers.values_panic([
                (*code).into(),
                (*name).into(),
                (*days).into(),
                (position as i32).into(),
            ]);
        }
        manager.exec_stmt(carriers).await?;

        let mut categories = Query::insert()
            .into_table(Categories::Table)
            .columns([
                Categories::Code,
                Categories::Name,
                Categories::TicketType,
                Categories::IncidentKind,
                Categories::Complexity,
                Categories::ResolutionTargetDays,
                Categories::Position,
            ])
            .to_owned();
        let mut position = 0i32;
        for (code, name, kind, days) in INCIDENT_CATEGORIES {
            categories.values_panic([
                (*code).into(),
                (*name).into(),
                "INCIDENT".into(),
                Some(*kind).into(),
                Option::<&str>::None.into(),
                Some(*days).into(),
                position.into(),
            ]);
            position += 1;
        }
        for (code, name, complexity) in CONSULTATION_CATEGORIES {
            categories.values_panic([
                (*code).into(),
                (*name).into(),
                "CONSULTATION".into(),
                Option::<&str>::None.into(),
                Some(*complexity).into(),
                Option::<i32>::None.into(),
                position.into(),
            ]);
            position += 1;
        }
        manager.exec_stmt(categories).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Categories::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Carriers::Table).to_owned())
            .await
    }
}
