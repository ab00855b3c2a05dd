use super::*;
// The module's names moved into files of `document/` (issue 15); the tests
// still see what the single file had in scope.
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ROOT};
use chrono::{DateTime, FixedOffset};

use crate::identity::DeviceKey;
use crate::ids::{CaseId, ReportId};
use crate::model::*;

pub(crate) fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn new_report() -> NewReport {
    NewReport {
        id: ReportId::random().unwrap(),
        case: CaseId::random().unwrap(),
        title: "Arrests at the bus stop".into(),
        occurred_at: t("2016-05-21T10:40:00+06:00"),
        approximate: true,
        place: Place {
            name: "Almaty".into(),
            lat: Some(43.238),
            lon: Some(76.945),
        },
        description: "Aleksey was arrested.".into(),
        people: vec![Person {
            name: "Tulegen Shakirov".into(),
            role: Role::Officer,
            note: "car kz380KP02".into(),
        }],
        tags: vec!["arrest".into()],
        timeline: vec![TimelineEntry {
            at: t("2016-05-21T13:00:00+06:00"),
            text: "released".into(),
            approximate: false,
        }],
    }
}

#[test]
fn a_new_report_reads_back_every_field() {
    let key = DeviceKey::generate().unwrap();
    let new = new_report();
    let (doc, change) = ReportDocument::create(&key, &new, t("2016-05-21T11:00:00+06:00")).unwrap();
    change.verify().unwrap();
    let r = doc.view().unwrap();
    assert_eq!(r.id, new.id.as_str());
    assert_eq!(r.case, new.case.as_str());
    assert_eq!(r.created_by, key.device_id().as_str());
    assert_eq!(r.occurred_at, Some(new.occurred_at));
    assert_eq!(
        rfc3339(&r.occurred_at.unwrap()),
        "2016-05-21T10:40:00+06:00"
    );
    assert!(r.approximate);
    assert_eq!(r.place, new.place);
    assert_eq!(r.title, new.title);
    assert_eq!(r.description, new.description);
    assert_eq!(r.people, new.people);
    assert_eq!(r.tags.iter().collect::<Vec<_>>(), vec!["arrest"]);
    assert_eq!(r.timeline, new.timeline);
    assert_eq!(r.review, Review::default());
    assert!(r.attachments.is_empty());
    assert!(r.unknown_fields.is_empty());
    assert_eq!(r.schema_version, SCHEMA_VERSION);
}

#[test]
fn missing_fields_read_as_defaults() {
    let mut doc = AutoCommit::new();
    // The identity fields have no default (issue 15: typed ids): a
    // document must hold them to read. Every other field may be missing.
    doc.put(ROOT, "id", "0123456789abcdef0123456789abcdef")
        .unwrap();
    doc.put(ROOT, "case", "00112233445566778899aabbccddeeff")
        .unwrap();
    doc.put(ROOT, "created_by", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        .unwrap();
    doc.put(ROOT, "title", "only a title").unwrap();
    let r = ReportDocument::from_automerge(doc).view().unwrap();
    assert_eq!(r.title, "only a title");
    assert_eq!(r.description, "");
    assert_eq!(r.place, Place::default());
    assert_eq!(r.review.status, ReviewStatus::Unverified);
    assert!(r.people.is_empty() && r.tags.is_empty() && r.timeline.is_empty());
    assert_eq!(r.occurred_at, None);
}

#[test]
fn unknown_fields_are_listed_and_survive_edits() {
    let key = DeviceKey::generate().unwrap();
    let (mut doc, _) =
        ReportDocument::create(&key, &new_report(), t("2020-01-01T00:00:00Z")).unwrap();
    let am = doc.automerge();
    am.put(ROOT, "weather", "rain").unwrap();
    let extra = am.put_object(ROOT, "future_block", ObjType::Map).unwrap();
    am.put(&extra, "x", 1_i64).unwrap();
    am.commit();
    doc.edit(
        &key,
        &[Edit::SetTitle("new".into())],
        t("2020-01-01T00:01:00Z"),
    )
    .unwrap();
    let r = doc.view().unwrap();
    assert_eq!(r.unknown_fields, vec!["future_block", "weather"]);
    assert_eq!(
        doc.automerge()
            .get(ROOT, "weather")
            .unwrap()
            .unwrap()
            .0
            .as_str(),
        Some("rain")
    );
}

#[test]
fn wrong_types_are_errors_that_name_the_field() {
    type Build = Box<dyn Fn(&mut AutoCommit)>;
    let cases: Vec<(&str, Build)> = vec![
        (
            "title",
            Box::new(|d| {
                d.put(ROOT, "title", 7_i64).unwrap();
            }),
        ),
        (
            "place",
            Box::new(|d| {
                d.put(ROOT, "place", "Almaty").unwrap();
            }),
        ),
        (
            "place.lat",
            Box::new(|d| {
                let p = d.put_object(ROOT, "place", ObjType::Map).unwrap();
                d.put(&p, "lat", "north").unwrap();
            }),
        ),
        (
            "occurred_at",
            Box::new(|d| {
                d.put(ROOT, "occurred_at", "yesterday").unwrap();
            }),
        ),
        (
            "approximate",
            Box::new(|d| {
                d.put(ROOT, "approximate", "yes").unwrap();
            }),
        ),
        (
            "people[0].role",
            Box::new(|d| {
                let l = d.put_object(ROOT, "people", ObjType::List).unwrap();
                let p = d.insert_object(&l, 0, ObjType::Map).unwrap();
                d.put(&p, "role", "judge").unwrap();
            }),
        ),
        (
            "review.status",
            Box::new(|d| {
                let r = d.put_object(ROOT, "review", ObjType::Map).unwrap();
                d.put(&r, "status", "maybe").unwrap();
            }),
        ),
        (
            "tags",
            Box::new(|d| {
                d.put_object(ROOT, "tags", ObjType::List).unwrap();
            }),
        ),
        (
            "description",
            Box::new(|d| {
                d.put(ROOT, "description", 1.5).unwrap();
            }),
        ),
        (
            "timeline[0]",
            Box::new(|d| {
                let l = d.put_object(ROOT, "timeline", ObjType::List).unwrap();
                d.insert(&l, 0, "10:40").unwrap();
            }),
        ),
    ];
    for (field, build) in cases {
        let mut doc = AutoCommit::new();
        build(&mut doc);
        let err = ReportDocument::from_automerge(doc).view().unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("`{field}`")), "{field}: {text}");
    }
}

#[test]
fn identity_fields_that_are_missing_or_malformed_are_errors_that_name_the_field() {
    type Build = Box<dyn Fn(&mut AutoCommit)>;
    let valid = |d: &mut AutoCommit| {
        d.put(ROOT, "id", "0123456789abcdef0123456789abcdef")
            .unwrap();
        d.put(ROOT, "case", "00112233445566778899aabbccddeeff")
            .unwrap();
        d.put(ROOT, "created_by", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            .unwrap();
    };
    let cases: Vec<(&str, Build)> = vec![
        ("id", Box::new(move |d| d.delete(ROOT, "id").unwrap())),
        ("id", Box::new(|d| d.put(ROOT, "id", "../etc").unwrap())),
        ("case", Box::new(|d| d.put(ROOT, "case", "").unwrap())),
        (
            "created_by",
            Box::new(|d| {
                d.put(ROOT, "created_by", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                    .unwrap()
            }),
        ),
        (
            "attachments[0].blob",
            Box::new(|d| {
                let l = d.put_object(ROOT, "attachments", ObjType::List).unwrap();
                let a = d.insert_object(&l, 0, ObjType::Map).unwrap();
                d.put(&a, "blob", "not/a/hash").unwrap();
            }),
        ),
        (
            "attachments[0].blob",
            Box::new(|d| {
                let l = d.put_object(ROOT, "attachments", ObjType::List).unwrap();
                d.insert_object(&l, 0, ObjType::Map).unwrap();
            }),
        ),
    ];
    for (field, build) in cases {
        let mut doc = AutoCommit::new();
        valid(&mut doc);
        build(&mut doc);
        let err = ReportDocument::from_automerge(doc).view().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
    }
}

#[test]
fn a_title_written_as_text_is_refused_with_the_way_to_write_a_scalar_string() {
    let mut doc = AutoCommit::new();
    let title = doc.put_object(ROOT, "title", ObjType::Text).unwrap();
    doc.splice_text(&title, 0, 0, "Detention").unwrap();
    let text = ReportDocument::from_automerge(doc)
        .view()
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("field `title` should be a string but is text"),
        "{text}"
    );
    assert!(text.contains("ImmutableString"), "{text}");
    assert!(text.contains("Text by default"), "{text}");
}

#[test]
fn edits_on_a_wrong_typed_document_fail_without_changing_it() {
    let key = DeviceKey::generate().unwrap();
    let mut am = AutoCommit::new();
    am.put(ROOT, "tags", "not a map").unwrap();
    am.commit();
    let mut doc = ReportDocument::from_automerge(am);
    let heads = doc.heads();
    let err = doc
        .edit(
            &key,
            &[Edit::SetTitle("x".into()), Edit::AddTag("a".into())],
            t("2020-01-01T00:00:00Z"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("`tags`"), "{err}");
    assert_eq!(doc.heads(), heads);
    assert_eq!(
        doc.view().map(|r| r.title).ok(),
        None,
        "tags is still wrong"
    );
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let key = DeviceKey::generate().unwrap();
    let (mut doc, _) =
        ReportDocument::create(&key, &new_report(), t("2020-01-01T00:00:00Z")).unwrap();
    let now = t("2020-01-01T00:00:00Z");
    let refused = [
        (Edit::AddTag("  ".into()), "a tag must not be empty"),
        (
            Edit::SetPlace(Place {
                name: "x".into(),
                lat: Some(91.0),
                lon: Some(0.0),
            }),
            "latitude 91",
        ),
        (
            Edit::SetPlace(Place {
                name: "x".into(),
                lat: Some(1.0),
                lon: None,
            }),
            "give both or neither",
        ),
        (
            Edit::SetTitle("t".repeat(MAX_TITLE_BYTES + 1)),
            "title is too long",
        ),
    ];
    for (edit, message) in refused {
        let err = doc.edit(&key, &[edit], now).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn concurrent_description_edits_in_different_sentences_both_survive() {
    let a = DeviceKey::generate().unwrap();
    let b = DeviceKey::generate().unwrap();
    let mut new = new_report();
    new.description = "First sentence. Second sentence.".into();
    let now = t("2020-01-01T00:00:00Z");
    let (mut doc_a, _) = ReportDocument::create(&a, &new, now).unwrap();
    let mut doc_b = doc_a.clone();
    doc_a
        .edit(
            &a,
            &[Edit::SetDescription(
                "First sentence, at 10:40. Second sentence.".into(),
            )],
            now,
        )
        .unwrap();
    doc_b
        .edit(
            &b,
            &[Edit::SetDescription(
                "First sentence. Second sentence, by two officers.".into(),
            )],
            now,
        )
        .unwrap();
    doc_a.automerge().merge(doc_b.automerge()).unwrap();
    assert_eq!(
        doc_a.view().unwrap().description,
        "First sentence, at 10:40. Second sentence, by two officers."
    );
}

#[test]
fn the_same_tag_added_twice_concurrently_is_one_tag() {
    let a = DeviceKey::generate().unwrap();
    let b = DeviceKey::generate().unwrap();
    let now = t("2020-01-01T00:00:00Z");
    let (mut doc_a, _) = ReportDocument::create(&a, &new_report(), now).unwrap();
    let mut doc_b = doc_a.clone();
    doc_a
        .edit(&a, &[Edit::AddTag("eviction".into())], now)
        .unwrap();
    doc_b
        .edit(&b, &[Edit::AddTag("eviction ".into())], now)
        .unwrap();
    doc_a.automerge().merge(doc_b.automerge()).unwrap();
    let tags = doc_a.view().unwrap().tags;
    assert_eq!(tags.iter().filter(|t| *t == "eviction").count(), 1);
    assert_eq!(tags.len(), 2);
}

#[test]
fn every_change_is_signed_by_its_device_and_names_it_as_actor() {
    let key = DeviceKey::generate().unwrap();
    let now = t("2020-01-01T00:00:00Z");
    let (mut doc, first) = ReportDocument::create(&key, &new_report(), now).unwrap();
    let second = doc
        .edit(&key, &[Edit::AppendDescription(" More.".into())], now)
        .unwrap()
        .unwrap();
    for change in [first, second] {
        let verified = change.verify().unwrap();
        assert_eq!(verified.author, key.public_key());
    }
}

mod creating_change {
    use proptest::prelude::*;

    use super::*;

    /// Text that exercises what Automerge splits or encodes specially:
    /// multi-byte scalars, emoji with modifiers and joiners, combining
    /// marks, CRLF, right-to-left text and whitespace around tags.
    fn text() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a",
            "Aleksey",
            " ",
            "  ",
            "\n",
            "\r\n",
            "\t",
            "é",
            "e\u{301}",
            "👍🏽",
            "👩‍👩‍👧",
            "Алматы",
            "שלום",
            "中文",
            "\u{0}",
            "",
            ",",
            ";",
        ]);
        prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
    }

    /// Mostly text a field accepts, sometimes text it refuses (blank).
    fn filled() -> impl Strategy<Value = String> {
        prop_oneof![9 => text().prop_map(|t| format!("x{t}")), 1 => text()]
    }

    /// Tags that repeat, once trimmed, often.
    fn tag() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec!["arrest", " arrest", "arrest ", "rally", "👍🏽", "police violence"])
                .prop_map(String::from),
            1 => text(),
        ]
    }

    fn time() -> impl Strategy<Value = DateTime<FixedOffset>> {
        (
            0i64..2_000_000_000,
            0u32..1_000_000_000,
            -12 * 3600..14 * 3600i32,
        )
            .prop_map(|(secs, nanos, offset)| {
                DateTime::from_timestamp(secs, nanos)
                    .unwrap()
                    .with_timezone(&FixedOffset::east_opt(offset - offset % 60).unwrap())
            })
    }

    fn coordinate(max: f64) -> impl Strategy<Value = Option<f64>> {
        prop::option::of(-max * 1.5..max * 1.5)
    }

    fn role() -> impl Strategy<Value = Role> {
        prop::sample::select(vec![
            Role::Officer,
            Role::Detainee,
            Role::Witness,
            Role::Other,
        ])
    }

    prop_compose! {
        fn new_reports()(
            title in text(),
            occurred_at in time(),
            approximate in any::<bool>(),
            name in text(),
            lat in coordinate(90.0),
            lon in coordinate(180.0),
            description in text(),
            people in prop::collection::vec((filled(), role(), text()), 0..3),
            tags in prop::collection::vec(tag(), 0..5),
            timeline in prop::collection::vec((time(), filled(), any::<bool>()), 0..3),
        ) -> NewReport {
            NewReport {
                id: ReportId::derived_from(&[title.as_bytes()]),
                case: CaseId::random().unwrap(),
                title,
                occurred_at,
                approximate,
                place: Place { name, lat, lon },
                description,
                people: people
                    .into_iter()
                    .map(|(name, role, note)| Person { name, role, note })
                    .collect(),
                tags,
                timeline: timeline
                    .into_iter()
                    .map(|(at, text, approximate)| TimelineEntry { at, text, approximate })
                    .collect(),
            }
        }
    }

    fn same_as_create(key: &DeviceKey, new: &NewReport, now: DateTime<FixedOffset>) {
        let slow = ReportDocument::create(key, new, now);
        let fast = ReportDocument::creating_change(key, new, now);
        match (slow, fast) {
            (Ok((_, slow)), Ok((fast, hash))) => {
                assert_eq!(fast, slow, "{new:?}");
                assert_eq!(fast.verify().unwrap().hash(), hash);
            }
            (Err(slow), Err(fast)) => assert_eq!(fast, slow),
            (slow, fast) => panic!("create: {slow:?}, creating_change: {fast:?}, for {new:?}"),
        }
    }

    fn same_view_as_create(key: &DeviceKey, new: &NewReport, now: DateTime<FixedOffset>) {
        if let Ok((created, _)) = ReportDocument::create(key, new, now) {
            assert_eq!(
                ReportDocument::created_view(&key.device_id(), new, now),
                created.view().unwrap(),
                "{new:?}"
            );
        }
    }

    #[test]
    fn the_created_view_is_the_view_of_create() {
        let key = DeviceKey::generate().unwrap();
        let now = t("2026-11-23T10:00:00.123456789+01:00");
        same_view_as_create(&key, &new_report(), now);
        let mut twice = new_report();
        twice.tags = vec!["arrest".into(), " arrest ".into(), "rally".into()];
        same_view_as_create(&key, &twice, now);
    }

    #[test]
    fn the_fast_creating_change_is_the_one_create_makes() {
        let key = DeviceKey::generate().unwrap();
        let now = t("2026-11-23T10:00:00+01:00");
        same_as_create(&key, &new_report(), now);
        let mut twice = new_report();
        twice.tags = vec!["arrest".into(), " arrest ".into(), "rally".into()];
        twice.description = String::new();
        same_as_create(&key, &twice, now);
        let mut long = new_report();
        long.description = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
        same_as_create(&key, &long, now);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn the_fast_creating_change_is_the_one_create_makes_for_any_report(
            new in new_reports(),
            now in time(),
        ) {
            let key = DeviceKey::generate().unwrap();
            same_as_create(&key, &new, now);
            same_view_as_create(&key, &new, now);
        }
    }
}
