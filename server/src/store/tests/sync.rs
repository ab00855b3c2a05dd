//! The sync round: refusals write nothing, feeds read by their index.

use super::*;

#[test]
fn a_tampered_signature_refuses_the_whole_request_and_leaves_the_store_unchanged() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    reporter
        .replica
        .create_report(&new_report(&case.id, "one", "2024-05-01T10:00:00Z"))
        .unwrap();
    let before = store.dump().unwrap();
    let mut plan = reporter
        .replica
        .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
        .unwrap();
    plan.request.docs[0].changes[0].signature[0] ^= 1;
    let err = store
        .sync(&reporter.record, &plan.request, ServerLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, SyncStoreError::Sync(SyncError::InvalidChange { .. })),
        "{err:?}"
    );
    assert_eq!(store.dump().unwrap(), before);
}

#[test]
fn a_request_refused_after_a_write_rolls_the_write_back() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut coordinator = enroll(&store, "rally", DeviceRole::Coordinator);
    let mut stranger = Replica::open_in_memory().unwrap();
    stranger.init_identity().unwrap();
    coordinator
        .replica
        .create_report(&new_report(&case.id, "good", "2024-05-01T10:00:00Z"))
        .unwrap();
    stranger
        .create_report(&new_report(&case.id, "planted", "2024-05-01T11:00:00Z"))
        .unwrap();
    let mut plan = coordinator
        .replica
        .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
        .unwrap();
    // The coordinator relays a report by a device not enrolled in the
    // case, after its own: its own is saved first, then the request
    // fails, and the saved report must go too.
    let stranger_offer = stranger.prepare_sync(DEFAULT_MAX_REQUEST_BYTES).unwrap();
    plan.request.docs.extend(stranger_offer.request.docs);
    let before = store.dump().unwrap();
    let err = store
        .sync(&coordinator.record, &plan.request, ServerLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, SyncStoreError::Sync(SyncError::UnknownAuthor { .. })),
        "{err:?}"
    );
    assert_eq!(store.dump().unwrap(), before);
    // Without the stranger's report the same request goes through.
    plan.request.docs.truncate(1);
    store
        .sync(&coordinator.record, &plan.request, ServerLimits::default())
        .unwrap();
    assert_ne!(store.dump().unwrap(), before);
}

#[test]
fn a_report_id_taken_in_another_case_is_refused_without_writing() {
    let (_dir, store) = open();
    let first = store.create_case("first").unwrap();
    let second = store.create_case("second").unwrap();
    let mut a = enroll(&store, "first", DeviceRole::Reporter);
    let mut b = enroll(&store, "second", DeviceRole::Reporter);
    let original = new_report(&first.id, "mine", "2024-05-01T10:00:00Z");
    a.replica.create_report(&original).unwrap();
    sync(&store, &mut a);
    let mut copy = new_report(&second.id, "hijack", "2024-05-01T10:00:00Z");
    copy.id = original.id.clone();
    b.replica.create_report(&copy).unwrap();
    let before = store.dump().unwrap();
    let plan = b.replica.prepare_sync(DEFAULT_MAX_REQUEST_BYTES).unwrap();
    // Refused as a second creation of a report, as in its own case: not
    // a storage failure (a 500 that told the device the id is taken
    // elsewhere).
    let round = store
        .sync_verified(
            &b.record,
            verify_request(plan.request).unwrap(),
            ServerLimits::default(),
            None,
        )
        .unwrap();
    assert_eq!(round.changes_stored, 0, "a refused change is not stored");
    let answer = &round.response.docs[0];
    assert_eq!(answer.refused.len(), 1, "{answer:?}");
    assert_eq!(
        answer.refused[0].reason,
        fieldsync_core::protocol::Refusal::BadCreation
    );
    assert!(answer.heads.is_empty() && answer.changes.is_empty());
    assert_eq!(store.dump().unwrap(), before);
    assert_eq!(
        titles(
            &store
                .timeline(&first.id, &TimelineQuery::default())
                .unwrap()
        ),
        ["mine"]
    );
}

#[test]
fn a_device_of_another_case_is_not_a_member_of_this_one() {
    let (_dir, store) = open();
    let first = store.create_case("first").unwrap();
    store.create_case("second").unwrap();
    let mut coordinator = enroll(&store, "first", DeviceRole::Coordinator);
    let mut outsider = enroll(&store, "second", DeviceRole::Coordinator);
    // The outsider writes a report claiming the first case, and the
    // first case's coordinator relays it.
    outsider
        .replica
        .create_report(&new_report(&first.id, "planted", "2024-05-01T10:00:00Z"))
        .unwrap();
    let plan = outsider
        .replica
        .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
        .unwrap();
    let err = store
        .sync(&coordinator.record, &plan.request, ServerLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, SyncStoreError::Sync(SyncError::UnknownAuthor { .. })),
        "{err:?}"
    );
    let got = sync(&store, &mut coordinator);
    assert_eq!(got.received, 0);
}

#[test]
fn each_feed_reads_through_its_index_in_feed_order() {
    let (_dir, store) = open();
    let conn = raw(&store);
    for (sql, index) in [
        (REPORTER_FEED, "changes_creator_feed"),
        (COORDINATOR_FEED, "changes_feed"),
    ] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params!["c", 0, 10, "d"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains(index), "{plan}");
        assert!(
            !plan.contains("TEMP B-TREE"),
            "no sort of the whole range: {plan}"
        );
    }
}

/// A reporter's round is planned; before it is written, a coordinator's
/// round writes the same report. The planned round must not be written as
/// planned (it read the report before the coordinator's change): it is
/// applied again under the write lock, keeps both edits, and sends the
/// reporter the coordinator's change, which the plan did not know of.
#[test]
fn a_round_planned_before_another_wrote_its_report_is_applied_again() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    let mut coordinator = enroll(&store, "rally", DeviceRole::Coordinator);
    let id = reporter
        .replica
        .create_report(&new_report(&case.id, "Detained", "2024-05-01T10:00:00Z"))
        .unwrap();
    sync(&store, &mut reporter);
    sync(&store, &mut coordinator);

    reporter
        .replica
        .edit_report(&id, &[Edit::AppendDescription("Two officers.".into())])
        .unwrap();
    let tagged = coordinator
        .replica
        .edit_report(&id, &[Edit::AddTag("arrest".into())])
        .unwrap()
        .unwrap();
    let request = reporter
        .replica
        .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
        .unwrap()
        .request;
    let planned = store
        .plan_round(
            &reporter.record,
            verify_request(request.clone()).unwrap(),
            None,
        )
        .unwrap();
    sync(&store, &mut coordinator);
    let round = store
        .finish_round(planned, ServerLimits::default())
        .unwrap();
    assert_eq!(round.changes_stored, 1, "the reporter's one edit");
    let response = round.response;

    let answer = &response.docs[0];
    assert!(answer.refused.is_empty(), "{:?}", answer.refused);
    let sent: Vec<ChangeHash> = answer
        .changes
        .iter()
        .map(|c| c.verify().unwrap().hash())
        .collect();
    assert_eq!(
        sent,
        vec![tagged],
        "the coordinator's change reaches the reporter"
    );
    reporter.replica.complete_sync(&request, &response).unwrap();
    let report = reporter.replica.report(&id).unwrap();
    assert_eq!(report.description, "Two officers.");
    assert!(report.tags.contains("arrest"));
    let page = store.timeline(&case.id, &TimelineQuery::default()).unwrap();
    assert_eq!(page.reports[0].tags, vec!["arrest".to_string()]);
    // Both changes are in the feed once each.
    let changes: i64 = raw(&store)
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(changes, 3);
}

/// A round planned before its device was revoked is refused whole when it
/// is written, and writes nothing.
#[test]
fn a_round_planned_before_its_device_was_revoked_is_refused() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    reporter
        .replica
        .create_report(&new_report(&case.id, "Detained", "2024-05-01T10:00:00Z"))
        .unwrap();
    let request = reporter
        .replica
        .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
        .unwrap()
        .request;
    let planned = store
        .plan_round(&reporter.record, verify_request(request).unwrap(), None)
        .unwrap();
    store.revoke(&reporter.record.device_id).unwrap();
    let before = store.dump().unwrap();
    let err = store
        .finish_round(planned, ServerLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, SyncStoreError::Sync(SyncError::Revoked)),
        "{err:?}"
    );
    assert_eq!(store.dump().unwrap(), before);
}

/// What a round counts as stored (`SyncRound::changes_stored`, the
/// operators' changes-stored metric): new changes only; a replay counts
/// nothing (a refused change: `a_report_id_taken_in_another_case_is_refused_without_writing`).
#[test]
fn a_round_counts_the_changes_it_stored_not_those_it_held() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    for title in ["Detained", "Released"] {
        let new = new_report(&case.id, title, "2024-05-01T10:00:00Z");
        reporter.replica.create_report(&new).unwrap();
    }
    let plan = reporter.replica.prepare_sync(DEFAULT_MAX_REQUEST_BYTES);
    let request = plan.unwrap().request;
    let offered: usize = request.docs.iter().map(|d| d.changes.len()).sum();
    assert_eq!(offered, 2);
    let stored = || {
        store
            .sync_verified(
                &reporter.record,
                verify_request(request.clone()).unwrap(),
                ServerLimits::default(),
                None,
            )
            .unwrap()
            .changes_stored
    };
    assert_eq!(stored(), 2);
    assert_eq!(stored(), 0, "a replay stores nothing");
}
