use super::*;
use crate::model::{Edit, ReviewStatus};
use crate::protocol::{Refusal, DEFAULT_MAX_REQUEST_BYTES};
use crate::sync::server::SyncError;

const MIB: usize = DEFAULT_MAX_REQUEST_BYTES;

#[test]
fn a_report_recorded_offline_reaches_the_coordinator() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let new = w.new_report("Arrests at the bus stop");
    let id = w.devices[0].replica.create_report(&new).unwrap();
    w.devices[0]
        .replica
        .edit_report(&id, &[Edit::AddTag("arrest".into())])
        .unwrap();
    let sent = w.sync(0, MIB);
    assert_eq!(sent.sent, 2);
    let got = w.sync(1, MIB);
    assert_eq!((got.received, got.new_reports), (2, 1));
    assert_eq!(
        w.devices[1].replica.report(&id).unwrap(),
        w.devices[0].replica.report(&id).unwrap()
    );
    assert_eq!(w.devices[0].replica.pending_change_count().unwrap(), 0);
    // A second sync has nothing to do.
    let again = w.sync(1, MIB);
    assert_eq!((again.sent, again.received), (0, 0));
}

#[test]
fn a_request_replayed_three_times_equals_one_application() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    for i in 0..3 {
        let id = w.record(0, &format!("report {i}"));
        w.devices[0]
            .replica
            .edit_report(&id, &[Edit::AppendDescription("more".into())])
            .unwrap();
    }
    let plan = w.devices[0].replica.prepare_sync(MIB).unwrap();
    let first = w.serve(0, &plan.request);
    let after_one = (w.server.documents_saved(), w.server.feed_len());
    for _ in 0..3 {
        let again = w.serve(0, &plan.request);
        assert_eq!(
            again.docs.iter().map(|d| &d.heads).collect::<Vec<_>>(),
            first.docs.iter().map(|d| &d.heads).collect::<Vec<_>>()
        );
    }
    assert_eq!((w.server.documents_saved(), w.server.feed_len()), after_one);
    // The device takes a late duplicate response as well as the first.
    w.devices[0]
        .replica
        .complete_sync(&plan.request, &first)
        .unwrap();
    w.devices[0]
        .replica
        .complete_sync(&plan.request, &first)
        .unwrap();
    assert_eq!(w.devices[0].replica.pending_change_count().unwrap(), 0);
}

#[test]
fn five_thousand_pending_changes_sync_in_bounded_rounds_and_survive_interruption() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let mut ids = Vec::new();
    for r in 0..250 {
        let id = w.record(0, &format!("r{r}"));
        for e in 0..19 {
            w.devices[0]
                .replica
                .edit_report(&id, &[Edit::AppendDescription(format!("edit {e}. "))])
                .unwrap();
        }
        ids.push(id);
    }
    assert_eq!(w.devices[0].replica.pending_change_count().unwrap(), 5000);
    let bound = 64 * 1024;
    // Interrupt after every round: each request is answered but only every
    // other response reaches the device (the rest are "lost").
    let mut rounds = 0;
    loop {
        let plan = w.devices[0].replica.prepare_sync(bound).unwrap();
        let size = plan.request.to_json().len();
        assert!(
            size <= bound,
            "request of {size} bytes over the {bound} bound"
        );
        let response = w.serve(0, &plan.request);
        rounds += 1;
        if rounds % 2 == 0 {
            w.devices[0]
                .replica
                .complete_sync(&plan.request, &response)
                .unwrap();
        }
        if plan.complete && rounds % 2 == 0 {
            break;
        }
        assert!(rounds < 400, "no convergence after {rounds} rounds");
    }
    assert!(
        rounds > 5,
        "5,000 changes fit in {rounds} rounds of {bound} bytes?"
    );
    println!(
        "5,000 changes in {rounds} rounds of at most {bound} bytes, every other response lost"
    );
    assert_eq!(w.devices[0].replica.pending_change_count().unwrap(), 0);
    assert_eq!(w.server.feed_len(), 5000);
    w.sync(1, bound);
    for id in &ids {
        assert_eq!(
            w.devices[1].replica.report(id).unwrap(),
            w.devices[0].replica.report(id).unwrap()
        );
    }
}

#[test]
fn a_big_catch_up_comes_in_bounded_responses() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    for r in 0..200 {
        let id = w.record(0, &format!("r{r}"));
        w.devices[0]
            .replica
            .edit_report(&id, &[Edit::AddTag("x".into())])
            .unwrap();
    }
    w.sync(0, MIB);
    w.limits.max_response_bytes = 16 * 1024;
    let summary = w.sync(1, MIB);
    assert!(summary.rounds > 3, "{} rounds", summary.rounds);
    assert_eq!(summary.new_reports, 200);
    assert_eq!(w.devices[1].replica.report_ids().unwrap().len(), 200);
}

#[test]
fn a_reporter_never_receives_another_reporters_reports() {
    let mut w = World::new(&[
        DeviceRole::Reporter,
        DeviceRole::Reporter,
        DeviceRole::Coordinator,
    ]);
    let mine = w.record(0, "mine");
    let theirs = w.record(1, "theirs");
    w.sync(0, MIB);
    w.sync(1, MIB);
    w.sync(2, MIB);
    w.sync(0, MIB);
    assert_eq!(
        w.devices[0].replica.report_ids().unwrap(),
        vec![mine.clone()]
    );
    assert_eq!(
        w.devices[1].replica.report_ids().unwrap(),
        vec![theirs.clone()]
    );
    let mut all = vec![mine, theirs];
    all.sort();
    assert_eq!(w.devices[2].replica.report_ids().unwrap(), all);
}

#[test]
fn a_reporter_setting_review_status_is_refused_and_told_why() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "r");
    w.sync(0, MIB);
    w.devices[0]
        .replica
        .edit_report(
            &id,
            &[Edit::SetReview {
                status: ReviewStatus::Verified,
                note: "trust me".into(),
                reviewer: "me".into(),
                at: t("2020-01-01T00:00:00Z"),
            }],
        )
        .unwrap();
    let summary = w.sync(0, MIB);
    assert_eq!(summary.refused.len(), 1);
    assert_eq!(summary.refused[0].reason, Refusal::ReviewIsForCoordinators);
    assert_eq!(w.devices[0].replica.refused().unwrap().len(), 1);
    // The refused change is not offered again, and later edits are blocked
    // behind it rather than silently lost.
    assert_eq!(w.devices[0].replica.pending_change_count().unwrap(), 0);
    w.sync(1, MIB);
    assert_eq!(
        w.devices[1].replica.report(&id).unwrap().review.status,
        ReviewStatus::Unverified
    );
    // A coordinator may set it, and the reporter receives it.
    w.devices[1]
        .replica
        .edit_report(
            &id,
            &[Edit::SetReview {
                status: ReviewStatus::Verified,
                note: "two witnesses".into(),
                reviewer: "c".into(),
                at: t("2020-01-01T00:00:00Z"),
            }],
        )
        .unwrap();
    w.sync(1, MIB);
    assert_eq!(w.server.documents().len(), 1);
}

#[test]
fn a_reporter_cannot_change_another_reporters_report() {
    let mut w = World::new(&[
        DeviceRole::Reporter,
        DeviceRole::Reporter,
        DeviceRole::Coordinator,
    ]);
    let id = w.record(0, "r");
    w.sync(0, MIB);
    w.sync(2, MIB);
    // Device 1 gets the document by hand (a copied phone, say) and edits it.
    let mut doc = w.devices[2].replica.document(&id).unwrap();
    let key1 = w.devices[1].replica.device_key().unwrap().unwrap();
    let mut report = crate::ReportDocument::from_automerge(doc.fork());
    let change = report
        .edit(
            &key1,
            &[Edit::SetTitle("hijacked".into())],
            t("2020-01-01T00:00:00Z"),
        )
        .unwrap()
        .unwrap();
    let request = SyncRequest {
        version: crate::protocol::PROTOCOL_VERSION,
        cursor: 0,
        docs: vec![crate::protocol::DocOffer {
            id: id.clone(),
            base_heads: vec![],
            changes: vec![change],
        }],
    };
    let response = w.serve(1, &request);
    // Answered as a report the server lacks (the same change offered
    // under an id no report has): the edit's dependencies are
    // missing. The device learns nothing of whether the report exists.
    assert_eq!(
        response.docs[0].refused[0].reason,
        Refusal::MissingDependency
    );
    assert!(
        response.docs[0].changes.is_empty(),
        "nothing of the report leaks"
    );
    let lacked = w.serve(
        1,
        &SyncRequest {
            docs: vec![crate::protocol::DocOffer {
                id: crate::ReportId::random().unwrap(),
                ..request.docs[0].clone()
            }],
            ..request.clone()
        },
    );
    let seen = |r: &crate::protocol::SyncResponse| {
        let d = &r.docs[0];
        let why: Vec<_> = d
            .refused
            .iter()
            .map(|r| (r.reason, r.message.clone()))
            .collect();
        (d.changes.len(), d.heads.clone(), d.complete, why)
    };
    assert_eq!(seen(&response), seen(&lacked));
}

#[test]
fn forged_signatures_and_strangers_are_refused_whole() {
    let mut w = World::new(&[DeviceRole::Reporter]);
    let id = w.record(0, "r");
    let plan = w.devices[0].replica.prepare_sync(MIB).unwrap();
    let member = w.member(0);

    let mut forged = plan.request.clone();
    forged.docs[0].changes[0].signature[0] ^= 1;
    let err = handle_sync(&mut w.server, &member, &forged, w.limits).unwrap_err();
    assert!(matches!(err, SyncError::InvalidChange { .. }), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");

    // A change made by a device the case does not know.
    let mut stranger = Replica::open_in_memory().unwrap();
    stranger.init_identity().unwrap();
    let new = w.new_report("s");
    let sid = stranger.create_report(&new).unwrap();
    let splan = stranger.prepare_sync(MIB).unwrap();
    let err = handle_sync(&mut w.server, &member, &splan.request, w.limits).unwrap_err();
    assert!(matches!(err, SyncError::UnknownAuthor { .. }), "{err}");
    assert!(err.to_string().contains("not enrolled"), "{err}");
    assert!(w.server.documents().is_empty() && w.server.feed_len() == 0);
    let _ = (id, sid);
}

#[test]
fn a_revoked_author_is_refused_for_new_changes_only() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "r");
    w.sync(0, MIB);
    w.devices[0]
        .replica
        .edit_report(&id, &[Edit::SetTitle("after seizure".into())])
        .unwrap();
    let key = w.devices[0].key;
    w.server.members.get_mut(&key).unwrap().revoked = true;
    let plan = w.devices[0].replica.prepare_sync(MIB).unwrap();
    let member = w.member(0);
    let err = handle_sync(&mut w.server, &member, &plan.request, w.limits).unwrap_err();
    assert!(matches!(err, SyncError::Revoked));
    // The coordinator still receives what the device sent before.
    w.sync(1, MIB);
    assert_eq!(w.devices[1].replica.report(&id).unwrap().title, "r");
    // Its still-unsynced edit stays in its replica.
    assert_eq!(
        w.devices[0].replica.report(&id).unwrap().title,
        "after seizure"
    );
}

#[test]
fn print_wire_cost_of_typical_changes() {
    let mut w = World::new(&[DeviceRole::Reporter]);
    let id = w.record(0, "Arrests at the bus stop");
    for e in 0..20 {
        w.devices[0]
            .replica
            .edit_report(
                &id,
                &[Edit::AppendDescription(format!(
                    "Sentence number {e} of the account. "
                ))],
            )
            .unwrap();
    }
    let plan = w.devices[0].replica.prepare_sync(MIB).unwrap();
    let changes = &plan.request.docs[0].changes;
    let raw: usize = changes.iter().map(|c| c.bytes.len()).sum();
    let wire = plan.request.to_json().len();
    println!(
        "{} changes: {} raw change bytes ({} per change), {} JSON bytes ({} per change, x{:.2})",
        changes.len(),
        raw,
        raw / changes.len(),
        wire,
        wire / changes.len(),
        wire as f64 / raw as f64
    );
    assert!(wire < 4 * raw);
}

/// Found by fuzzing (`tests/fuzz`): a second change without dependencies
/// was taken for the report's creation, so it could write the write-once
/// fields (creator, case) and the review a second time.
#[test]
fn a_change_without_dependencies_to_an_existing_report_is_refused() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "Arrests at the bus stop");
    w.sync(0, MIB);
    // The coordinator "creates" the same report again: a change without
    // dependencies that names itself creator.
    let key = w.devices[1].replica.device_key().unwrap().unwrap();
    let mut again = w.new_report("Taken over");
    again.id = id.clone();
    let (_, change) =
        crate::ReportDocument::create(&key, &again, t("2016-05-21T12:00:00+06:00")).unwrap();
    let response = w.serve(
        1,
        &SyncRequest {
            version: crate::protocol::PROTOCOL_VERSION,
            cursor: 0,
            docs: vec![crate::protocol::DocOffer {
                id: id.clone(),
                base_heads: vec![],
                changes: vec![change],
            }],
        },
    );
    let refused = &response.docs[0].refused;
    assert_eq!(refused.len(), 1, "{response:?}");
    assert_eq!(refused[0].reason, Refusal::BadCreation);
    let (_, doc) = w
        .server
        .documents()
        .into_iter()
        .find(|(d, _)| d == &id)
        .unwrap();
    let report = crate::document::read_report(&doc).unwrap();
    assert_eq!(report.created_by, w.devices[0].key.device_id().as_str());
    assert_eq!(report.title, "Arrests at the bus stop");
}

/// Found by fuzzing (`regressions/sync_request/op-on-missing-object.json`,
/// replayed by `tests/scenarios/fuzz_corpus.rs`): a change with an op on an
/// object that does not exist reached an Automerge panic ("Missing from
/// Index"). `check_applicable` refuses it before Automerge sees it.
#[test]
fn a_change_on_an_object_that_does_not_exist_is_refused_before_automerge() {
    use crate::signed_change::{check_applicable, PendingObjects};
    use automerge::transaction::Transactable;
    let mut doc = automerge::AutoCommit::new();
    let place = doc
        .put_object(automerge::ROOT, "place", automerge::ObjType::Map)
        .unwrap();
    let first = doc.get_last_local_change().unwrap().clone();
    doc.put(&place, "name", "Almaty").unwrap();
    let second = doc.get_last_local_change().unwrap().clone();

    let empty = automerge::Automerge::new();
    let err = check_applicable(&empty, &mut PendingObjects::new(), &second).unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
    // Made by an earlier change of the same batch, or held: fine.
    let mut pending = PendingObjects::new();
    check_applicable(&empty, &mut pending, &first).unwrap();
    check_applicable(&empty, &mut pending, &second).unwrap();
    let mut held = automerge::Automerge::new();
    held.apply_changes([first]).unwrap();
    check_applicable(&held, &mut PendingObjects::new(), &second).unwrap();
}
