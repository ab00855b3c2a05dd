//! Finding 10 of issue 14: an imported report's id derived from the case,
//! the file's name and the row, all of which a reporter can know, so a
//! reporter could create a report under that id first and block the
//! import. Ids now also derive from a secret salt per case that the server
//! gives coordinators' devices only.

use fieldsync_core::import::{self, ImportOptions, Zone};
use fieldsync_core::replica::Replica;
use fieldsync_core::{CaseId, ReportId};
use fieldsync_tests::http::{device_key, send, signed_headers};
use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};
use serde_json::Value;

const CSV: &str = "title,occurred_at,place\n\
    Arrest at the bus stop,2016-05-21 10:40,Bus stop\n\
    Detention at the square,2016-05-21 12:15,Republic Square\n";
const FILE: &str = "hotline.csv";

fn imported_ids(device: &DeviceHome, case: &str) -> Vec<String> {
    let mut ids: Vec<String> = device
        .timeline(case)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn import(device: &DeviceHome, case: &str, file: &std::path::Path) -> std::process::Output {
    device.run(&[
        "import",
        "--case",
        case,
        "--timezone",
        "+06:00",
        file.to_str().unwrap(),
    ])
}

#[test]
fn a_reporter_cannot_predict_the_id_an_import_will_use() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    let case_a = server.create_case("a");
    server.create_case("b");
    let coord_a = enrolled_device(&server, "a", "coordinator");
    let coord_b = enrolled_device(&server, "b", "coordinator");
    let reporter = enrolled_device(&server, "a", "reporter");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE);
    std::fs::write(&file, CSV).unwrap();

    let out = import(&coord_a, "a", &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids_a = imported_ids(&coord_a, "a");
    assert_eq!(ids_a.len(), 2);

    // What a reporter can compute from the case, the file and the rows.
    let parsed = import::parse(
        CSV.as_bytes(),
        &ImportOptions {
            file_name: FILE.into(),
            timezone: Some("+06:00".parse::<Zone>().unwrap()),
            ..ImportOptions::new(FILE)
        },
    )
    .unwrap();
    for row in &parsed.reports {
        let guess = ReportId::derived_from(&[
            b"import v1",
            case_a.as_bytes(),
            FILE.as_bytes(),
            row.source_key.as_bytes(),
        ]);
        println!(
            "row {:?}: a reporter's guess {guess}; imported as {ids_a:?}",
            row.source_key
        );
        assert!(
            !ids_a.contains(&guess.to_string()),
            "the reporter predicted {guess}"
        );
    }

    // The same file in another case gets other ids.
    assert!(import(&coord_b, "b", &file).status.success());
    let ids_b = imported_ids(&coord_b, "b");
    assert_eq!(ids_b.len(), 2);
    assert!(
        ids_a.iter().all(|id| !ids_b.contains(id)),
        "{ids_a:?} {ids_b:?}"
    );

    // Importing again on the same device changes nothing.
    let again = coord_a.ok(&[
        "import",
        "--case",
        "a",
        "--timezone",
        "+06:00",
        file.to_str().unwrap(),
    ]);
    assert!(again.contains("2 unchanged"), "{again}");

    // The salt is never the reporter's: its device holds none, and the
    // server refuses it the case's.
    let reporter_replica = Replica::open(reporter.dir.path()).unwrap();
    assert_eq!(reporter_replica.meta("import_salt").unwrap(), None);
    let key = device_key(reporter.dir.path());
    let reply = send(
        "GET",
        &server.url,
        "/v1/case",
        &signed_headers(&key, "GET", "/v1/case", b""),
        b"",
    );
    println!(
        "a reporter asks for the case's salt: {} {}",
        reply.status, reply.body
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    let coord_key = device_key(coord_a.dir.path());
    let reply = send(
        "GET",
        &server.url,
        "/v1/case",
        &signed_headers(&coord_key, "GET", "/v1/case", b""),
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let case: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(case["case_id"], case_a.as_str());

    // A coordinator's device without the salt (enrolled before it existed)
    // refuses to import until it has synced.
    coord_a.ok(&["sync"]);
    let late = enrolled_device(&server, "a", "coordinator");
    let mut replica = Replica::open(late.dir.path()).unwrap();
    replica.delete_meta("import_salt").unwrap();
    drop(replica);
    let out = import(&late, "a", &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("import without the salt: {stderr}");
    assert!(!out.status.success());
    assert!(stderr.contains("fieldsync sync"), "{stderr}");
    late.ok(&["sync"]);
    let out = import(&late, "a", &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        imported_ids(&late, "a"),
        ids_a,
        "both coordinators derive the same ids"
    );
}

#[test]
fn a_file_imported_before_ids_were_salted_imports_again_unchanged() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    let case = server.create_case("a");
    let coordinator = enrolled_device(&server, "a", "coordinator");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE);
    std::fs::write(&file, CSV).unwrap();

    // What fieldsync wrote when ids were not salted: the same rows under
    // ids from the case, the file's name and the row.
    let parsed = import::parse(
        CSV.as_bytes(),
        &ImportOptions {
            timezone: Some("+06:00".parse::<Zone>().unwrap()),
            ..ImportOptions::new(FILE)
        },
    )
    .unwrap();
    let rows: Vec<(ReportId, &import::ImportedReport)> = parsed
        .reports
        .iter()
        .map(|row| {
            let id = ReportId::derived_from(&[
                b"import v1",
                case.as_bytes(),
                FILE.as_bytes(),
                row.source_key.as_bytes(),
            ]);
            (id, row)
        })
        .collect();
    let mut replica = Replica::open(coordinator.dir.path()).unwrap();
    replica
        .import_reports(&case.parse::<CaseId>().unwrap(), &rows, false)
        .unwrap();
    drop(replica);

    let again = coordinator.ok(&[
        "import",
        "--case",
        "a",
        "--timezone",
        "+06:00",
        file.to_str().unwrap(),
    ]);
    println!("{again}");
    assert!(
        again.contains("0 created") && again.contains("2 unchanged"),
        "{again}"
    );
    assert_eq!(imported_ids(&coordinator, "a").len(), 2);
}
