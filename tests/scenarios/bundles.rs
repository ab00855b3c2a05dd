//! Sync bundles: a reporter's work carried by hand to a coordinator while
//! the server is down the whole time, then relayed with the reporter's own
//! signatures; tampered, unknown and revoked bundles refused.

use fieldsync_tests::{enrolled_device, fieldsync_ok, DeviceHome, Rng, ServerProcess};
use serde_json::Value;

fn import(device: &DeviceHome, bundle: &std::path::Path) -> std::process::Output {
    device.run(&["import", bundle.to_str().unwrap()])
}

#[test]
fn a_bundle_carried_by_hand_reaches_the_server_with_the_reporters_signatures() {
    let mut rng = Rng::from_env_or_random();
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    let revoked = enrolled_device(&server, "almaty", "reporter");
    let code = coordinator.share_new_key("almaty", &[&reporter]);
    let data_dir = server.data.to_str().unwrap().to_owned();
    fieldsync_ok(&["admin", "--data", &data_dir, "revoke", &revoked.id]);
    // The coordinator learns the case's devices while it still can.
    coordinator.ok(&["sync"]);
    let latecomer = enrolled_device(&server, "almaty", "reporter");

    server.kill();
    let files = tempfile::tempdir().unwrap();
    let photo: Vec<u8> = (0..200_000).map(|_| rng.next_u64() as u8).collect();
    let photo_path = files.path().join("plate.jpg");
    std::fs::write(&photo_path, &photo).unwrap();
    let arrest = reporter.record(
        "almaty",
        "Arrest at the bus stop",
        &["--attach", photo_path.to_str().unwrap()],
    );
    let release = reporter.record("almaty", "Released", &[]);
    reporter.ok(&["edit", &release, "--append-text", "After 1:00 pm."]);
    let bundle = files.path().join("reporter.fsb");
    reporter.ok(&["bundle", "export", "--out", bundle.to_str().unwrap()]);

    // Tampered, unknown and revoked bundles are refused and change nothing.
    let mut tampered = std::fs::read(&bundle).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let tampered_path = files.path().join("tampered.fsb");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let out = import(&coordinator, &tampered_path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused"), "{stderr}");
    for (device, why) in [
        (&revoked, "revoked"),
        (&latecomer, "not enrolled in this case"),
    ] {
        device.record("almaty", "Offline report", &[]);
        let path = files.path().join(format!("{}.fsb", device.id));
        device.ok(&["bundle", "export", "--out", path.to_str().unwrap()]);
        let out = import(&coordinator, &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "a bundle from a device {why} was accepted"
        );
        assert!(stderr.contains(why), "{stderr}");
    }
    let timeline = coordinator.ok(&["timeline", "--case", "almaty", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&timeline).unwrap(),
        Value::Array(vec![])
    );

    // The real one applies, once: a second import adds nothing.
    let first = coordinator.ok(&["import", bundle.to_str().unwrap(), "--json"]);
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["new_reports"], 2);
    assert_eq!(first["attachments_queued"], 1);
    let again: Value =
        serde_json::from_str(&coordinator.ok(&["import", bundle.to_str().unwrap(), "--json"]))
            .unwrap();
    assert_eq!(again["new_changes"], 0);
    assert_eq!(again["attachments_queued"], 0);

    // The server comes back; the coordinator relays.
    server.restart();
    coordinator.ok(&["sync"]);
    let witness = enrolled_device(&server, "almaty", "coordinator");
    witness.ok(&["key", "add", "--case", "almaty", &code]);
    witness.ok(&["sync"]);
    for report in [&arrest, &release] {
        let shown: Value = serde_json::from_str(&witness.ok(&["show", report, "--json"])).unwrap();
        let history = shown["history"].as_array().unwrap();
        assert!(!history.is_empty());
        for change in history {
            assert_eq!(change["author"], reporter.id.as_str(), "{change}");
            assert_eq!(change["signature_verified"], true);
        }
    }
    let released: Value = serde_json::from_str(&witness.ok(&["show", &release, "--json"])).unwrap();
    assert!(released["report"]["description"]
        .as_str()
        .unwrap()
        .contains("After 1:00 pm."));
    let listed = witness.attachments(&arrest);
    let target = files.path().join("fetched.jpg");
    witness.fetch_attachment(listed[0]["id"].as_str().unwrap(), &target);
    assert_eq!(std::fs::read(&target).unwrap(), photo);

    // The reporter's own later sync overlaps the bundle and duplicates nothing.
    let synced: Value = serde_json::from_str(&reporter.ok(&["sync", "--json"])).unwrap();
    assert_eq!(synced["refused"], Value::Array(vec![]));
    assert_eq!(synced["attachments"]["failed"], Value::Array(vec![]));
    witness.ok(&["sync"]);
    let timeline: Value =
        serde_json::from_str(&witness.ok(&["timeline", "--case", "almaty", "--json"])).unwrap();
    let titles: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles
            .iter()
            .filter(|t| **t == "Arrest at the bus stop")
            .count(),
        1
    );
    assert_eq!(titles.iter().filter(|t| **t == "Released").count(), 1);
}
