//! `fieldsync import` with the CLI and a real server: the sample narrative,
//! CSV and JSON, broken files refused whole with nothing written, imports
//! that repeat safely, and the JSON round trip between cases.

use std::path::{Path, PathBuf};

use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};
use serde_json::Value;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../sync-core/tests/samples/almaty-2016-05-21-rally-arrests.txt"
);

fn import_json(device: &DeviceHome, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["import", "--json"];
    all.extend_from_slice(args);
    let out = device.run(&all);
    let code = out.status.code().unwrap_or(-1);
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "import {args:?} printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, summary)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn the_almaty_narrative_becomes_one_report_with_its_timeline_and_candidates() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");

    let summary = coordinator.ok(&[
        "import",
        "--case",
        "almaty",
        "--timezone",
        "Asia/Almaty",
        SAMPLE,
    ]);
    assert!(summary.contains("1 created"), "{summary}");
    for candidate in [
        "Tulegen Shakirov",
        "Aleksey Nigay",
        "Maksat Shakyrbayev",
        "kz380KP02",
    ] {
        assert!(
            summary.contains(candidate),
            "{candidate} missing from:\n{summary}"
        );
    }
    let reports = coordinator.timeline("almaty");
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert!(report["occurred_at"]
        .as_str()
        .unwrap()
        .starts_with("2016-05-21T"));
    assert!(report["occurred_at"].as_str().unwrap().ends_with("+06:00"));
    assert_eq!(report["place"]["name"], "Almata");
    assert!(
        report["people"].as_array().unwrap().is_empty(),
        "candidates are never put into fields"
    );
    let entries: Vec<(String, bool, String)> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["at"].as_str().unwrap().to_owned(),
                e["approximate"].as_bool().unwrap(),
                e["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(entries[0].0, "2016-05-21T10:40:00+06:00");
    assert!(entries[0].1, "\"at around 10:40\" is approximate");
    assert!(entries[0].2.contains("arrested at a bus stop"));
    assert_eq!(entries[1].0, "2016-05-21T11:00:00+06:00");
    assert!(entries[1].2.starts_with("At 11 am, people assembled"));
    assert_eq!(entries[2].0, "2016-05-21T13:00:00+06:00");
    assert!(entries[2]
        .2
        .starts_with("After 1:00 pm Alexey was finally released"));

    // Importing again changes nothing; the report syncs like any other.
    let (code, again) = import_json(
        &coordinator,
        &["--case", "almaty", "--timezone", "Asia/Almaty", SAMPLE],
    );
    assert_eq!(code, 0);
    assert_eq!(again[0]["created"], 0);
    assert_eq!(again[0]["unchanged"], 1);
    coordinator.ok(&["sync"]);
    let witness = enrolled_device(&server, "almaty", "coordinator");
    witness.ok(&["sync"]);
    assert_eq!(witness.timeline("almaty").len(), 1);
}

#[test]
fn csv_rows_import_once_bad_rows_are_named_and_a_corrected_file_updates_in_place() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "hotline.csv",
        b"id,Title,Date,Place,Latitude,Longitude,Tags\n\
          1,Arrest at the bus stop,21.05.2016 10:40,Bus stop,43.25,76.95,arrest\n\
          2,Assembly at the library,21 May 2016 11:00,Central library,,,assembly\n\
          3,Release,the day after,District department,,,release\n",
    );
    let path = csv.to_str().unwrap();

    // A dry run says what would happen and writes nothing.
    let (code, dry) = import_json(
        &coordinator,
        &[
            "--case",
            "almaty",
            "--timezone",
            "+06:00",
            "--dry-run",
            path,
        ],
    );
    assert_eq!(code, 3, "a refused row makes the exit code 3");
    assert_eq!(dry[0]["created"], 2);
    assert!(coordinator.timeline("almaty").is_empty());

    let (code, first) = import_json(
        &coordinator,
        &["--case", "almaty", "--timezone", "+06:00", path],
    );
    assert_eq!(code, 3);
    assert_eq!(first[0]["created"], 2);
    let refused = first[0]["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["line"], 4);
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("the day after"),
        "{refused:?}"
    );
    assert_eq!(coordinator.timeline("almaty").len(), 2);

    // The corrected file: row 3 fixed, row 1's time corrected.
    std::fs::write(
        &csv,
        b"id,Title,Date,Place,Latitude,Longitude,Tags\n\
          1,Arrest at the bus stop,21.05.2016 10:45,Bus stop,43.25,76.95,arrest\n\
          2,Assembly at the library,21 May 2016 11:00,Central library,,,assembly\n\
          3,Release,22.05.2016 13:00,District department,,,release\n",
    )
    .unwrap();
    let (code, second) = import_json(
        &coordinator,
        &["--case", "almaty", "--timezone", "+06:00", path],
    );
    assert_eq!(code, 0);
    assert_eq!(
        (
            &second[0]["created"],
            &second[0]["updated"],
            &second[0]["unchanged"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(1))
    );
    let reports = coordinator.timeline("almaty");
    assert_eq!(reports.len(), 3, "a corrected file never duplicates");
    let arrest = reports
        .iter()
        .find(|r| r["title"] == "Arrest at the bus stop")
        .unwrap();
    assert_eq!(arrest["occurred_at"], "2016-05-21T10:45:00+06:00");
    assert_eq!(arrest["place"]["lat"], 43.25);
}

#[test]
fn broken_files_are_refused_whole_with_the_reason_and_nothing_is_written() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let dir = tempfile::tempdir().unwrap();
    let mut long_line = b"title,occurred_at\n".to_vec();
    long_line.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.csv", Vec::new(), "empty"),
        (
            "latin1.csv",
            b"title,occurred_at\nArrest in K\xf6penick,2016-05-21T10:40:00+06:00\n".to_vec(),
            "not UTF-8",
        ),
        (
            "unknown.csv",
            b"title,occurred_at,mood\nArrest,2016-05-21T10:40:00+06:00,calm\n".to_vec(),
            "mood",
        ),
        ("huge.csv", long_line, "longer than"),
        (
            "broken.json",
            b"[{\"title\": \"Arrest\",\n".to_vec(),
            "not valid JSON",
        ),
    ];
    for (name, bytes, why) in cases {
        let file = write(dir.path(), name, &bytes);
        let (code, summary) =
            import_json(&coordinator, &["--case", "almaty", file.to_str().unwrap()]);
        assert_eq!(code, 3, "{name}");
        let error = summary[0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{name}: {error}");
        assert!(
            coordinator.timeline("almaty").is_empty(),
            "{name} wrote something"
        );
    }
}

#[test]
fn a_json_export_imported_into_another_case_exports_the_same_reports() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    server.create_case("archive");
    let source = enrolled_device(&server, "almaty", "coordinator");
    let target = enrolled_device(&server, "archive", "coordinator");
    source.ok(&[
        "import",
        "--case",
        "almaty",
        "--timezone",
        "Asia/Almaty",
        SAMPLE,
    ]);
    source.ok(fieldsync_tests::BUS_STOP_ARREST);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("almaty.json");
    source.ok(&[
        "export",
        "--case",
        "almaty",
        "--format",
        "json",
        "--out",
        first.to_str().unwrap(),
    ]);
    let (code, summary) = import_json(&target, &["--case", "archive", first.to_str().unwrap()]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary[0]["created"], 2);
    let second = dir.path().join("archive.json");
    target.ok(&[
        "export",
        "--case",
        "archive",
        "--format",
        "json",
        "--out",
        second.to_str().unwrap(),
    ]);

    let content = |path: &Path| -> Vec<Value> {
        let export: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        export["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                // Identity and authorship belong to the case and device that
                // made each copy; everything reported must be equal.
                for key in ["id", "case", "created_by", "created_at", "history"] {
                    r.as_object_mut().unwrap().remove(key);
                }
                r
            })
            .collect::<Vec<_>>()
    };
    // Both reports happened at 10:40; ties are ordered by id, and ids
    // differ between the cases, so compare in a fixed order.
    let content = |path: &Path| -> Vec<Value> {
        let mut reports = content(path);
        reports.sort_by_key(|r| r["title"].as_str().unwrap_or_default().to_owned());
        reports
    };
    assert_eq!(content(&first), content(&second));
    // Importing the export again changes nothing.
    let (_, again) = import_json(&target, &["--case", "archive", first.to_str().unwrap()]);
    assert_eq!(again[0]["unchanged"], 2);
}

#[test]
fn photos_named_to_import_become_encrypted_attachments_of_the_report() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    coordinator.ok(&["key", "new", "--case", "almaty"]);
    coordinator.ok(&[
        "import",
        "--case",
        "almaty",
        "--timezone",
        "Asia/Almaty",
        SAMPLE,
    ]);
    let report = coordinator.timeline("almaty")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let photo = write(
        dir.path(),
        "plate.jpg",
        b"\xff\xd8\xff\xe0 not really a jpeg, but named one",
    );
    // Without --report the photo has nowhere to go.
    let out = coordinator.run(&["import", "--case", "almaty", photo.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--report"));
    coordinator.ok(&[
        "import",
        "--case",
        "almaty",
        "--report",
        &report,
        photo.to_str().unwrap(),
    ]);
    let listed = coordinator.attachments(&report);
    assert_eq!(listed[0]["name"], "plate.jpg");
    assert_eq!(listed[0]["media_type"], "image/jpeg");
    assert_eq!(listed[0]["waiting_for_upload"], true);
    let synced: Value = serde_json::from_str(&coordinator.ok(&["sync", "--json"])).unwrap();
    assert_eq!(synced["attachments"]["uploaded"], 1);
}
