//! A case's time zone (`admin case create NAME --timezone ZONE`): devices
//! learn it when they enroll and on every sync, and `import` reads times
//! written without an offset in it when no `--timezone` is given, saying so
//! in its summary. Without a case zone the refusal stays as it was.

use fieldsync_tests::{enrolled_device, fieldsync, DeviceHome, ServerProcess};
use serde_json::Value;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../sync-core/tests/samples/almaty-2016-05-21-rally-arrests.txt"
);

fn admin(server: &ServerProcess, args: &[&str]) -> std::process::Output {
    let mut all = vec!["admin", "--data", server.data.to_str().unwrap()];
    all.extend_from_slice(args);
    fieldsync(&all)
}

/// `import --json ARGS`: the exit code, the summary of the one file, and
/// stderr.
fn import_json(device: &DeviceHome, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["import", "--json"];
    all.extend_from_slice(args);
    let out = device.run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summaries: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("import {args:?} printed no JSON: {stderr}"));
    (
        out.status.code().unwrap_or(-1),
        summaries[0].clone(),
        stderr,
    )
}

fn occurred_at(device: &DeviceHome, case: &str) -> String {
    let reports = device.timeline(case);
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports[0]["occurred_at"].as_str().unwrap().to_owned()
}

/// A server (in a temporary data directory) with the case `almaty`
/// created in Asia/Almaty time, and an enrolled coordinator's device.
fn coordinator_of_a_case_in_almaty_time() -> (tempfile::TempDir, ServerProcess, DeviceHome) {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    let created = admin(
        &server,
        &["case", "create", "almaty", "--timezone", "Asia/Almaty"],
    );
    assert!(created.status.success(), "{created:?}");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    (data, server, coordinator)
}

#[test]
fn an_import_without_timezone_uses_the_case_zone_and_says_so() {
    let (_data, _server, coordinator) = coordinator_of_a_case_in_almaty_time();

    let summary = coordinator.ok(&["import", "--case", "almaty", SAMPLE]);
    assert!(summary.contains("1 created"), "{summary}");
    assert!(
        summary.contains("Asia/Almaty") && summary.contains("case's time zone"),
        "the summary names the zone it read times in and where it came from:\n{summary}"
    );
    let at = occurred_at(&coordinator, "almaty");
    assert!(
        at.starts_with("2016-05-21T") && at.ends_with("+06:00"),
        "{at}"
    );
}

#[test]
fn a_zone_set_after_enrollment_reaches_the_device_on_its_next_sync() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");

    // No zone anywhere: refused as before, whole, naming --timezone.
    let (code, summary, stderr) = import_json(&coordinator, &["--case", "almaty", SAMPLE]);
    assert_ne!(code, 0, "{stderr}");
    let error = summary["error"].as_str().unwrap_or_default();
    assert!(error.contains("--timezone"), "{summary}");
    assert!(summary.get("timezone").is_none(), "{summary}");
    assert!(coordinator.timeline("almaty").is_empty());

    let set = admin(&server, &["case", "timezone", "almaty", "Asia/Almaty"]);
    assert!(set.status.success(), "{set:?}");
    // Not yet synced: the device does not know the zone.
    let (code, summary, _) = import_json(&coordinator, &["--case", "almaty", SAMPLE]);
    assert_ne!(code, 0, "{summary}");

    coordinator.ok(&["sync"]);
    let (code, summary, stderr) = import_json(&coordinator, &["--case", "almaty", SAMPLE]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["timezone"]["zone"], "Asia/Almaty", "{summary}");
    assert_eq!(summary["timezone"]["from"], "case", "{summary}");
    assert!(occurred_at(&coordinator, "almaty").ends_with("+06:00"));
}

#[test]
fn an_explicit_timezone_wins_over_the_case_zone() {
    let (_data, _server, coordinator) = coordinator_of_a_case_in_almaty_time();

    let (code, summary, stderr) = import_json(
        &coordinator,
        &["--case", "almaty", "--timezone", "+03:00", SAMPLE],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["timezone"]["from"], "option", "{summary}");
    assert!(occurred_at(&coordinator, "almaty").ends_with("+03:00"));
}

#[test]
fn an_unknown_zone_is_refused_and_no_case_is_made() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    let out = admin(
        &server,
        &["case", "create", "almaty", "--timezone", "Asia/Almatty"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Asia/Almatty") && stderr.contains("Asia/Almaty"),
        "the refusal names the bad zone and shows a good one: {stderr}"
    );
    // The name is still free: nothing was written.
    let again = admin(&server, &["case", "create", "almaty"]);
    assert!(again.status.success(), "{again:?}");
}

#[test]
fn an_unknown_case_is_named_and_the_cli_says_how_to_create_it() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    for args in [
        &["case", "timezone", "nope", "UTC"][..],
        &["invite", "--case", "nope", "--role", "reporter"][..],
    ] {
        let out = admin(&server, args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "there is no case named nope; create it with `fieldsync admin case create nope`"
            ),
            "{args:?}: {stderr}"
        );
    }
}
