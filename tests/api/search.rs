//! Free-text search over the substring index (#13): the index follows every
//! change to what is searched, databases written before it get it, labels
//! are matched as they are now, and a result too large to count exactly says
//! that its counts are estimates.
use futures::StreamExt;
use sea_orm::ConnectionTrait;
use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::*;

use crate::helpers::*;

async fn assign(app: &TestApp, incident: &Incident, name: &str) -> Incident {
    app.incidents()
        .assign_incident(req(
            &agent(),
            AssignIncidentRequest {
                id: incident.id.clone(),
                assignee_id: name.to_lowercase().replace(' ', "."),
                assignee_name: name.into(),
                expected_version: incident.version,
                assignee_email: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn the_index_follows_every_change_to_what_is_searched() {
    let app = TestApp::spawn().await;
    let agent = agent();
    let norte = create(&app, &requester("norte"), "EST-1").await;
    create(&app, &requester("sur"), "EST-2").await;
    // The requester's id, name and account are searched.
    assert_eq!(incident_numbers(&app, &agent, "store-norte").await, [1]);
    assert_eq!(
        incident_numbers(&app, &agent, "STORE-NORTE NAME").await,
        [1]
    );
    assert_eq!(incident_numbers(&app, &agent, "sur").await, [2]);

    let norte = assign(&app, &norte, "Ramón Pérez").await;
    assert_eq!(incident_numbers(&app, &agent, "ramon perez").await, [1]);
    let norte = assign(&app, &norte, "Lucía Gómez").await;
    assert!(
        incident_numbers(&app, &agent, "ramon").await.is_empty(),
        "old assignee"
    );
    assert_eq!(incident_numbers(&app, &agent, "lucia gomez").await, [1]);

    // Status labels, in both languages, follow the status.
    assert_eq!(incident_numbers(&app, &agent, "nuevo ticket").await, [1, 2]);
    change(&app, &agent, &norte, IncidentStatus::InProgress)
        .await
        .unwrap();
    assert_eq!(incident_numbers(&app, &agent, "en curso").await, [1]);
    assert_eq!(incident_numbers(&app, &agent, "in progress").await, [1]);
    assert_eq!(incident_numbers(&app, &agent, "nuevo ticket").await, [2]);
    // Kind labels.
    assert_eq!(incident_numbers(&app, &agent, "envio").await, [1, 2]);
    assert!(
        incident_numbers(&app, &agent, "cargo adicional")
            .await
            .is_empty()
    );

    // A consultation: the driver and the category's label, also after a
    // reclassification rewrote the row (it gained a number).
    let driver = requester("chofer-zeta");
    let simple = consult(&app, &driver, "order_status").await;
    let found = async |query: &str| {
        search_consultations(&app, &agent, query)
            .await
            .consultations
            .len()
    };
    assert_eq!(found("chofer-zeta").await, 1);
    assert_eq!(found("estado de un pedido").await, 1, "category label");
    let reclassified = app
        .consultations()
        .reclassify_consultation(req(
            &agent,
            ReclassifyConsultationRequest {
                id: simple.id.clone(),
                complexity: Complexity::Technology as i32,
                expected_version: simple.version,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(reclassified.number > 0);
    assert_eq!(found("chofer-zeta").await, 1);
}

#[tokio::test]
async fn short_terms_quotes_and_tenants() {
    let app = TestApp::spawn().await;
    let agent = agent();
    let mut quoted = new_incident("EST-Q1");
    quoted.description = r#"Dice "frágil" y 5% de descuento"#.into();
    app.incidents()
        .create_incident(req(&requester("norte"), quoted))
        .await
        .unwrap();
    create(&app, &requester("sur"), "EST-Q2").await;
    // Double quotes are the index's own syntax: here they are text.
    assert_eq!(incident_numbers(&app, &agent, r#""fragil""#).await, [1]);
    assert_eq!(incident_numbers(&app, &agent, r#"" y"#).await, [1]);
    // Shorter than a trigram: matched row by row, same semantics.
    assert_eq!(incident_numbers(&app, &agent, "5%").await, [1]);
    assert_eq!(incident_numbers(&app, &agent, "q2").await, [2]);
    assert_eq!(
        incident_numbers(&app, &agent, "é").await,
        [1, 2],
        "folded to e"
    );
    // A requester finds only its own account's tickets.
    assert!(
        incident_numbers(&app, &requester("sur"), "fragil")
            .await
            .is_empty()
    );
    assert_eq!(
        incident_numbers(&app, &requester("sur"), "est-q").await,
        [2]
    );
    assert_eq!(incident_numbers(&app, &agent, "est-q").await, [1, 2]);
}

#[tokio::test]
async fn a_database_written_before_the_index_gets_it_at_start() {
    let app = TestApp::spawn().await;
    for (account, tracking) in [("acme", "EST-1"), ("acme", "EST-2"), ("otra", "EST-3")] {
        create(&app, &requester(account), tracking).await;
    }
    consult(&app, &requester("chofer-uno"), "order_status").await;
    // Back to the schema before the index, with the search text of then
    // (which did not hold the requester).
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    use migration::MigratorTrait as _;
    // Down to before the index's migration (undoing the later ones first).
    let all = migration::Migrator::migrations();
    let index = all
        .iter()
        .position(|m| m.name() == "m20261129_000007_search")
        .expect("the index's migration");
    let steps = u32::try_from(all.len() - index).unwrap();
    migration::Migrator::down(&db, Some(steps)).await.unwrap();
    db.execute_unprepared("UPDATE incidents SET search_text = 'old'")
        .await
        .unwrap();
    db.execute_unprepared("UPDATE consultations SET search_text = 'old'")
        .await
        .unwrap();

    let upgraded = app.replica_with(|_| {}).await;
    let mut client = IncidentServiceClient::new(upgraded.channel.clone());
    let found = search_incidents(&mut client, &agent(), "store-acme").await;
    assert_eq!(found.total_size, 2);
    assert!(!found.counts_approximate);
    let everything = search_incidents(&mut client, &agent(), "").await;
    assert_eq!(everything.stage_counts.unwrap().all, 3, "counts rebuilt");
    let acme = search_incidents(&mut client, &requester("acme"), "").await;
    assert_eq!(acme.total_size, 2);
    let consultations = ticketd::pb::consultation_service_client::ConsultationServiceClient::new(
        upgraded.channel.clone(),
    )
    .list_consultations(req(
        &agent(),
        ListConsultationsRequest {
            query: "chofer-uno".into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner();
    assert_eq!(consultations.total_size, 1);
}

#[tokio::test]
async fn labels_are_matched_as_the_catalog_names_them_now() {
    let app = TestApp::spawn().await;
    create(&app, &requester("acme"), "EST-1").await;
    assert_eq!(
        incident_numbers(&app, &agent(), "paquete danado").await,
        [1]
    );
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    db.execute_unprepared("UPDATE categories SET name = 'Mercancía rota' WHERE code = 'damaged'")
        .await
        .unwrap();
    // The catalog is read at start: a replica started now has the new name.
    let renamed = app.replica_with(|_| {}).await;
    let mut client = IncidentServiceClient::new(renamed.channel.clone());
    assert_eq!(
        search_incidents(&mut client, &agent(), "mercancia rota")
            .await
            .total_size,
        1
    );
    assert_eq!(
        search_incidents(&mut client, &agent(), "paquete danado")
            .await
            .total_size,
        0
    );
}

#[tokio::test]
async fn a_result_too_large_to_count_says_its_counts_are_estimates() {
    const COMMON: usize = 10_040;
    const RARE: usize = 12;
    let app = TestApp::spawn().await;
    let stores = [requester("uno"), requester("dos")];
    futures::stream::iter(0..COMMON + RARE)
        .for_each_concurrent(64, |i| {
            let app = &app;
            let store = &stores[i % 2];
            async move {
                let mut r = new_incident(&format!("EST-{i:05}"));
                if i >= COMMON {
                    r.description = "El refrigerador no enfría".into();
                }
                app.incidents()
                    .create_incident(req(store, r))
                    .await
                    .unwrap();
            }
        })
        .await;
    let agent = agent();
    let mut client = app.incidents();

    let rare = search_incidents(&mut client, &agent, "refrigerador").await;
    assert_eq!(
        (rare.total_size, rare.counts_approximate),
        (RARE as i64, false)
    );
    assert_eq!(rare.incidents.len(), RARE);

    let common = search_incidents(&mut client, &agent, "caja llego").await;
    assert!(common.counts_approximate);
    let estimate = common.total_size as f64;
    assert!(
        (0.8..1.2).contains(&(estimate / COMMON as f64)),
        "estimate {estimate} of {COMMON}"
    );
    assert_eq!(common.incidents.len(), 50);
    // Its pages still walk in order, without repeats.
    let second = client
        .list_incidents(req(
            &agent,
            ListIncidentsRequest {
                query: "caja llego".into(),
                page_token: common.next_page_token.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let last_of_first = common.incidents.last().unwrap().number;
    assert!(second.incidents.iter().all(|i| i.number < last_of_first));

    // With no query the counts are exact, from ticket_counts.
    let all = search_incidents(&mut client, &agent, "").await;
    assert!(!all.counts_approximate);
    assert_eq!(all.total_size, (COMMON + RARE) as i64);
    let uno = search_incidents(&mut client, &requester("uno"), "").await;
    assert_eq!(uno.total_size, ((COMMON + RARE) / 2) as i64);
    // A requester's search of its own account.
    let own = search_incidents(&mut client, &requester("uno"), "refrigerador").await;
    assert_eq!(own.total_size, (RARE / 2) as i64);
}

/// The seeder loads with the search index, the counts and the secondary
/// indexes set aside (`store::search::suspend_upkeep`) and builds them once
/// at the end: the result must be what the triggers would have kept, and
/// the triggers must keep them again afterwards.
#[tokio::test]
async fn a_bulk_seeded_database_is_indexed_and_counted_like_one_written_through_the_api() {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    use ticketd::store::entity::{consultation, incident};
    const COUNT: i64 = 3_000;
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let seeded = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ticketd-seed"))
            .args(["--count", &COUNT.to_string(), "--accounts", "20"])
            .args(["--batch", "700", &url])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        seeded.status.success(),
        "ticketd-seed failed: {}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let agent = agent();
    let mut client = app.incidents();

    let all = search_incidents(&mut client, &agent, "").await;
    assert_eq!((all.total_size, all.counts_approximate), (COUNT, false));
    let stages = all.stage_counts.unwrap();
    assert_eq!(stages.new + stages.in_review + stages.resolved, COUNT);
    let consultations = app
        .consultations()
        .list_consultations(req(&agent, ListConsultationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(consultations.total_size, COUNT);

    // An account's counts are exactly its rows.
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let first = all.incidents[0].clone();
    let rows_of_account = || {
        incident::Entity::find()
            .filter(incident::Column::Account.eq(first.account.clone()))
            .count(&db)
    };
    let in_account = rows_of_account().await.unwrap() as i64;
    let store = requester(&first.account);
    assert_eq!(
        search_incidents(&mut client, &store, "").await.total_size,
        in_account
    );
    assert_eq!(
        consultation::Entity::find().count(&db).await.unwrap() as i64,
        COUNT
    );

    // The search index holds the seeded rows.
    let found = search_incidents(&mut client, &agent, &first.tracking_number).await;
    assert!(!found.counts_approximate);
    assert!(
        found.incidents.iter().any(|i| i.id == first.id),
        "{} not found by its tracking number",
        first.number
    );

    // And the triggers are back: a new incident is indexed and counted.
    app.incidents()
        .create_incident(req(&store, new_incident("BULKNEW-0001")))
        .await
        .unwrap();
    assert_eq!(
        search_incidents(&mut client, &agent, "bulknew")
            .await
            .total_size,
        1
    );
    assert_eq!(
        search_incidents(&mut client, &store, "").await.total_size,
        in_account + 1
    );
    assert_eq!(rows_of_account().await.unwrap() as i64, in_account + 1);
}
