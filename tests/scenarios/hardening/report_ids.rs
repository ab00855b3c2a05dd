//! Finding 10 of issue 14: another case's report id answered 500, and the
//! answers told a reporter whether another reporter's report id exists.
//! Report ids are global (128 random bits), so a device can name any
//! report id it learned. Now a report the device may not read (another
//! reporter's, or any report of another case) is answered exactly as a
//! report the server does not have, in sync and in uploads; only a second
//! creation under a taken id is refused, the same way whoever holds it.

use chrono::{DateTime, FixedOffset};
use fieldsync_core::protocol::{DocOffer, SyncRequest, PROTOCOL_VERSION};
use fieldsync_core::replica::Replica;
use fieldsync_core::{CaseId, DeviceKey, Edit, NewReport, ReportDocument, ReportId, SignedChange};
use fieldsync_server::blob_store::BlobId;
use fieldsync_tests::http::{device_key, send, signed_headers};
use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};
use serde_json::Value;

use crate::blob_api::{report_with_attachment, Device};

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

/// One raw sync round offering `changes` of report `id`; the status and
/// the answer for that report (without the feed: the cursor is past it).
fn offer(
    server: &ServerProcess,
    key: &DeviceKey,
    id: &ReportId,
    changes: Vec<SignedChange>,
) -> (u16, Value) {
    let request = SyncRequest {
        version: PROTOCOL_VERSION,
        cursor: u64::MAX,
        docs: vec![DocOffer {
            id: id.clone(),
            base_heads: vec![],
            changes,
        }],
    };
    let body = request.to_json();
    let headers = signed_headers(key, "POST", "/v1/sync", &body);
    let reply = send("POST", &server.url, "/v1/sync", &headers, &body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap_or(Value::String(reply.body));
    (reply.status, answer)
}

/// What the device learns of the offered report: status, and the
/// answer's changes, heads, completeness and refusals (reason, message).
fn seen(answer: &(u16, Value)) -> String {
    let (status, body) = answer;
    let doc = &body["docs"][0];
    let refused: Vec<(Value, Value)> = doc["refused"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| (r["reason"].clone(), r["message"].clone()))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{status} changes={} heads={} complete={} refused={refused:?} error={}",
        doc["changes"], doc["heads"], doc["complete"], body["error"]
    )
}

/// An edit by `key` of the report `doc` holds: it depends on the report's
/// changes, as an edit of a report the device got hold of would.
fn edit_of(doc: &fieldsync_core::replica::Replica, id: &ReportId, key: &DeviceKey) -> SignedChange {
    let mut report = ReportDocument::from_automerge(doc.document(id).unwrap());
    report
        .edit(
            key,
            &[Edit::SetTitle("hijacked".into())],
            t("2020-01-01T00:00:00Z"),
        )
        .unwrap()
        .unwrap()
}

/// A report `key` creates under `id` in `case`, never sent, and an edit
/// of it: the edit depends on a change the server does not have.
fn unsent_report(key: &DeviceKey, id: &ReportId, case: &str) -> (SignedChange, SignedChange) {
    let new = NewReport::new(
        id.clone(),
        case.parse::<CaseId>().unwrap(),
        "mine",
        t("2016-05-21T10:40:00+06:00"),
    );
    let (mut report, creation) =
        ReportDocument::create(key, &new, t("2020-01-01T00:00:00Z")).unwrap();
    let edit = report
        .edit(
            key,
            &[Edit::SetTitle("hijacked".into())],
            t("2020-01-01T00:00:01Z"),
        )
        .unwrap()
        .unwrap();
    (creation, edit)
}

#[test]
fn a_report_id_of_another_reporter_or_case_is_answered_as_one_the_server_lacks() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    let case_c = server.create_case("c");
    let case_d = server.create_case("d");
    let alice = enrolled_device(&server, "c", "reporter");
    let blob = BlobId::of(b"alice's photo").to_string();
    let taken: ReportId = report_with_attachment(&alice, "c", &blob, 13)
        .parse()
        .unwrap();
    let alice_replica = Replica::open(alice.dir.path()).unwrap();

    let bob: DeviceHome = enrolled_device(&server, "c", "reporter");
    let dora: DeviceHome = enrolled_device(&server, "d", "reporter");
    for (who, home, case) in [
        ("Bob, same case", &bob, &case_c),
        ("Dora, another case", &dora, &case_d),
    ] {
        let key = device_key(home.dir.path());
        // An edit of Alice's report, next to an edit of a report the
        // server has never seen.
        let lacking = ReportId::random().unwrap();
        let (_, lacking_edit) = unsent_report(&key, &lacking, case);
        let to_taken = offer(
            &server,
            &key,
            &taken,
            vec![edit_of(&alice_replica, &taken, &key)],
        );
        let to_lacking = offer(&server, &key, &lacking, vec![lacking_edit]);
        println!(
            "{who}: Alice's report {}\n{who}: no one's report {}",
            seen(&to_taken),
            seen(&to_lacking)
        );
        assert_eq!(to_taken.0, 200, "{who}: {}", seen(&to_taken));
        assert_eq!(
            seen(&to_taken),
            seen(&to_lacking),
            "{who}: the answers differ"
        );

        // Creating a report under Alice's id is refused, and not with 500.
        let (creation, _) = unsent_report(&key, &taken, case);
        let created = offer(&server, &key, &taken, vec![creation]);
        println!(
            "{who} creates a report under Alice's id: {}",
            seen(&created)
        );
        assert_eq!(created.0, 200, "{who}: {}", seen(&created));
        assert_eq!(created.1["docs"][0]["refused"][0]["reason"], "bad_creation");
        assert_eq!(created.1["docs"][0]["heads"], serde_json::json!([]));
    }
    // Bob and Dora are refused alike: nothing says which case holds it.
    let creation_answer = |home: &DeviceHome, case: &str| {
        let key = device_key(home.dir.path());
        let (creation, _) = unsent_report(&key, &taken, case);
        seen(&offer(&server, &key, &taken, vec![creation]))
    };
    assert_eq!(
        creation_answer(&bob, &case_c),
        creation_answer(&dora, &case_d)
    );

    // Uploads: another reporter's report answers as one not on the server.
    for (who, home) in [("Bob", &bob), ("Dora", &dora)] {
        let device = Device::of(&server, home);
        let lacking = ReportId::random().unwrap().to_string();
        let to_taken = device.create(&blob, taken.as_str(), 13);
        let to_lacking = device.create(&blob, &lacking, 13);
        let text = |r: &fieldsync_tests::http::Reply| {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            (
                r.status,
                v["error"]
                    .as_str()
                    .unwrap()
                    .replace(taken.as_str(), "ID")
                    .replace(&lacking, "ID"),
            )
        };
        println!(
            "{who} uploads to Alice's report: {:?}; to no one's: {:?}",
            text(&to_taken),
            text(&to_lacking)
        );
        assert_eq!(text(&to_taken), text(&to_lacking), "{who}");
    }

    // The review web app of another case's coordinator: Alice's report
    // is "no such report", as any id is.
    let coordinator = enrolled_device(&server, "d", "coordinator");
    let cookie = web_session(&server, &coordinator);
    let lacking = ReportId::random().unwrap();
    for route in ["", "/prepare", "/commit"] {
        let ask = |id: &ReportId| {
            let path = format!("/web/api/reports/{id}{route}");
            let method = if route.is_empty() { "GET" } else { "POST" };
            let headers = [
                ("Cookie", cookie.0.clone()),
                ("X-Fieldsync-CSRF", cookie.1.clone()),
                ("Content-Type", "application/json".to_owned()),
            ];
            let body = br#"{"edits":[{"op":"set_title","title":"x"}],"change":"","sig":""}"#;
            let reply = send(method, &server.url, &path, &headers, body);
            let error =
                serde_json::from_str::<Value>(&reply.body).unwrap_or_default()["error"].clone();
            (reply.status, error)
        };
        let (taken_answer, lacking_answer) = (ask(&taken), ask(&lacking));
        println!("web {route}: Alice's report {taken_answer:?}, no one's {lacking_answer:?}");
        assert_eq!(taken_answer, lacking_answer, "web {route}");
        assert_ne!(taken_answer.0, 500);
    }

    // Alice's report is untouched.
    alice.ok(&["sync"]);
    let shown: Value =
        serde_json::from_str(&alice.ok(&["show", taken.as_str(), "--json"])).unwrap();
    assert_eq!(shown["report"]["title"], "Arrest at the bus stop");
}

/// A review web session of `coordinator`: its cookie and CSRF token.
fn web_session(server: &ServerProcess, coordinator: &DeviceHome) -> (String, String) {
    let out: Value = serde_json::from_str(&coordinator.ok(&["web-login", "--json"])).unwrap();
    let link = out["link"].as_str().unwrap();
    let token = link
        .split_once('#')
        .unwrap()
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix("t="))
        .unwrap();
    let body = serde_json::json!({ "token": token }).to_string();
    let reply = send(
        "POST",
        &server.url,
        "/web/session",
        &[("Content-Type", "application/json".into())],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let cookie = reply
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me: Value = serde_json::from_str(&reply.body).unwrap();
    (cookie, me["csrf"].as_str().unwrap().to_owned())
}
