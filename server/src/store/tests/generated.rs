//! Generated reports are stored as a sync round stores them.

use super::*;

#[test]
fn generated_reports_are_stored_as_a_sync_round_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    let (generated_dir, synced_dir) = (dir.path().join("generated"), dir.path().join("synced"));
    let store = Store::open(&generated_dir).unwrap();
    let case = store.create_case("rally").unwrap();
    let reporter = enroll(&store, "rally", DeviceRole::Reporter);
    let key = reporter.replica.device_key().unwrap().unwrap();
    // The same case and device in a second store. VACUUM INTO, not a
    // copy of the file: rows still in the write-ahead log would be
    // missing from a copy whenever the pool had not checkpointed yet.
    std::fs::create_dir_all(&synced_dir).unwrap();
    store
        .conn()
        .unwrap()
        .execute(
            "VACUUM INTO ?1",
            [synced_dir.join(DB_FILE).to_str().unwrap()],
        )
        .unwrap();
    drop(store);
    let (generated_store, synced_store) = (
        Store::open(&generated_dir).unwrap(),
        Store::open(&synced_dir).unwrap(),
    );

    let now = t("2026-11-23T10:00:00+01:00");
    let news = generated(&case.id, 5);
    let batch: Vec<(&DeviceKey, NewReport)> = news.iter().map(|n| (&key, n.clone())).collect();
    generated_store
        .import_generated_reports(&batch, now)
        .unwrap();
    let request = SyncRequest {
        version: fieldsync_core::protocol::PROTOCOL_VERSION,
        cursor: 0,
        docs: news
            .iter()
            .map(|new| fieldsync_core::protocol::DocOffer {
                id: new.id.clone(),
                base_heads: vec![],
                changes: vec![ReportDocument::creating_change(&key, new, now).unwrap().0],
            })
            .collect(),
    };
    let response = synced_store
        .sync(&reporter.record, &request, ServerLimits::default())
        .unwrap();
    assert!(response.docs.iter().all(|d| d.refused.is_empty()));

    let generated = stored_alike(&generated_store);
    assert_eq!(generated.len(), 15);
    assert_eq!(generated, stored_alike(&synced_store));
}

#[test]
fn generated_reports_sync_review_and_page_like_any_other() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let reporter = enroll(&store, "rally", DeviceRole::Reporter);
    let mut coordinator = enroll(&store, "rally", DeviceRole::Coordinator);
    let key = reporter.replica.device_key().unwrap().unwrap();
    let news = generated(&case.id, 30);
    for part in news.chunks(10) {
        let batch: Vec<(&DeviceKey, NewReport)> = part.iter().map(|n| (&key, n.clone())).collect();
        store
            .import_generated_reports(&batch, t("2026-11-23T10:00:00+01:00"))
            .unwrap();
    }
    let page = store
        .timeline(
            &case.id,
            &TimelineQuery {
                tag: Some("TAG1".into()),
                limit: Some(5),
                ..TimelineQuery::default()
            },
        )
        .unwrap();
    assert_eq!(
        titles(&page),
        [
            "Generated 1",
            "Generated 4",
            "Generated 7",
            "Generated 10",
            "Generated 13"
        ]
    );
    assert_eq!(page.reports[0].reporter, key.device_id().as_str());

    assert_eq!(sync(&store, &mut coordinator).new_reports, 30);
    let id = news[4].id.clone();
    coordinator
        .replica
        .edit_report(
            &id,
            &[Edit::SetReview {
                status: ReviewStatus::Verified,
                note: String::new(),
                reviewer: coordinator.record.device_id.to_string(),
                at: t("2026-11-23T11:00:00+01:00"),
            }],
        )
        .unwrap();
    let summary = sync(&store, &mut coordinator);
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let verified = store
        .timeline(
            &case.id,
            &TimelineQuery {
                status: Some("verified".into()),
                ..TimelineQuery::default()
            },
        )
        .unwrap();
    assert_eq!(titles(&verified), ["Generated 4"]);
}

#[test]
fn a_generated_report_is_refused_whole_batch_and_all_unless_its_author_may_write_it() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let other = store.create_case("other").unwrap();
    let reporter = enroll(&store, "rally", DeviceRole::Reporter);
    let key = reporter.replica.device_key().unwrap().unwrap();
    let stranger = DeviceKey::generate().unwrap();
    let now = t("2026-11-23T10:00:00+01:00");
    let good = generated(&case.id, 2);
    store
        .import_generated_reports(&[(&key, good[0].clone())], now)
        .unwrap();
    let before = store.dump().unwrap();
    let refused = [
        (&key, generated(&other.id, 1).remove(0)),
        (&key, good[0].clone()),
        (&stranger, generated(&case.id, 1).remove(0)),
    ];
    for bad in refused {
        let err = store
            .import_generated_reports(&[(&key, good[1].clone()), bad], now)
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::GeneratedReport { .. } | StoreError::UnknownDevice(_)
            ),
            "{err:?}"
        );
        assert_eq!(store.dump().unwrap(), before);
    }
    store.revoke(&reporter.record.device_id).unwrap();
    let err = store
        .import_generated_reports(&[(&key, good[1].clone())], now)
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}
