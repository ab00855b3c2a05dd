//! Finding 6, keys at rest: a device home is readable by its owner only,
//! and a coordinator's laptop can keep its keys under a passphrase. A
//! seized laptop's home then gives up no key without the passphrase; a wrong
//! passphrase is a clear error that changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fieldsync_core::case_key::CaseSecret;
use fieldsync_core::replica::Replica;
use fieldsync_tests::{enrolled_device, fieldsync, fieldsync_ok, DeviceHome, ServerProcess};

/// Every file under `dir`, with its bytes and mode: the home as a seizure
/// would find it.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.insert(path.clone(), (Vec::new(), mode(&path)));
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else {
            out.insert(path.clone(), (std::fs::read(&path).unwrap(), mode(&path)));
        }
    }
    out
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode(_: &Path) -> u32 {
    0
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The keys a home holds in plain form, read before it has a passphrase:
/// the device key's Ed25519 seed (inside ring's PKCS#8 document) and each
/// case key.
fn raw_keys(home: &DeviceHome, case: &str) -> Vec<Vec<u8>> {
    let replica = Replica::open(home.dir.path()).unwrap();
    let pkcs8 = replica.device_key().unwrap().unwrap().pkcs8().to_vec();
    let mut keys = vec![pkcs8[16..48].to_vec()];
    keys.extend(
        replica
            .case_keys(case)
            .unwrap()
            .iter()
            .map(|k| k.bytes().to_vec()),
    );
    keys
}

/// A passphrase file, as a user would make it with `echo`.
fn passphrase_file(dir: &Path, name: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{passphrase}\n")).unwrap();
    path
}

struct Case {
    server: ServerProcess,
    coordinator: DeviceHome,
    reporter: DeviceHome,
    secrets: tempfile::TempDir,
    _data: tempfile::TempDir,
}

/// A case whose coordinator made the key, then set a passphrase from a file.
fn case_with_protected_coordinator() -> (Case, Vec<Vec<u8>>) {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let mut coordinator = enrolled_device(&server, "almaty", "coordinator");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    coordinator.share_new_key("almaty", &[&reporter]);
    coordinator.ok(&["key", "rotate", "--case", "almaty"]);
    let raw = raw_keys(&coordinator, "almaty");
    assert_eq!(raw.len(), 3, "device key and two case keys");
    let secrets = tempfile::tempdir().unwrap();
    coordinator.passphrase_file = Some(passphrase_file(
        secrets.path(),
        "pass",
        "correct horse battery staple",
    ));
    let set = coordinator.ok(&["device", "passphrase", "set"]);
    assert!(set.contains("passphrase set"), "{set}");
    (
        Case {
            server,
            coordinator,
            reporter,
            secrets,
            _data: data,
        },
        raw,
    )
}

#[test]
fn with_a_passphrase_set_no_key_is_in_the_home_and_the_coordinator_still_works() {
    let (case, raw) = case_with_protected_coordinator();
    let Case {
        coordinator,
        reporter,
        secrets,
        ..
    } = &case;

    // A seizure of the home finds no key in plain form in any file.
    for (path, (bytes, _)) in snapshot(coordinator.dir.path()) {
        for key in &raw {
            assert!(
                !contains(&bytes, key),
                "{} holds a key in plain form",
                path.display()
            );
        }
    }
    let status = coordinator.ok(&["device", "passphrase", "status"]);
    assert!(
        status.contains("set (argon2id, 65536 KiB, 3 passes, 1 lane(s))"),
        "{status}"
    );

    // The reporter sends a report with a photo; the coordinator, given the
    // passphrase file, syncs, opens the photo, records and reviews.
    let photo_bytes = b"a photo of the arrest, pretend JPEG".repeat(100);
    let photo = secrets.path().join("arrest.jpg");
    std::fs::write(&photo, &photo_bytes).unwrap();
    let report = reporter.record(
        "almaty",
        "Arrest at the bus stop",
        &["--attach", photo.to_str().unwrap()],
    );
    reporter.ok(&["sync"]);
    coordinator.ok(&["sync"]);
    let listed = coordinator.attachments(&report);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "arrest.jpg");
    let out = secrets.path().join("fetched.jpg");
    coordinator.fetch_attachment(listed[0]["id"].as_str().unwrap(), &out);
    assert_eq!(std::fs::read(&out).unwrap(), photo_bytes);
    coordinator.record(
        "almaty",
        "Statement of a witness",
        &["--attach", photo.to_str().unwrap()],
    );
    coordinator.ok(&["edit", &report, "--status", "verified", "--note", "seen"]);
    let synced: serde_json::Value =
        serde_json::from_str(&coordinator.ok(&["sync", "--json"])).unwrap();
    assert_eq!(synced["sent"], 3, "{synced}");
    assert_eq!(synced["refused"], serde_json::json!([]), "{synced}");
    assert_eq!(synced["attachments"]["uploaded"], 1, "{synced}");
    reporter.ok(&["sync"]);
    let seen = reporter.timeline("almaty");
    let reviewed = seen.iter().find(|r| r["id"] == report.as_str()).unwrap();
    assert_eq!(reviewed["review"]["status"], "verified");

    // Reading reports needs no key, so it does not ask; anything that
    // signs or opens an attachment says how to give the passphrase.
    let home = coordinator.path();
    let listed = fieldsync_ok(&["--home", home, "timeline", "--case", "almaty"]);
    assert!(listed.contains("Arrest at the bus stop"), "{listed}");
    fieldsync_ok(&["--home", home, "show", &report]);
    for args in [
        vec!["sync"],
        vec!["attachment", "list", report.as_str()],
        vec!["edit", report.as_str(), "--add-tag", "police"],
        vec!["key", "show", "--case", "almaty"],
    ] {
        let mut all = vec!["--home", home];
        all.extend_from_slice(&args);
        let out = fieldsync(&all);
        assert!(
            !out.status.success(),
            "{args:?} worked without the passphrase"
        );
        let err = stderr(&out);
        assert!(
            err.contains("protected by a passphrase") && err.contains("FIELDSYNC_PASSPHRASE_FILE"),
            "{args:?}: {err}"
        );
    }

    // Keys the home gains later are stored wrapped as well.
    let rotated = coordinator.ok(&["key", "rotate", "--case", "almaty"]);
    let code = rotated.lines().next().unwrap();
    let newest = CaseSecret::from_share_code(code).unwrap();
    for (path, (bytes, _)) in snapshot(coordinator.dir.path()) {
        assert!(
            !contains(&bytes, newest.bytes()),
            "{} holds the new key in plain form",
            path.display()
        );
    }
}

#[test]
fn a_wrong_passphrase_is_a_clear_error_and_leaves_the_home_byte_for_byte_as_it_was() {
    let (case, _) = case_with_protected_coordinator();
    let Case {
        coordinator,
        reporter,
        secrets,
        ..
    } = &case;
    let report = reporter.record("almaty", "Arrest at the bus stop", &[]);
    reporter.ok(&["sync"]);
    coordinator.ok(&["sync"]);
    let before = snapshot(coordinator.dir.path());

    let wrong = passphrase_file(secrets.path(), "wrong", "correct horse battery stapler");
    let home = coordinator.path();
    let photo = passphrase_file(secrets.path(), "photo.jpg", "not really a photo");
    for args in [
        vec!["sync"],
        vec![
            "record",
            "--case",
            "almaty",
            "--title",
            "x",
            "--at",
            "2016-05-21T10:40:00+06:00",
        ],
        vec![
            "record",
            "--case",
            "almaty",
            "--title",
            "x",
            "--at",
            "2016-05-21T10:40:00+06:00",
            "--attach",
            photo.to_str().unwrap(),
        ],
        vec!["edit", report.as_str(), "--status", "verified"],
        vec!["attachment", "list", report.as_str()],
        vec!["key", "show", "--case", "almaty"],
        vec!["key", "rotate", "--case", "almaty"],
        vec!["web-login"],
        vec!["export", "--case", "almaty", "--format", "json"],
        vec!["bundle", "export", "--out", "/dev/null"],
        vec!["device", "passphrase", "remove"],
        vec!["device", "passphrase", "change"],
    ] {
        let mut all = vec!["--home", home];
        all.extend_from_slice(&args);
        let out = fieldsync_tests::fieldsync_with_passphrase(&all, Some(&wrong));
        assert!(
            !out.status.success(),
            "{args:?} worked with a wrong passphrase"
        );
        assert!(
            stderr(&out).contains("wrong passphrase"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            snapshot(coordinator.dir.path()) == before,
            "{args:?} with a wrong passphrase changed the home"
        );
    }
}

#[test]
fn removing_the_passphrase_checks_it_and_leaves_a_home_that_needs_none() {
    let (case, raw) = case_with_protected_coordinator();
    let Case {
        mut coordinator,
        reporter,
        ..
    } = case;
    let removed = coordinator.ok(&["device", "passphrase", "remove"]);
    assert!(removed.contains("passphrase removed"), "{removed}");
    coordinator.passphrase_file = None;
    assert_eq!(raw_keys(&coordinator, "almaty"), raw, "every key is kept");
    let status = coordinator.ok(&["device", "passphrase", "status"]);
    assert!(status.contains("not set"), "{status}");
    let report = reporter.record("almaty", "Arrest at the bus stop", &[]);
    reporter.ok(&["sync"]);
    coordinator.ok(&["sync"]);
    coordinator.ok(&["edit", &report, "--status", "verified"]);
    coordinator.ok(&["sync"]);
    drop(case.server);
}

#[cfg(unix)]
#[test]
fn a_new_home_and_a_new_data_directory_are_owner_only() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("server-data");
    let data_arg = data.to_str().unwrap();
    fieldsync_ok(&["admin", "--data", data_arg, "case", "create", "almaty"]);
    let server = ServerProcess::start(&data, "127.0.0.1:0");
    // A home the CLI creates itself, in a directory that does not exist yet.
    let home = root.path().join("fresh-home");
    let home_arg = home.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--home", home_arg];
        all.extend_from_slice(args);
        fieldsync_ok(&all)
    };
    run(&["device", "init"]);
    let token = server.invite("almaty", "coordinator");
    run(&[
        "device",
        "enroll",
        "--server",
        &server.url,
        "--token",
        &token,
    ]);
    run(&["key", "new", "--case", "almaty"]);
    let photo = root.path().join("photo.jpg");
    std::fs::write(&photo, b"pixels".repeat(1000)).unwrap();
    let report = run(&[
        "record",
        "--case",
        "almaty",
        "--title",
        "Arrest",
        "--at",
        "2016-05-21T10:40:00+06:00",
        "--attach",
        photo.to_str().unwrap(),
    ]);
    let report = report.trim();
    // Before the upload the outbox holds the sealed file.
    let waiting = snapshot(&home);
    assert!(waiting
        .keys()
        .any(|p| p.parent().unwrap().ends_with("outbox")));
    run(&["sync"]);
    let listed: serde_json::Value =
        serde_json::from_str(&run(&["attachment", "list", report, "--json"])).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let out = root.path().join("out.jpg");
    run(&["attachment", "get", &id, "--out", out.to_str().unwrap()]);
    assert!(data.join("blobs").read_dir().unwrap().next().is_some());
    let seen: Vec<(PathBuf, u32)> = waiting
        .into_iter()
        .chain(snapshot(&home))
        .chain(snapshot(&data))
        .map(|(path, (_, m))| (path, m))
        .collect();
    assert!(seen
        .iter()
        .any(|(p, _)| p.ends_with("fieldsync.sqlite3-wal")));
    for (path, m) in seen {
        // The server's log is made by the test's helper, before the server
        // starts; the server tightens it then.
        let want = if std::fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            0o700
        } else {
            0o600
        };
        assert_eq!(m, want, "{} had mode {m:o}", path.display());
    }
    drop(server);
}

#[cfg(unix)]
#[test]
fn a_home_and_a_data_directory_readable_by_others_are_reported_and_tightened() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let home = enrolled_device(&server, "almaty", "reporter");
    drop(server);
    let replica = home.dir.path().join("replica.sqlite3");
    set_mode(home.dir.path(), 0o755);
    set_mode(&replica, 0o644);
    let out = home.run(&["timeline", "--case", "almaty"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for (path, was) in [(home.dir.path(), "0755"), (replica.as_path(), "0644")] {
        assert!(
            err.lines().any(|l| l.starts_with("warning: ")
                && l.contains(&format!("{} had mode {was}", path.display()))),
            "no warning for {}: {err}",
            path.display()
        );
    }
    assert_eq!(mode(home.dir.path()), 0o700);
    assert_eq!(mode(&replica), 0o600);
    let again = home.run(&["timeline", "--case", "almaty"]);
    assert!(!stderr(&again).contains("warning"), "{}", stderr(&again));

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let data_arg = data.to_str().unwrap();
    fieldsync_ok(&["admin", "--data", data_arg, "case", "create", "almaty"]);
    set_mode(&data, 0o755);
    set_mode(&data.join("fieldsync.sqlite3"), 0o644);
    let out = fieldsync(&["admin", "--data", data_arg, "devices"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{} had mode 0755", data.display())),
        "{err}"
    );
    assert!(err.contains("fieldsync.sqlite3 had mode 0644"), "{err}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("fieldsync.sqlite3")), 0o600);
}
