use std::collections::BTreeSet;

use chrono::DateTime;
use serde_json::json;

use super::*;
use crate::import::{parse as parse_file, parse_as, Format, ParsedFile};
use crate::model::{AttachmentRef, Report, Review, ReviewStatus};

fn options(file: &str) -> ImportOptions {
    ImportOptions::almaty(file)
}

fn check(json: &str) -> ParsedFile {
    check_with(json, options("reports.json"))
}

fn check_with(json: &str, options: ImportOptions) -> ParsedFile {
    parse_as(json.as_bytes(), &options, Format::Json)
}

fn keys(parsed: &ParsedFile) -> Vec<&str> {
    parsed
        .reports
        .iter()
        .map(|r| r.source_key.as_str())
        .collect()
}

fn t(s: &str) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn exported_report() -> Report {
    Report {
        id: "0123456789abcdef0123456789abcdef".parse().unwrap(),
        case: "fedcba9876543210fedcba9876543210".parse().unwrap(),
        created_by: "00112233445566778899aabbccddeeff".parse().unwrap(),
        created_at: Some(t("2016-05-21T12:00:00+06:00")),
        schema_version: 1,
        occurred_at: Some(t("2016-05-21T10:40:00+06:00")),
        approximate: true,
        place: Place {
            name: "Almaty, bus stop".into(),
            lat: Some(43.2567),
            lon: Some(76.9286),
        },
        title: "Arrest at the bus stop".into(),
        description: "Taken at the stop.".into(),
        people: vec![Person {
            name: "Aleksey Nigay".into(),
            role: Role::Detainee,
            note: "journalist".into(),
        }],
        tags: BTreeSet::from(["arrest".to_owned(), "rally".to_owned()]),
        timeline: vec![TimelineEntry {
            at: t("2016-05-21T10:40:00+06:00"),
            text: "arrested".into(),
            approximate: true,
        }],
        review: Review {
            status: ReviewStatus::Verified,
            reviewer: Some("aabbccddeeff00112233445566778899".into()),
            note: "checked".into(),
            reviewed_at: Some(t("2016-05-22T09:00:00+06:00")),
        },
        attachments: vec![AttachmentRef {
            id: "a1".into(),
            blob: "ab".repeat(32).parse().unwrap(),
            size: 1234,
            header: "c2VhbGVk".into(),
            key_epoch: 1,
        }],
        unknown_fields: vec![],
    }
}

#[test]
fn the_projects_own_export_imports_the_content_and_leaves_review_and_history() {
    let mut report = serde_json::to_value(exported_report()).unwrap();
    report["history"] = json!([{"change": "abc", "by": "00112233445566778899aabbccddeeff"}]);
    report["added_by_a_newer_build"] = json!(true);
    let export = json!({
        "format": "fieldsync-export",
        "version": 1,
        "case": "fedcba9876543210fedcba9876543210",
        "reports": [report],
    });
    let text = serde_json::to_string_pretty(&export).unwrap();
    let parsed = check(&text);
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    let r = &parsed.reports[0];
    // The report's own line, where its object opens, not the file's first.
    assert!(r.line > 1);
    assert_eq!(text.lines().nth(r.line - 1).unwrap().trim(), "{");
    assert_eq!(r.source_key, "0123456789abcdef0123456789abcdef");
    assert_eq!(r.title, "Arrest at the bus stop");
    assert_eq!(r.occurred_at, t("2016-05-21T10:40:00+06:00"));
    assert!(r.approximate);
    assert_eq!(r.place, exported_report().place);
    assert_eq!(r.description, "Taken at the stop.");
    assert_eq!(r.people, exported_report().people);
    assert_eq!(r.tags, ["arrest", "rally"]);
    assert_eq!(r.timeline, exported_report().timeline);
    assert!(
        r.attachment_names.is_empty(),
        "sealed attachments have no file names"
    );

    let newer = text.replace("\"version\": 1", "\"version\": 2");
    let err = parse_file(newer.as_bytes(), &options("export.json")).unwrap_err();
    assert!(matches!(err, ImportError::ExportVersion { .. }), "{err}");
    assert!(err.to_string().contains("newer fieldsync"), "{err}");
}

const LIST: &str = r#"[
  {
    "id": "r-1",
    "title": "Arrest at the bus stop",
    "occurred_at": "21.05.2016 10:40 am",
    "place": {"name": "Almaty", "lat": 43.2567, "lon": "76.9286"},
    "description": "Taken at the stop.",
    "tags": "arrest, rally",
    "people": ["Aleksey Nigay (detainee)", {"name": "Tulegen Shakirov", "role": "officer", "note": "took the phone"}],
    "timeline": [{"at": "2016-05-21T10:40:00+06:00", "text": "arrested", "approximate": true}, {"at": "21 May 2016 13:00", "text": "released"}],
    "attachments": ["DCIM/stop.jpg", {"filename": "clip.mp4"}]
  },
  {"title": "Rally", "occurred_at": "2016-05-21", "place": "Republic Square", "lat": 43.238, "lon": 76.945, "tags": ["rally"], "approximate": false}
]"#;

#[test]
fn a_list_of_reports_in_the_documented_form_imports() {
    let parsed = check(LIST);
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    assert_eq!(keys(&parsed), ["r-1", "item:1"]);
    let r = &parsed.reports[0];
    assert_eq!(r.line, 2);
    assert_eq!(r.occurred_at, t("2016-05-21T10:40:00+06:00"));
    assert!(!r.approximate);
    assert_eq!(
        (r.place.name.as_str(), r.place.lat, r.place.lon),
        ("Almaty", Some(43.2567), Some(76.9286))
    );
    assert_eq!(r.tags, ["arrest", "rally"]);
    assert_eq!(r.people[0].role, Role::Detainee);
    assert_eq!(
        (r.people[1].role, r.people[1].note.as_str()),
        (Role::Officer, "took the phone")
    );
    let timeline: Vec<(String, bool)> = r
        .timeline
        .iter()
        .map(|e| (e.at.to_rfc3339(), e.approximate))
        .collect();
    assert_eq!(
        timeline,
        [
            ("2016-05-21T10:40:00+06:00".into(), true),
            ("2016-05-21T13:00:00+06:00".into(), false)
        ]
    );
    assert_eq!(r.attachment_names, ["stop.jpg", "clip.mp4"]);
    let r = &parsed.reports[1];
    assert_eq!(r.line, 13);
    assert_eq!(
        (r.place.name.as_str(), r.place.lat),
        ("Republic Square", Some(43.238))
    );
    assert!(r.approximate, "a date without a time stays approximate");
}

#[test]
fn a_bad_item_is_refused_with_its_line_and_the_others_import() {
    let parsed = check(
        r#"[
  {"title": "good", "occurred_at": "2016-05-21T10:40:00+06:00"},
  {"title": "bad date", "occurred_at": "someday"},
  {"title": "off the map", "occurred_at": "2016-05-21", "lat": 43.2, "lon": 181},
  {"occurred_at": "2016-05-21"},
  {"title": "odd role", "occurred_at": "2016-05-21", "people": [{"name": "X", "role": "boss"}]},
  {"title": "naive", "occurred_at": "2016-05-21T10:40:00", "timeline": [{"at": "later", "text": "x"}]},
  "not an object",
  {"title": "tags wrong", "occurred_at": "2016-05-21", "tags": 5},
  {"title": "street dropped", "occurred_at": "2016-05-21", "place": {"name": "Almaty", "street": "Abay"}},
  {"title": "good too",
   "occurred_at": "2016-05-22T09:00:00Z"}
]"#,
    );
    assert_eq!(keys(&parsed), ["item:0", "item:9"]);
    let refused: Vec<(usize, &str)> = parsed
        .refused
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    let lines: Vec<usize> = refused.iter().map(|r| r.0).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9, 10]);
    assert!(
        refused[0].1.contains("\"someday\" is not a date"),
        "{}",
        refused[0].1
    );
    assert!(
        refused[1].1.contains("longitude 181 is outside -180..=180"),
        "{}",
        refused[1].1
    );
    assert!(refused[2].1.contains("missing title"), "{}", refused[2].1);
    assert!(
        refused[3]
            .1
            .contains("unknown role \"boss\"; expected one of"),
        "{}",
        refused[3].1
    );
    assert!(
        refused[4].1.contains("timeline entry 0") && refused[4].1.contains("\"later\""),
        "{}",
        refused[4].1
    );
    assert!(
        refused[5].1.contains("not a report object"),
        "{}",
        refused[5].1
    );
    assert!(
        refused[6].1.contains("\"tags\" should be an array"),
        "{}",
        refused[6].1
    );
    assert!(
        refused[7]
            .1
            .contains("\"place\" has an unknown key \"street\""),
        "{}",
        refused[7].1
    );
}

#[test]
fn a_naive_time_without_a_timezone_refuses_the_item() {
    let parsed = check_with(
        r#"[{"title": "x", "occurred_at": "2016-05-21 10:40"}]"#,
        ImportOptions::new("x.json"),
    );
    assert!(
        parsed.refused[0].reason.contains("naive time"),
        "{:?}",
        parsed.refused
    );
    assert!(
        parsed.refused[0].reason.contains("give --timezone"),
        "{:?}",
        parsed.refused
    );
}

#[test]
fn invalid_json_is_refused_with_its_line_and_column() {
    let err = parse_file(b"[\n  {\"title\": \"x\",}\n]", &options("bad.json")).unwrap_err();
    match &err {
        ImportError::Json { line, column, .. } => assert_eq!((*line, *column), (2, 17)),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("at line 2, column 17"), "{err}");
    let err = parse_file(b"{\"reports\": []}", &options("x.json")).unwrap_err();
    assert!(err.to_string().contains("fieldsync export"), "{err}");
    let err = parse_file(b"42", &options("x.json")).unwrap_err();
    assert!(err.to_string().contains("top-level array"), "{err}");
}

#[test]
fn an_unknown_key_refuses_the_file_unless_mapped() {
    let text =
        r#"[{"title": "x", "occurred_at": "2016-05-21", "badge": "123", "summary": "long text"}]"#;
    let err = parse_file(text.as_bytes(), &options("x.json")).unwrap_err();
    assert!(
        matches!(&err, ImportError::UnknownKey { key, line: 1, .. } if key == "badge"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("known keys: id, title, occurred_at"),
        "{err}"
    );
    let mut mapped = options("x.json");
    mapped.map = vec![
        ("badge".into(), "ignore".into()),
        ("summary".into(), "description".into()),
    ];
    let parsed = check_with(text, mapped);
    assert_eq!(parsed.reports[0].description, "long text");
    let mut bad = options("x.json");
    bad.map = vec![("badge".into(), "rank".into())];
    let err = parse_file(text.as_bytes(), &bad).unwrap_err();
    assert!(err.to_string().contains("--map badge=rank"), "{err}");
}

#[test]
fn re_parsing_gives_the_same_source_keys_and_a_corrected_item_keeps_its_id() {
    assert_eq!(check(LIST), check(LIST));
    let corrected = LIST
        .replace("Arrest at the bus stop", "Arrest at the stop")
        .replacen(
            "[\n",
            "[\n  {\"title\": \"new\", \"occurred_at\": \"2016-05-23\"},\n",
            1,
        );
    let parsed = check(&corrected);
    assert_eq!(keys(&parsed), ["item:0", "r-1", "item:2"]);
    assert_eq!(parsed.reports[1].title, "Arrest at the stop");
}

#[test]
fn element_lines_follow_the_report_array_only() {
    let text = "{\"format\": \"x\", \"other\": [1,\n2], \"reports\": [\n{\"a\": [1, 2]},\n \"s,]\" ,\n\n 3]}";
    assert_eq!(element_lines(text, Some("reports")), [3, 4, 6]);
    assert_eq!(element_lines("[ ]", None), Vec::<usize>::new());
    assert_eq!(element_lines("[\"a\\\"\", [1,\n2],\n{}]", None), [1, 1, 3]);
}
