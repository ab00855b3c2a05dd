//! Issue 15's fixes for a new user, through the CLI: `import --year` for
//! dates written without one, `sync` against a busy server, and the clock
//! offset kept by `attachment get` and `export --with-attachments`.

use fieldsync_tests::busy::BusyServer;
use fieldsync_tests::{enrolled_device, ServerProcess};
use serde_json::Value;

const YEARLESS: &str =
    "Arrest at the bus stop on May 21\n\nAt 10:40 Aleksey was arrested at the bus stop.\n";

#[test]
fn import_year_gives_the_year_of_a_narrative_written_without_one() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let file = coordinator.dir.path().join("note.txt");
    std::fs::write(&file, YEARLESS).unwrap();
    let file = file.to_str().unwrap();

    let base = [
        "import",
        "--case",
        "almaty",
        "--timezone",
        "Asia/Almaty",
        file,
    ];
    let refused = coordinator.run(&base);
    assert_eq!(refused.status.code(), Some(3));
    let printed = String::from_utf8_lossy(&refused.stdout);
    assert!(printed.contains("has no year"), "{printed}");
    assert!(printed.contains("(--year YEAR)"), "{printed}");

    let mut with_year = base.to_vec();
    with_year.extend_from_slice(&["--year", "2024"]);
    let printed = coordinator.ok(&with_year);
    assert!(printed.contains("1 created"), "{printed}");
    let reports = coordinator.timeline("almaty");
    assert_eq!(reports.len(), 1);
    let at = reports[0]["occurred_at"].as_str().unwrap();
    assert!(at.starts_with("2024-05-21"), "{at}");
}

#[test]
fn sync_retries_a_busy_server_then_says_nothing_was_lost() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    reporter.record("almaty", "Arrest at the bus stop", &[]);

    // Busy twice, then the real server: the sync goes through.
    let busy_twice = BusyServer::start(&server.addr, 2);
    reporter.set_server(&busy_twice.url);
    let printed = reporter.ok(&["sync"]);
    assert!(printed.contains("sent 1 changes"), "{printed}");
    assert!(busy_twice.requests() >= 3, "{}", busy_twice.requests());

    // Busy for good: a few tries, then the user hears that nothing was lost.
    reporter.record("almaty", "Second arrest", &[]);
    let always = BusyServer::start(&server.addr, u64::MAX);
    reporter.set_server(&always.url);
    let out = reporter.run(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("busy"), "{message}");
    assert!(
        message.contains("nothing was lost: 1 changes stay on this device"),
        "{message}"
    );
    assert_eq!(always.requests(), 4, "four tries of the one round");
}

#[test]
fn attachment_get_and_export_keep_the_clock_offset_they_learn() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    coordinator.share_new_key("almaty", &[]);
    let photo = coordinator.dir.path().join("photo.jpg");
    std::fs::write(&photo, b"not really a photo").unwrap();
    let report = coordinator.record(
        "almaty",
        "Arrest at the bus stop",
        &["--attach", photo.to_str().unwrap()],
    );
    coordinator.ok(&["sync"]);
    let listed = coordinator.attachments(&report);
    assert_eq!(listed[0]["waiting_for_upload"], Value::Bool(false));
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let offset = || coordinator.clock_offset();
    let skewed = |args: &[&str]| {
        let mut all = vec!["--simulate-clock-skew", "-86400"];
        all.extend_from_slice(args);
        coordinator.run(&all)
    };

    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("photo.jpg");
    let got = skewed(&["attachment", "get", &id, "--out", target.to_str().unwrap()]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"not really a photo");
    assert!((offset() - 86400).abs() <= 60, "offset kept: {}", offset());

    // Kept: the next command signs right from its first request.
    let again = skewed(&[
        "attachment",
        "get",
        &id,
        "--out",
        out_dir.path().join("again.jpg").to_str().unwrap(),
    ]);
    assert!(again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        !said.contains("the server says this device's clock"),
        "{said}"
    );

    // The same for an export with its attachments, from a clock off the
    // other way.
    let ahead = |args: &[&str]| {
        let mut all = vec!["--simulate-clock-skew", "86400"];
        all.extend_from_slice(args);
        coordinator.run(&all)
    };
    let files = out_dir.path().join("files");
    let exported = ahead(&[
        "export",
        "--case",
        "almaty",
        "--format",
        "json",
        "--out",
        out_dir.path().join("export.json").to_str().unwrap(),
        "--with-attachments",
        files.to_str().unwrap(),
    ]);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert!(
        (offset() + 86400).abs() <= 60,
        "offset kept after export: {}",
        offset()
    );
}
