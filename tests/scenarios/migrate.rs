//! `fieldsync admin migrate`: a SQLite server's data directory moved into
//! PostgreSQL, an interrupted copy finished by running it again, and the
//! devices carrying on against the new server as if nothing happened.
//! Under `tests/with-s3-server` (as `./test` runs it) the attachments go
//! into the bucket too, checked by the migration's own read-back.

use std::process::Command;

use fieldsync_tests::blobs::{aws_env, ensure_test_bucket, fresh_prefix, s3_endpoint, TEST_BUCKET};
use fieldsync_tests::stores::{fresh_database, on_postgres, postgres_server};
use fieldsync_tests::{enrolled_device, fieldsync_bin, ServerProcess};

fn titles(timeline: &[serde_json::Value]) -> Vec<String> {
    let mut titles: Vec<String> = timeline
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    titles
}

/// Runs the migration, into the test bucket too when the scenarios have
/// an S3 server (`tests/with-s3-server`).
fn migrate(data: &str, url: &str, to_blobs: Option<&str>) -> serde_json::Value {
    let mut command = Command::new(fieldsync_bin());
    command.args([
        "admin",
        "migrate",
        "--from-data",
        data,
        "--to-database",
        url,
        "--json",
    ]);
    if let (Some(to), Some(endpoint)) = (to_blobs, s3_endpoint()) {
        command.args(["--to-blobs", to]).envs(aws_env(&endpoint));
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("migrate --json prints JSON")
}

fn inserted(summary: &serde_json::Value, table: &str) -> u64 {
    summary["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .and_then(|t| t["inserted"].as_u64())
        .unwrap()
}

#[test]
fn a_data_directory_moves_to_postgres_and_an_interrupted_copy_finishes_when_run_again() {
    if on_postgres() {
        println!("skipped: the source of a migration is a SQLite data directory");
        return;
    }
    let pg = postgres_server();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    // An operator's server of today: blobs in its data directory.
    let mut server = ServerProcess::start_with_prefix(dir.path(), "127.0.0.1:0", &[], None);
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    coordinator.share_new_key("almaty", &[&reporter]);
    let files = tempfile::tempdir().unwrap();
    let photo: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let photo_path = files.path().join("photo.jpg");
    std::fs::write(&photo_path, &photo).unwrap();
    let with_photo = reporter.record(
        "almaty",
        "Detention at the bus stop",
        &["--attach", photo_path.to_str().unwrap()],
    );
    for title in ["Second", "Third"] {
        reporter.record("almaty", title, &[]);
    }
    reporter.ok(&["sync"]);
    coordinator.ok(&["sync"]);
    coordinator.ok(&["edit", &with_photo, "--status", "verified"]);
    coordinator.ok(&["sync"]);
    let before = titles(&coordinator.timeline("almaty"));
    assert_eq!(before.len(), 3);
    server.kill();

    let url = fresh_database(&pg);
    let prefix = s3_endpoint().map(|endpoint| {
        ensure_test_bucket(&endpoint);
        fresh_prefix()
    });
    let to_blobs = prefix.as_ref().map(|p| format!("s3://{TEST_BUCKET}/{p}"));
    let to_blobs = to_blobs.as_deref();
    let first = migrate(&data, &url, to_blobs);
    assert_eq!(first["reports_checked"], 3, "{first}");
    assert_eq!(first["blobs_checked"], 1, "{first}");
    assert_eq!(
        first["blobs_copied"],
        u64::from(to_blobs.is_some()),
        "{first}"
    );
    assert!(inserted(&first, "changes") > 3, "{first}");

    // An interruption half-way through the feed: every later table empty,
    // half the changes missing.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "DELETE FROM timeline_tags; DELETE FROM blob_refs; DELETE FROM blobs;
             DELETE FROM uploads; DELETE FROM audit_log; DELETE FROM nonces;
             DELETE FROM web_sessions; DELETE FROM case_public_keys; DELETE FROM timeline;
             DELETE FROM changes WHERE seq > (SELECT max(seq) / 2 FROM changes);",
        )
        .unwrap();
    let again = migrate(&data, &url, to_blobs);
    assert!(inserted(&again, "changes") > 0, "{again}");
    assert_eq!(inserted(&again, "documents"), 0, "{again}");
    assert_eq!(again["reports_checked"], 3, "{again}");
    // And once more: nothing left to copy.
    let done = migrate(&data, &url, to_blobs);
    assert_eq!(done["blobs_copied"], 0, "{done}");
    assert!(
        done["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["inserted"] == 0),
        "{done}"
    );

    // The same address, now on PostgreSQL (and the bucket, when there is
    // one): the devices sync on, and new changes follow the copied ones in
    // the feed.
    let moved =
        ServerProcess::start_with_prefix(dir.path(), &server.addr, &["--database", &url], prefix);
    reporter.ok(&["sync"]);
    coordinator.ok(&["sync"]);
    assert_eq!(titles(&coordinator.timeline("almaty")), before);
    reporter.record("almaty", "After the move", &[]);
    reporter.ok(&["sync"]);
    coordinator.ok(&["sync"]);
    assert_eq!(coordinator.timeline("almaty").len(), 4);
    let listed = coordinator.attachments(&with_photo);
    let target = files.path().join("fetched.jpg");
    coordinator.fetch_attachment(listed[0]["id"].as_str().unwrap(), &target);
    assert_eq!(std::fs::read(&target).unwrap(), photo);
    drop(moved);
}
