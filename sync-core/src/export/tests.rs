//! Hand-built exports the format tests share, and tests of collecting an
//! export from a replica.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, FixedOffset};

use super::*;
use crate::envelope::AttachmentMeta;
use crate::model::{
    AttachmentRef, Edit, Person, Place, Report, Review, ReviewStatus, Role, TimelineEntry,
};
use crate::replica::Replica;
use crate::{NewReport, ReportId};

pub(crate) const CASE_ID: &str = "00112233445566778899aabbccddeeff";
pub(crate) const REPORTER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(crate) const COORDINATOR: &str = "cccccccccccccccccccccccccccccccc";

pub(crate) fn t(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap()
}

fn report(id: &str, title: &str, at: Option<&str>) -> Report {
    Report {
        id: id.parse().unwrap(),
        case: CASE_ID.parse().unwrap(),
        created_by: REPORTER.parse().unwrap(),
        created_at: Some(t("2016-05-21T12:00:00+06:00")),
        schema_version: 1,
        occurred_at: at.map(t),
        approximate: false,
        place: Place::default(),
        title: title.into(),
        description: String::new(),
        people: vec![],
        tags: Default::default(),
        timeline: vec![],
        review: Review::default(),
        attachments: vec![],
        unknown_fields: vec![],
    }
}

pub(crate) fn entry(hash_digit: char, verified: bool) -> HistoryEntry {
    HistoryEntry {
        hash: hash_digit.to_string().repeat(64),
        author: REPORTER.into(),
        author_key: "ab".repeat(32),
        via_web_session: false,
        time: Some("2016-05-21T06:00:00.000Z".into()),
        message: None,
        signature: STANDARD.encode([7u8; 64]),
        signature_verified: verified,
        change: STANDARD.encode(b"change bytes"),
    }
}

fn attachment(id: &str) -> AttachmentRef {
    AttachmentRef {
        id: id.into(),
        blob: "b".repeat(64).parse().unwrap(),
        size: 1234,
        header: STANDARD.encode(b"sealed"),
        key_epoch: 1,
    }
}

/// Three reports of case "almaty", in export order:
/// 1. `r1` 2016-05-21 10:40 +06:00, approximate, with coordinates, tags,
///    people, two timeline entries (stored out of order), verified, two
///    attachments (the first one readable), two verified changes.
/// 2. `r2` 2016-05-21 23:30 −03:00 (after r1 in UTC), no coordinates,
///    unverified, one change whose signature failed.
/// 3. `r3` 2016-05-22 09:00 +06:00, negative coordinates, disputed.
pub(crate) fn sample() -> Export {
    let mut r1 = report(
        "11111111111111111111111111111111",
        "Arrest at the bus stop",
        Some("2016-05-21T10:40:00+06:00"),
    );
    r1.approximate = true;
    r1.place = Place {
        name: "Bus stop, Abay avenue".into(),
        lat: Some(43.25),
        lon: Some(76.95),
    };
    r1.description = "Aleksey was arrested.\nTwo officers took him away.".into();
    r1.tags = ["arrest".to_owned(), "police".to_owned()].into();
    r1.people = vec![
        Person {
            name: "Tulegen Shakirov".into(),
            role: Role::Officer,
            note: "car kz380KP02".into(),
        },
        Person {
            name: "Aleksey Ivanov".into(),
            role: Role::Detainee,
            note: String::new(),
        },
    ];
    r1.timeline = vec![
        TimelineEntry {
            at: t("2016-05-21T13:00:00+06:00"),
            text: "released".into(),
            approximate: false,
        },
        TimelineEntry {
            at: t("2016-05-21T11:15:00+06:00"),
            text: "taken to the station".into(),
            approximate: true,
        },
    ];
    r1.review = Review {
        status: ReviewStatus::Verified,
        reviewer: Some(COORDINATOR.into()),
        note: "two witnesses".into(),
        reviewed_at: Some(t("2016-05-23T09:00:00+06:00")),
    };
    r1.attachments = vec![
        attachment("a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"),
        attachment("a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2"),
    ];

    let r2 = report(
        "22222222222222222222222222222222",
        "Search of the flat",
        Some("2016-05-21T23:30:00-03:00"),
    );

    let mut r3 = report(
        "33333333333333333333333333333333",
        "Protest in the square",
        Some("2016-05-22T09:00:00+06:00"),
    );
    r3.place = Place {
        name: "Square".into(),
        lat: Some(-33.9),
        lon: Some(18.4),
    };
    r3.review.status = ReviewStatus::Disputed;

    let mut attachments = BTreeMap::new();
    attachments.insert(
        "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1".to_owned(),
        AttachmentMeta {
            name: "photo.jpg".into(),
            media_type: "image/jpeg".into(),
            size: 1000,
            sha256: "5".repeat(64),
            captured_at: None,
        },
    );
    Export {
        case: "almaty".into(),
        case_id: CASE_ID.into(),
        exported_at: t("2024-03-01T12:00:00+00:00"),
        exported_by: COORDINATOR.into(),
        filters: Filters {
            from: Some(TimeBound::Day(NaiveDate::from_ymd_opt(2016, 5, 1).unwrap())),
            ..Filters::default()
        },
        reports: vec![
            ExportedReport {
                report: r1,
                history: vec![entry('1', true), entry('2', true)],
            },
            ExportedReport {
                report: r2,
                history: vec![entry('3', false)],
            },
            ExportedReport {
                report: r3,
                history: vec![entry('4', true)],
            },
        ],
        attachments,
    }
}

pub(crate) const HOSTILE_TITLE: &str = "<img src=x onerror=alert(1)>";
pub(crate) const HOSTILE_FORMULA: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";

/// One report whose every text field is hostile: markup, formulas, links,
/// control characters, and non-Latin script.
pub(crate) fn hostile() -> Export {
    let mut r = report(
        "44444444444444444444444444444444",
        HOSTILE_TITLE,
        Some("2016-05-21T10:40:00+06:00"),
    );
    r.description = format!(
        "{HOSTILE_FORMULA}\n[click](javascript:alert(1)) **bold** <script>alert(1)</script> &amp;\n# not a heading\n1. not a list\nАлексей задержан 🙂"
    );
    r.place = Place {
        name: "+cmd|' /C calc'!A0".into(),
        lat: Some(-12.5),
        lon: Some(-77.0),
    };
    r.tags = ["@SUM(A1)".to_owned(), "-2+3".to_owned(), "ok".to_owned()].into();
    r.people = vec![Person {
        name: "\tTab".into(),
        role: Role::Witness,
        note: "\rCR".into(),
    }];
    r.timeline = vec![TimelineEntry {
        at: t("2016-05-21T11:00:00+06:00"),
        text: "=1+1 <b>bold</b>".into(),
        approximate: false,
    }];
    r.review.note = "[x](http://evil.example)".into();
    Export {
        case: "<b>case</b>".into(),
        case_id: CASE_ID.into(),
        exported_at: t("2024-03-01T12:00:00+00:00"),
        exported_by: COORDINATOR.into(),
        filters: Filters::default(),
        reports: vec![ExportedReport {
            report: r,
            history: vec![entry('1', true)],
        }],
        attachments: BTreeMap::new(),
    }
}

#[test]
fn time_bounds_are_instants_or_days() {
    assert_eq!(
        "2016-05-21T10:40:00+06:00".parse::<TimeBound>().unwrap(),
        TimeBound::At(t("2016-05-21T10:40:00+06:00"))
    );
    assert_eq!(
        "2016-05-21".parse::<TimeBound>().unwrap(),
        TimeBound::Day(NaiveDate::from_ymd_opt(2016, 5, 21).unwrap())
    );
    for bad in ["2016-05-21T10:40:00", "21.05.2016", "", "2016-13-01"] {
        assert!(bad.parse::<TimeBound>().is_err(), "{bad}");
    }
}

#[test]
fn a_day_bound_is_the_day_in_the_reports_own_offset() {
    let export = sample();
    let days = |from: &str, to: &str| Filters {
        from: Some(from.parse().unwrap()),
        to: Some(to.parse().unwrap()),
        status: None,
    };
    let kept = |filters: &Filters| -> Vec<&str> {
        export
            .reports
            .iter()
            .filter(|r| filters.matches(&r.report))
            .map(|r| r.report.title.as_str())
            .collect()
    };
    // r2 is the 21st in Brazil although the 22nd in UTC.
    assert_eq!(
        kept(&days("2016-05-21", "2016-05-21")),
        ["Arrest at the bus stop", "Search of the flat"]
    );
    assert_eq!(
        kept(&days("2016-05-22", "2016-05-22")),
        ["Protest in the square"]
    );
    // Instants compare as instants, inclusive.
    assert_eq!(
        kept(&days("2016-05-22T02:30:00Z", "2016-05-22T03:00:00Z")),
        ["Search of the flat", "Protest in the square"]
    );
    let verified = Filters {
        status: Some(ReviewStatus::Verified),
        ..Filters::default()
    };
    assert_eq!(kept(&verified), ["Arrest at the bus stop"]);
    assert_eq!(verified.describe(), "status verified");
    assert_eq!(Filters::default().describe(), "none");
}

#[test]
fn reports_without_a_time_pass_only_unbounded_filters_and_sort_last() {
    let mut undated = sample().reports[0].report.clone();
    undated.occurred_at = None;
    undated.id = "00000000000000000000000000000000".parse().unwrap();
    assert!(Filters::default().matches(&undated));
    assert!(!Filters {
        to: Some("2030-01-01".parse().unwrap()),
        ..Filters::default()
    }
    .matches(&undated));
    let dated = &sample().reports[2].report;
    assert_eq!(report_order(dated, &undated), Ordering::Less);
    assert_eq!(report_order(&undated, dated), Ordering::Greater);
}

fn replica_with_report() -> (Replica, ReportId) {
    let mut replica = Replica::open_in_memory().unwrap();
    replica.init_identity().unwrap();
    let id = ReportId::random().unwrap();
    let case: CaseId = CASE_ID.parse().unwrap();
    replica
        .create_report(&NewReport::new(
            id.clone(),
            case,
            "Arrest",
            t("2016-05-21T10:40:00+06:00"),
        ))
        .unwrap();
    replica
        .edit_report(&id, &[Edit::AddTag("police".into())])
        .unwrap();
    replica
        .edit_report(&id, &[Edit::SetTitle("Arrest at the bus stop".into())])
        .unwrap();
    (replica, id)
}

#[test]
fn the_history_of_a_report_carries_raw_changes_and_checked_signatures() {
    let (replica, id) = replica_with_report();
    let exported = exported_report(&replica, &id).unwrap();
    assert_eq!(exported.report.title, "Arrest at the bus stop");
    assert_eq!(exported.history.len(), 3);
    let device = replica.device_key().unwrap().unwrap();
    let mut seen = Vec::new();
    for h in &exported.history {
        assert!(h.signature_verified, "{h:?}");
        assert_eq!(h.author, device.device_id().to_string());
        assert_eq!(h.author_key, hex::encode(device.public_key().as_bytes()));
        assert!(h.time.as_deref().is_some_and(|t| t.ends_with('Z')));
        // The raw change and signature verify without the replica.
        let signed = crate::SignedChange {
            bytes: STANDARD.decode(&h.change).unwrap(),
            signature: STANDARD.decode(&h.signature).unwrap(),
        };
        let verified = signed.verify().unwrap();
        assert_eq!(verified.hash().to_string(), h.hash);
        // Dependencies come first.
        for dep in verified.change.deps() {
            assert!(seen.contains(&dep.to_string()), "dependency after change");
        }
        seen.push(h.hash.clone());
    }
}

#[test]
fn history_order_depends_only_on_the_changes() {
    let (replica, id) = replica_with_report();
    let mut doc = replica.document(&id).unwrap();
    let changes = doc.get_changes(&[]);
    let forward: Vec<_> = history_order(changes.clone())
        .iter()
        .map(Change::hash)
        .collect();
    let mut reversed = changes;
    reversed.reverse();
    let backward: Vec<_> = history_order(reversed).iter().map(Change::hash).collect();
    assert_eq!(forward, backward);
    assert_eq!(forward.len(), 3);
}

#[test]
fn collect_keeps_the_case_filters_and_orders() {
    let (mut replica, _) = replica_with_report();
    let case: CaseId = CASE_ID.parse().unwrap();
    let earlier = ReportId::random().unwrap();
    replica
        .create_report(&NewReport::new(
            earlier.clone(),
            case.clone(),
            "Earlier",
            t("2016-05-20T08:00:00+06:00"),
        ))
        .unwrap();
    let other_case = ReportId::random().unwrap();
    replica
        .create_report(&NewReport::new(
            other_case,
            CaseId::random().unwrap(),
            "Elsewhere",
            t("2016-05-20T09:00:00+06:00"),
        ))
        .unwrap();
    let all = collect(&replica, &case, &Filters::default()).unwrap().0;
    let titles: Vec<&str> = all.iter().map(|r| r.report.title.as_str()).collect();
    assert_eq!(titles, ["Earlier", "Arrest at the bus stop"]);
    let from_21 = Filters {
        from: Some("2016-05-21".parse().unwrap()),
        ..Filters::default()
    };
    let some = collect(&replica, &case, &from_21).unwrap().0;
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].report.title, "Arrest at the bus stop");
}

#[test]
fn attachment_names_are_read_only_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(dir.path()).unwrap();
    replica.init_identity().unwrap();
    let key = replica.new_case_key("almaty").unwrap();
    let file = dir.path().join("statement.txt");
    std::fs::write(&file, b"what the witness said").unwrap();
    let sealed = replica
        .seal_attachment("almaty", &file, "text/plain", None)
        .unwrap();
    let id = ReportId::random().unwrap();
    replica
        .create_report_with(
            &NewReport::new(
                id.clone(),
                CASE_ID.parse().unwrap(),
                "With a file",
                t("2016-05-21T10:40:00+06:00"),
            ),
            std::slice::from_ref(&sealed),
        )
        .unwrap();
    let reports = vec![exported_report(&replica, &id).unwrap()];
    let named = attachment_meta(&reports, &[crate::case_key::CaseSecret::Private(key)]);
    assert_eq!(named[&sealed.id].name, "statement.txt");
    assert!(attachment_meta(&reports, &[]).is_empty());
}
