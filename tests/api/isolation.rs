//! A requester never reaches another account's incident, by any RPC.
use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn every_incident_rpc_answers_not_found_for_another_accounts_ticket() {
    let app = TestApp::spawn().await;
    let (a, b) = (requester("acme"), requester("globex"));
    let mine = create(&app, &a, "ACME-1").await;
    let theirs = create(&app, &b, "GLOBEX-1").await;
    let id = theirs.id.clone();
    let mut c = app.incidents();

    let results: Vec<(&str, Result<(), tonic::Status>)> = vec![
        (
            "GetIncident by id",
            c.get_incident(req(
                &a,
                GetIncidentRequest {
                    lookup: Some(get_incident_request::Lookup::Id(id.clone())),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "GetIncident by number",
            c.get_incident(req(
                &a,
                GetIncidentRequest {
                    lookup: Some(get_incident_request::Lookup::Number(theirs.number)),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ChangeIncidentStatus",
            c.change_incident_status(req(
                &a,
                ChangeIncidentStatusRequest {
                    id: id.clone(),
                    status: IncidentStatus::Cancelled as i32,
                    expected_version: 1,
                    reason: 0,
                    comment: String::new(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "AssignIncident",
            c.assign_incident(req(
                &a,
                AssignIncidentRequest {
                    id: id.clone(),
                    assignee_id: "x".into(),
                    assignee_name: String::new(),
                    expected_version: 1,
                    assignee_email: String::new(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "CancelIncident",
            c.cancel_incident(req(
                &a,
                CancelIncidentRequest {
                    id: id.clone(),
                    reason: "no".into(),
                    expected_version: 0,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "AddComment",
            c.add_comment(req(
                &a,
                AddCommentRequest {
                    ticket_id: id.clone(),
                    body: "hola".into(),
                    internal: false,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ListComments",
            c.list_comments(req(
                &a,
                ListCommentsRequest {
                    ticket_id: id.clone(),
                    page_size: 0,
                    page_token: String::new(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ListTicketEvents",
            c.list_ticket_events(req(
                &a,
                ListTicketEventsRequest {
                    ticket_id: id.clone(),
                    after_sequence: 0,
                    page_size: 0,
                    page_token: String::new(),
                },
            ))
            .await
            .map(drop),
        ),
    ];
    for (rpc, result) in results {
        match result {
            Err(status) if status.code() == Code::NotFound => {
                assert!(
                    !status.message().contains("globex"),
                    "{rpc} leaks the account"
                );
            }
            other => panic!("{rpc}: expected NOT_FOUND, got {other:?}"),
        }
    }
    // Nothing changed on B's incident.
    assert_eq!(get(&app, &b, &id).await, theirs);
    assert_eq!(events(&app, &agent(), &id).await.len(), 1);

    for query in ["", "GLOBEX", "globex", "dañada", "1", "2"] {
        let listed = c
            .list_incidents(req(
                &a,
                ListIncidentsRequest {
                    query: query.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            listed.incidents.iter().all(|i| i.account == "acme"),
            "query {query:?}"
        );
        assert!(listed.stage_counts.unwrap().all <= 1);
    }
    let all = c
        .list_incidents(req(&a, ListIncidentsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        all.incidents
            .iter()
            .map(|i| i.id.clone())
            .collect::<Vec<_>>(),
        [mine.id]
    );
    let agent_view = c
        .list_incidents(req(&agent(), ListIncidentsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(agent_view.total_size, 2);
}
