//! The timeline: order, paging, filters.

use super::*;

#[test]
fn a_reporters_reports_reach_the_coordinator_and_the_timeline_in_time_order() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    let mut coordinator = enroll(&store, "rally", DeviceRole::Coordinator);

    // Local clock order differs from UTC order.
    let mut late = new_report(
        &case.id,
        "Kettled at the square",
        "2024-05-01T07:00:00-03:00",
    ); // 10:00Z
    late.tags = vec!["kettling".into()];
    late.place = Place {
        name: "Freedom Square".into(),
        lat: None,
        lon: None,
    };
    let mut early = new_report(
        &case.id,
        "Arrests at the bus stop",
        "2024-05-01T10:00:00+02:00",
    ); // 08:00Z
    early.tags = vec!["arrest".into()];
    early.description = "Two officers, badge 4471, took a MEDIC away".into();
    let mut middle = new_report(&case.id, "Water cannon", "2024-05-01T09:30:00+00:00"); // 09:30Z
    middle.tags = vec!["arrest".into(), "water-cannon".into()];
    for new in [&late, &early, &middle] {
        reporter.replica.create_report(new).unwrap();
    }
    reporter
        .replica
        .edit_report(&early.id, &[Edit::AddTag("injury".into())])
        .unwrap();

    let sent = sync(&store, &mut reporter);
    assert_eq!((sent.sent, sent.received), (4, 0));
    let got = sync(&store, &mut coordinator);
    assert_eq!((got.received, got.new_reports), (4, 3));
    for id in [&late.id, &early.id, &middle.id] {
        assert_eq!(
            coordinator.replica.report(id).unwrap(),
            reporter.replica.report(id).unwrap()
        );
    }
    let again = sync(&store, &mut coordinator);
    assert_eq!((again.sent, again.received), (0, 0));

    let all = store.timeline(&case.id, &TimelineQuery::default()).unwrap();
    assert_eq!(
        titles(&all),
        [
            "Arrests at the bus stop",
            "Water cannon",
            "Kettled at the square"
        ]
    );
    assert!(all.next.is_none());
    let first = &all.reports[0];
    assert_eq!(first.report_id, early.id.as_str());
    assert_eq!(
        first.occurred_at.as_deref(),
        Some("2024-05-01T10:00:00+02:00")
    );
    assert_eq!(first.tags, ["arrest", "injury"]);
    assert_eq!(first.status, "unverified");
    assert_eq!(first.reporter, reporter.record.device_id.as_str());
    assert_eq!(all.reports[2].place, "Freedom Square");

    let query = |q: TimelineQuery| {
        titles(&store.timeline(&case.id, &q).unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        query(TimelineQuery {
            tag: Some("ARREST".into()),
            ..Default::default()
        }),
        ["Arrests at the bus stop", "Water cannon"]
    );
    assert_eq!(
        query(TimelineQuery {
            text: Some("medic".into()),
            ..Default::default()
        }),
        ["Arrests at the bus stop"]
    );
    assert_eq!(
        query(TimelineQuery {
            text: Some("freedom sq".into()),
            ..Default::default()
        }),
        ["Kettled at the square"]
    );
    assert_eq!(
        query(TimelineQuery {
            from: Some("2024-05-01T11:00:00+02:00".into()), // 09:00Z
            to: Some("2024-05-01T09:30:00Z".into()),
            ..Default::default()
        }),
        ["Water cannon"]
    );
    assert_eq!(
        query(TimelineQuery {
            reporter: Some(coordinator.record.device_id.to_string()),
            ..Default::default()
        }),
        Vec::<String>::new()
    );

    // The coordinator verifies one report; the projection follows.
    coordinator
        .replica
        .edit_report(
            &middle.id,
            &[Edit::SetReview {
                status: ReviewStatus::Verified,
                note: String::new(),
                reviewer: coordinator.record.device_id.to_string(),
                at: t("2024-05-02T12:00:00Z"),
            }],
        )
        .unwrap();
    sync(&store, &mut coordinator);
    assert_eq!(
        query(TimelineQuery {
            status: Some("verified".into()),
            ..Default::default()
        }),
        ["Water cannon"]
    );

    // Pages of two.
    let page1 = store
        .timeline(
            &case.id,
            &TimelineQuery {
                limit: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(titles(&page1), ["Arrests at the bus stop", "Water cannon"]);
    let page2 = store
        .timeline(
            &case.id,
            &TimelineQuery {
                limit: Some(2),
                after: page1.next.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(titles(&page2), ["Kettled at the square"]);
    assert!(page2.next.is_none());

    // Another case sees none of it.
    let other = store.create_case("other").unwrap();
    assert!(store
        .timeline(&other.id, &TimelineQuery::default())
        .unwrap()
        .reports
        .is_empty());
}

#[test]
fn reports_without_a_time_sort_last_and_pages_cross_into_them() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    for (title, at) in [("b", "2024-05-01T10:00:00Z"), ("a", "2024-05-01T09:00:00Z")] {
        reporter
            .replica
            .create_report(&new_report(&case.id, title, at))
            .unwrap();
    }
    sync(&store, &mut reporter);
    // Undated rows, as a report that does not read leaves them.
    {
        let conn = raw(&store);
        let source: String = conn
            .query_row("SELECT report_id FROM timeline LIMIT 1", [], |r| r.get(0))
            .unwrap();
        for (id, title) in [
            ("ffffffffffffffffffffffffffffffff", "undated 2"),
            ("00000000000000000000000000000000", "undated 1"),
        ] {
            conn.execute(
                "INSERT INTO documents (id, case_id, creator, snapshot, heads, last_seq)
                 SELECT ?1, case_id, creator, snapshot, heads, last_seq FROM documents WHERE id = ?2",
                params![id, source],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO timeline (report_id, case_id, occurred_utc, occurred_at, approximate,
                     place, title, search_text, status, tags, reporter, updated_at)
                 VALUES (?1, ?2, NULL, NULL, 0, '', ?3, '', '', '[]', '', '')",
                params![id, case.id.as_str(), title],
            )
            .unwrap();
        }
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .timeline(
                &case.id,
                &TimelineQuery {
                    limit: Some(1),
                    after: after.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        seen.extend(page.reports.iter().map(|r| r.title.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(seen.len() <= 4, "{seen:?}");
    }
    assert_eq!(seen, ["a", "b", "undated 1", "undated 2"]);
    let ranged = store
        .timeline(
            &case.id,
            &TimelineQuery {
                from: Some("2000-01-01T00:00:00Z".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(titles(&ranged), ["a", "b"]);
}

#[test]
fn a_bad_timeline_query_says_which_parameter_is_wrong() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let cases = [
        (
            TimelineQuery {
                from: Some("yesterday".into()),
                ..Default::default()
            },
            "`from`",
        ),
        (
            TimelineQuery {
                status: Some("maybe".into()),
                ..Default::default()
            },
            "`status`",
        ),
        (
            TimelineQuery {
                reporter: Some("bob".into()),
                ..Default::default()
            },
            "`reporter`",
        ),
        (
            TimelineQuery {
                after: Some("garbage!".into()),
                ..Default::default()
            },
            "`after`",
        ),
    ];
    for (query, field) in cases {
        let err = store.timeline(&case.id, &query).unwrap_err();
        assert!(matches!(err, StoreError::BadQuery(_)), "{err:?}");
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn a_tag_filter_reads_the_tag_index_not_every_row() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let conn = raw(&store);
    let mut sql = format!(
        "EXPLAIN QUERY PLAN {TIMELINE_SELECT} FROM timeline_tags k CROSS JOIN timeline t ON t.report_id = k.report_id WHERE k.case_id = ? AND k.occurred_utc IS NOT NULL"
    );
    let mut args = vec![Value::from(case.id.as_str().to_owned())];
    let filter = TimelineFilter::parse(&TimelineQuery {
        tag: Some("arrest".into()),
        status: Some("verified".into()),
        ..TimelineQuery::default()
    })
    .unwrap();
    filter.push(&mut sql, &mut args, "k");
    sql.push_str(" ORDER BY k.occurred_utc, k.report_id LIMIT 101");
    let mut stmt = conn.prepare(&sql).unwrap();
    let plan: Vec<String> = stmt
        .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("INDEX timeline_tags_order (case_id=? AND tag=?"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
}
