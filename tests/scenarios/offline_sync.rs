//! Reporters record offline with the CLI, sync to a real server over
//! loopback, and a coordinator sees one merged timeline.

use fieldsync_tests::{enrolled_device, fieldsync_ok, ServerProcess};
use serde_json::Value;

#[test]
fn reports_recorded_while_the_server_is_down_reach_the_coordinator_in_order() {
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let alice = enrolled_device(&server, "almaty", "reporter");
    let bob = enrolled_device(&server, "almaty", "reporter");
    let coord = enrolled_device(&server, "almaty", "coordinator");

    server.kill();
    let late = alice.ok(&[
        "record",
        "--case",
        "almaty",
        "--title",
        "Released from the district department",
        "--at",
        "2016-05-21T13:00:00+06:00",
        "--place",
        "Jetysuyskiy district",
        "--tag",
        "release",
    ]);
    let early = bob.ok(fieldsync_tests::BUS_STOP_ARREST);
    let middle = alice.ok(&[
        "record",
        "--case",
        "almaty",
        "--title",
        "Assembly at the central library",
        "--at",
        "2016-05-21T11:00:00+06:00",
    ]);
    bob.ok(&[
        "edit",
        early.trim(),
        "--append-text",
        " Two officers, no documents shown.",
        "--timeline",
        "2016-05-21T10:40:00+06:00 arrested at the bus stop",
    ]);

    let failed = alice.run(&["sync"]);
    assert!(
        !failed.status.success(),
        "sync against a stopped server must fail"
    );
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(message.contains("could not reach the server"), "{message}");
    assert!(
        message.contains("nothing was lost: 2 changes stay on this device"),
        "{message}"
    );

    server.restart();
    alice.ok(&["sync"]);
    bob.ok(&["sync"]);
    let summary: Value = serde_json::from_str(&coord.ok(&["sync", "--json"])).unwrap();
    assert_eq!(summary["new_reports"], 3);

    let timeline: Value =
        serde_json::from_str(&coord.ok(&["timeline", "--case", "almaty", "--json"])).unwrap();
    let ids: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![early.trim(), middle.trim(), late.trim()]);
    let arrest = &timeline[0];
    assert_eq!(arrest["title"], "Arrest at the bus stop");
    assert_eq!(arrest["occurred_at"], "2016-05-21T10:40:00+06:00");
    assert_eq!(arrest["approximate"], true);
    assert_eq!(arrest["place"]["name"], "Bus stop");
    assert_eq!(arrest["place"]["lat"], 43.25);
    assert_eq!(
        arrest["description"],
        "Aleksey was arrested. Two officers, no documents shown."
    );
    assert_eq!(arrest["tags"], serde_json::json!(["arrest"]));
    assert_eq!(arrest["people"][0]["name"], "Tulegen Shakirov");
    assert_eq!(arrest["people"][0]["role"], "officer");
    assert_eq!(arrest["people"][0]["note"], "car kz380KP02");
    assert_eq!(arrest["timeline"][0]["text"], "arrested at the bus stop");
    assert_eq!(arrest["created_by"], bob.id.as_str());
    assert_eq!(arrest["review"]["status"], "unverified");

    // Every change of the report is signed by the device that made it.
    let shown: Value = serde_json::from_str(&coord.ok(&["show", early.trim(), "--json"])).unwrap();
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    for change in history {
        assert_eq!(change["author"], bob.id.as_str());
        assert_eq!(change["signature_verified"], true);
    }
}

#[test]
fn offline_edits_of_one_description_by_coordinator_and_reporter_both_survive() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("evictions");
    let reporter = enrolled_device(&server, "evictions", "reporter");
    let coord = enrolled_device(&server, "evictions", "coordinator");
    let id = reporter.ok(&[
        "record",
        "--case",
        "evictions",
        "--title",
        "Eviction",
        "--at",
        "2020-03-01T08:00:00+01:00",
        "--text",
        "Bailiffs arrived. The family was removed.",
    ]);
    let id = id.trim();
    reporter.ok(&["sync"]);
    coord.ok(&["sync"]);
    reporter.ok(&[
        "edit",
        id,
        "--text",
        "Bailiffs arrived at 8:00. The family was removed.",
    ]);
    coord.ok(&[
        "edit",
        id,
        "--text",
        "Bailiffs arrived. The family was removed by force.",
    ]);
    reporter.ok(&["sync"]);
    coord.ok(&["sync"]);
    reporter.ok(&["sync"]);
    let expected = "Bailiffs arrived at 8:00. The family was removed by force.";
    for device in [&reporter, &coord] {
        let shown: Value = serde_json::from_str(&device.ok(&["show", id, "--json"])).unwrap();
        assert_eq!(shown["report"]["description"], expected);
    }
}

#[test]
fn reporters_see_only_their_own_reports_and_cannot_review() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("rally");
    let alice = enrolled_device(&server, "rally", "reporter");
    let bob = enrolled_device(&server, "rally", "reporter");
    let coord = enrolled_device(&server, "rally", "coordinator");
    let a = alice.ok(&[
        "record",
        "--case",
        "rally",
        "--title",
        "a",
        "--at",
        "2016-05-21T10:00:00+06:00",
    ]);
    let b = bob.ok(&[
        "record",
        "--case",
        "rally",
        "--title",
        "b",
        "--at",
        "2016-05-21T11:00:00+06:00",
    ]);
    for d in [&alice, &bob, &coord, &alice, &bob] {
        d.ok(&["sync"]);
    }
    let alice_sees: Value =
        serde_json::from_str(&alice.ok(&["timeline", "--case", "rally", "--json"])).unwrap();
    assert_eq!(alice_sees.as_array().unwrap().len(), 1);
    assert_eq!(alice_sees[0]["id"], a.trim());
    let coord_sees: Value =
        serde_json::from_str(&coord.ok(&["timeline", "--case", "rally", "--json"])).unwrap();
    assert_eq!(coord_sees.as_array().unwrap().len(), 2);

    let refused = alice.run(&["edit", a.trim(), "--status", "verified", "--note", "me"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("coordinators"));

    coord.ok(&[
        "edit",
        b.trim(),
        "--status",
        "verified",
        "--note",
        "two witnesses",
    ]);
    coord.ok(&["sync"]);
    bob.ok(&["sync"]);
    let shown: Value = serde_json::from_str(&bob.ok(&["show", b.trim(), "--json"])).unwrap();
    assert_eq!(shown["report"]["review"]["status"], "verified");
    assert_eq!(shown["report"]["review"]["note"], "two witnesses");
}

#[test]
fn a_revoked_device_is_refused_and_keeps_its_unsynced_reports() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("seized");
    let phone = enrolled_device(&server, "seized", "reporter");
    phone.ok(&[
        "record",
        "--case",
        "seized",
        "--title",
        "before",
        "--at",
        "2016-05-21T10:00:00+06:00",
    ]);
    phone.ok(&["sync"]);
    let after = phone.ok(&[
        "record",
        "--case",
        "seized",
        "--title",
        "after",
        "--at",
        "2016-05-21T12:00:00+06:00",
    ]);
    fieldsync_ok(&[
        "admin",
        "--data",
        data.path().to_str().unwrap(),
        "revoke",
        &phone.id,
    ]);
    let refused = phone.run(&["sync"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("403") && message.contains("revoked"),
        "{message}"
    );
    assert!(message.contains("nothing was lost"), "{message}");
    let shown: Value = serde_json::from_str(&phone.ok(&["show", after.trim(), "--json"])).unwrap();
    assert_eq!(shown["report"]["title"], "after");
    // A client in another language tells a revoked phone by the code, not
    // by the English words.
    let body = br#"{"version":1,"cursor":0,"docs":[]}"#;
    let key = fieldsync_tests::http::device_key(phone.dir.path());
    let reply = fieldsync_tests::http::send(
        "POST",
        &server.url,
        "/v1/sync",
        &fieldsync_tests::http::signed_headers(&key, "POST", "/v1/sync", body),
        body,
    );
    assert_eq!(reply.status, 403);
    let error: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(error["code"], "revoked", "{error}");
}

#[test]
fn values_that_begin_with_a_dash_are_values() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("winter");
    let device = enrolled_device(&server, "winter", "reporter");
    let id = device.ok(&[
        "record",
        "--case",
        "winter",
        "--title",
        "-20 degrees at the picket",
        "--at",
        "2020-01-10T07:00:00+06:00",
        "--text",
        "--- cold ---",
        "--lat",
        "-33.5",
        "--lon",
        "-70.6",
    ]);
    let shown: Value = serde_json::from_str(&device.ok(&["show", id.trim(), "--json"])).unwrap();
    assert_eq!(shown["report"]["title"], "-20 degrees at the picket");
    assert_eq!(shown["report"]["description"], "--- cold ---");
    assert_eq!(shown["report"]["place"]["lat"], -33.5);
}
