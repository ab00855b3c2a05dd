//! `fieldsync export` end to end: two reporters record (one with an
//! attachment), everyone syncs, and the coordinator exports the case in
//! every format, with filters, and with the attachments decrypted.

use std::path::Path;

use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};
use serde_json::Value;

struct Case {
    server: ServerProcess,
    coordinator: DeviceHome,
    /// The arrest (with an attachment) and the search, by reporter A.
    arrest: String,
    search: String,
    /// The hostile one, by reporter B.
    hostile: String,
    photo: Vec<u8>,
    _data: tempfile::TempDir,
    out: tempfile::TempDir,
}

const HOSTILE_TITLE: &str = "<script>alert(1)</script>";
const FORMULA: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";

fn case() -> Case {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let a = enrolled_device(&server, "almaty", "reporter");
    let b = enrolled_device(&server, "almaty", "reporter");
    coordinator.share_new_key("almaty", &[&a]);
    let out = tempfile::tempdir().unwrap();
    let photo: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let photo_path = out.path().join("arrest photo.jpg");
    std::fs::write(&photo_path, &photo).unwrap();

    let arrest = a
        .ok(&[
            fieldsync_tests::BUS_STOP_ARREST,
            &["--attach", photo_path.to_str().unwrap()],
        ]
        .concat())
        .trim()
        .to_owned();
    a.ok(&[
        "edit",
        &arrest,
        "--timeline",
        "2016-05-21T13:00:00+06:00 released",
    ]);
    let search = a
        .ok(&[
            "record",
            "--case",
            "almaty",
            "--title",
            "Search of the flat",
            "--at",
            "2016-06-02T08:00:00+06:00",
            "--place",
            "Flat 12",
            "--lat",
            "43.2",
            "--lon",
            "76.9",
        ])
        .trim()
        .to_owned();
    let hostile = b
        .ok(&[
            "record",
            "--case",
            "almaty",
            "--title",
            HOSTILE_TITLE,
            "--at",
            "2016-05-22T23:30:00-03:00",
            "--text",
            FORMULA,
            "--place",
            "Алматы",
        ])
        .trim()
        .to_owned();
    a.ok(&["sync"]);
    b.ok(&["sync"]);
    coordinator.ok(&["sync"]);
    coordinator.ok(&[
        "edit",
        &arrest,
        "--status",
        "verified",
        "--note",
        "two witnesses",
    ]);
    Case {
        server,
        coordinator,
        arrest,
        search,
        hostile,
        photo,
        _data: data,
        out,
    }
}

impl Case {
    /// Runs `export ARGS --out FILE` and returns the file's text.
    fn export(&self, name: &str, args: &[&str]) -> String {
        let path = self.out.path().join(name);
        let mut all = vec!["export", "--case", "almaty"];
        all.extend_from_slice(args);
        all.extend(["--out", path.to_str().unwrap()]);
        let stdout = self.coordinator.ok(&all);
        assert_eq!(stdout, "", "with --out nothing goes to stdout");
        std::fs::read_to_string(&path).unwrap()
    }
}

fn ids(reports: &Value) -> Vec<&str> {
    reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[test]
fn the_coordinator_exports_the_merged_case_in_every_format() {
    let case = case();

    // JSON: everything, in occurred_at order, each with its verified history.
    let json: Value =
        serde_json::from_str(&case.export("all.json", &["--format", "json"])).unwrap();
    assert_eq!(json["format"], "fieldsync-export");
    assert_eq!(json["version"], 1);
    assert_eq!(json["case"], "almaty");
    assert_eq!(json["exported_by"], case.coordinator.id);
    assert_eq!(
        ids(&json["reports"]),
        [&case.arrest, &case.hostile, &case.search]
    );
    let arrest = &json["reports"][0];
    assert_eq!(arrest["title"], "Arrest at the bus stop");
    assert_eq!(arrest["review"]["status"], "verified");
    assert_eq!(arrest["timeline"][0]["text"], "released");
    let history = arrest["history"].as_array().unwrap();
    // record (two changes: the report, its attachment), the timeline
    // edit, the coordinator's review.
    assert_eq!(history.len(), 4, "{history:?}");
    assert!(history.iter().all(|h| h["signature_verified"] == true));
    assert!(history.iter().any(|h| h["author"] == case.coordinator.id));
    assert_eq!(json["reports"][1]["title"], HOSTILE_TITLE);

    // Stdout is the same export, but for exported_at.
    let stdout = case
        .coordinator
        .ok(&["export", "--case", "almaty", "--format", "json"]);
    let mut again: Value = serde_json::from_str(&stdout).unwrap();
    again["exported_at"] = json["exported_at"].clone();
    assert_eq!(again, json);

    // Filters: a day range in the reports' own offsets, a status.
    let json: Value = serde_json::from_str(&case.export(
        "may.json",
        &[
            "--format",
            "json",
            "--from",
            "2016-05-22",
            "--to",
            "2016-05-31",
        ],
    ))
    .unwrap();
    assert_eq!(ids(&json["reports"]), [&case.hostile]);
    assert_eq!(json["filters"]["from"], "2016-05-22");
    let json: Value = serde_json::from_str(&case.export(
        "verified.json",
        &[
            "--format",
            "json",
            "--status",
            "verified",
            "--to",
            "2016-12-31T00:00:00Z",
        ],
    ))
    .unwrap();
    assert_eq!(ids(&json["reports"]), [&case.arrest]);

    // CSV, per report: quoted, formulas defused.
    let csv = case.export("all.csv", &["--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header.join(","),
        "id,occurred_at,approximate,title,place,latitude,longitude,description,tags,people,status,reviewer,review_note,created_by,created_at,attachments"
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][0], case.arrest);
    assert_eq!(&rows[0][9], "Tulegen Shakirov (officer): car kz380KP02");
    assert_eq!(&rows[0][11], case.coordinator.id);
    assert_eq!(rows[0][15].len(), 32, "one attachment id");
    assert_eq!(&rows[1][3], HOSTILE_TITLE);
    assert_eq!(rows[1][7], format!("'{FORMULA}"));
    assert_eq!(&rows[1][4], "Алматы");

    // CSV, per timeline entry.
    let csv = case.export("timeline.csv", &["--format", "csv", "--timeline-rows"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("report_id,report_title,at,approximate,text,place,latitude,longitude")
    );
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "{},Arrest at the bus stop,2016-05-21T13:00:00+06:00,false,released,Bus stop,43.25,76.95",
            case.arrest
        )
    );
    assert_eq!(lines.next(), None);

    // GeoJSON: the two reports with coordinates, longitude first; the third
    // is counted on stderr.
    let path = case.out.path().join("map.geojson");
    let out = case.coordinator.run(&[
        "export",
        "--case",
        "almaty",
        "--format",
        "geojson",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("1 report without coordinates left out of the map"));
    let geo: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(geo["type"], "FeatureCollection");
    let features = geo["features"].as_array().unwrap();
    assert_eq!(features.len(), 2);
    assert_eq!(
        features[0]["geometry"],
        serde_json::json!({"type": "Point", "coordinates": [76.95, 43.25]})
    );
    assert_eq!(features[0]["properties"]["status"], "verified");
    assert_eq!(features[1]["properties"]["id"], case.search.as_str());

    // TimelineJS: reports and their timeline entries, all text escaped.
    let timeline: Value =
        serde_json::from_str(&case.export("timeline.json", &["--format", "timelinejs"])).unwrap();
    assert_eq!(timeline["title"]["text"]["headline"], "almaty");
    let events = timeline["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["start_date"]["year"], 2016);
    assert_eq!(events[0]["unique_id"], case.arrest.as_str());
    assert_eq!(events[1]["unique_id"], format!("{}-1", case.arrest));
    assert_eq!(
        events[2]["text"]["headline"],
        "&lt;script&gt;alert(1)&lt;/script&gt;"
    );
    assert!(!timeline.to_string().contains("<script>"));

    // Markdown: the chronology with its signed history.
    let md = case.export(
        "brief.md",
        &["--format", "markdown", "--status", "verified"],
    );
    assert!(md.starts_with("# almaty\n"), "{md}");
    assert!(md.contains("Filters: status verified. 1 report.\n"), "{md}");
    assert!(md.contains("## 2016-05-21 (UTC+06:00)\n"));
    assert!(md.contains("### 10:40 (approx.) — Arrest at the bus stop\n"));
    assert!(md.contains(&format!(
        "- Status: verified, by {}: two witnesses\n",
        case.coordinator.id
    )));
    assert!(md.contains("- 13:00: released\n"));
    assert!(md.contains("- arrest photo.jpg (image/jpeg, 200000 bytes, SHA-256 "));
    assert!(md.contains("Change history: 4 signed changes, all signatures verified.\n"));
}

#[test]
fn with_attachments_decrypts_the_original_files() {
    let case = case();
    let dir = case.out.path().join("files");
    let md = case.export(
        "brief.md",
        &[
            "--format",
            "markdown",
            "--with-attachments",
            dir.to_str().unwrap(),
        ],
    );
    assert!(md.contains("arrest photo.jpg"));
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with("-arrest_photo.jpg"), "{name}");
    assert_eq!(name.len(), 32 + 1 + "arrest_photo.jpg".len());
    assert_eq!(std::fs::read(&files[0]).unwrap(), case.photo);
    // The downloaded ciphertext was not kept on the coordinator's device.
    let downloads = Path::new(case.coordinator.path()).join("downloads");
    assert!(std::fs::read_dir(downloads).unwrap().next().is_none());

    // Filtered to a report without attachments: nothing to decrypt.
    let empty = case.out.path().join("none");
    let json = case.export(
        "search.json",
        &[
            "--format",
            "json",
            "--from",
            "2016-06-01",
            "--with-attachments",
            empty.to_str().unwrap(),
        ],
    );
    assert!(json.contains(&case.search));
    assert!(std::fs::read_dir(&empty).unwrap().next().is_none());

    // A coordinator device without the case key is refused before anything
    // is written.
    let keyless = enrolled_device(&case.server, "almaty", "coordinator");
    keyless.ok(&["sync"]);
    let target = case.out.path().join("keyless.md");
    let refused = keyless.run(&[
        "export",
        "--case",
        "almaty",
        "--format",
        "markdown",
        "--out",
        target.to_str().unwrap(),
        "--with-attachments",
        case.out.path().join("keyless").to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("lacks the case key"), "{stderr}");
    assert!(!target.exists());
    assert!(!case.out.path().join("keyless").exists());
    // Without --with-attachments it exports, naming attachments by id.
    let md = String::from_utf8(
        keyless
            .run(&["export", "--case", "almaty", "--format", "markdown"])
            .stdout,
    )
    .unwrap();
    assert!(
        md.contains("(name not readable without the case key)"),
        "{md}"
    );
}
