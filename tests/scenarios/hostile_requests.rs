//! Invariant 6 over HTTP: replayed, forged, oversized and garbage requests
//! are refused with the right status and a message that says what is
//! wrong, and the store is byte-for-byte unchanged (compared by dump).

use fieldsync_core::document::NewReport;
use fieldsync_core::protocol::{DocOffer, SyncRequest, PROTOCOL_VERSION};
use fieldsync_core::replica::Replica;
use fieldsync_core::{CaseId, ReportDocument, ReportId, SignedChange};
use fieldsync_tests::http::{device_key, send, signed_headers, Reply};
use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};

fn check(name: &str, reply: &Reply, status: u16, says: &str) {
    assert_eq!(reply.status, status, "{name}: {}", reply.body);
    let body: serde_json::Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|_| panic!("{name}: not JSON: {}", reply.body));
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "{name}: {message:?} should say {says:?}"
    );
    println!("{name}: {status} {message}");
}

/// Signs `body` as `key` and POSTs it to `/v1/sync`.
fn post_sync(server: &ServerProcess, key: &fieldsync_core::DeviceKey, body: &[u8]) -> Reply {
    send(
        "POST",
        &server.url,
        "/v1/sync",
        &signed_headers(key, "POST", "/v1/sync", body),
        body,
    )
}

#[test]
fn hostile_requests_are_refused_and_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    let case: CaseId = server.create_case("c").parse().unwrap();
    let alice = enrolled_device(&server, "c", "reporter");
    let bob = enrolled_device(&server, "c", "reporter");
    alice.ok(&[
        "record",
        "--case",
        "c",
        "--title",
        "t",
        "--at",
        "2016-05-21T10:00:00+06:00",
    ]);
    let key = device_key(alice.dir.path());
    let store = fieldsync_tests::stores::TestStore::open(data.path());

    // A valid request, then the same bytes and headers again.
    let replica = Replica::open(alice.dir.path()).unwrap();
    let body = replica.prepare_sync(1 << 20).unwrap().request.to_json();
    drop(replica);
    let headers = signed_headers(&key, "POST", "/v1/sync", &body);
    assert_eq!(
        send("POST", &server.url, "/v1/sync", &headers, &body).status,
        200
    );
    let before = store.dump();
    check(
        "replayed request",
        &send("POST", &server.url, "/v1/sync", &headers, &body),
        401,
        "replayed",
    );
    assert_eq!(store.dump(), before, "replay changed the store");

    // A request signature that does not verify.
    let mut headers = signed_headers(&key, "POST", "/v1/sync", &body);
    let sig = headers
        .iter_mut()
        .find(|(n, _)| *n == "x-fieldsync-signature")
        .unwrap();
    use base64::Engine;
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(&sig.1)
        .unwrap();
    raw[10] ^= 0x40;
    sig.1 = base64::engine::general_purpose::STANDARD.encode(raw);
    check(
        "wrong signature",
        &send("POST", &server.url, "/v1/sync", &headers, &body),
        401,
        "signature does not verify",
    );
    assert_eq!(store.dump(), before);

    // Alice passes a change off as Bob's: Bob's actor id, Alice's signature.
    let bob_key = device_key(bob.dir.path());
    let new = NewReport::new(
        ReportId::random().unwrap(),
        case,
        "forged",
        chrono::DateTime::parse_from_rfc3339("2016-05-21T10:00:00+06:00").unwrap(),
    );
    let (_, by_bob) =
        ReportDocument::create(&bob_key, &new, chrono::Utc::now().fixed_offset()).unwrap();
    let hash = by_bob.verify().unwrap().hash();
    let forged = SignedChange {
        bytes: by_bob.bytes.clone(),
        signature: key
            .sign(fieldsync_core::identity::Domain::Change, &hash.0)
            .as_bytes()
            .to_vec(),
    };
    let request = SyncRequest {
        version: PROTOCOL_VERSION,
        cursor: 0,
        docs: vec![DocOffer {
            id: new.id.clone(),
            base_heads: vec![],
            changes: vec![forged],
        }],
    };
    let body = request.to_json();
    check(
        "forged actor id",
        &post_sync(&server, &key, &body),
        400,
        "signature does not verify",
    );
    assert_eq!(store.dump(), before);

    // A token used twice.
    let token = server.invite("c", "reporter");
    let first = DeviceHome::new();
    assert!(first.enroll(&server, &token).status.success());
    let before = store.dump();
    let reused = DeviceHome::new().enroll(&server, &token);
    assert!(!reused.status.success());
    let message = String::from_utf8_lossy(&reused.stderr);
    assert!(
        message.contains("403") && message.contains("already been used"),
        "{message}"
    );
    assert_eq!(store.dump(), before);

    // A body over the server's 1 MiB bound.
    let big = vec![b' '; 2 << 20];
    check(
        "oversized body",
        &post_sync(&server, &key, &big),
        413,
        "over the server's limit",
    );
    assert_eq!(store.dump(), before);

    // Garbage.
    let garbage = b"{\"version\":1,\"cursor\":\"lots\"".to_vec();
    check(
        "garbage body",
        &post_sync(&server, &key, &garbage),
        400,
        "not valid sync JSON",
    );
    assert_eq!(store.dump(), before);

    // No signature at all, and a device the server does not know.
    check(
        "unsigned",
        &send("POST", &server.url, "/v1/sync", &[], b"{}"),
        401,
        "x-fieldsync-device",
    );
    let stranger = fieldsync_core::DeviceKey::generate().unwrap();
    let headers = signed_headers(&stranger, "POST", "/v1/sync", b"{}");
    check(
        "unknown device",
        &send("POST", &server.url, "/v1/sync", &headers, b"{}"),
        401,
        "not enrolled",
    );
    assert_eq!(store.dump(), before);

    // Refusals before authentication are logged, never written to the
    // database (issue 14, finding 8); nothing holds report contents.
    let audit = store.audit_log();
    assert!(audit
        .iter()
        .all(|(_, event, _, _)| event != "request-refused"));
    assert!(audit
        .iter()
        .all(|(_, _, _, detail)| !detail.contains("forged")));
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("unauthenticated request refused") && l.contains("replayed")),
        "{log}"
    );
}

#[test]
fn the_timeline_api_is_for_coordinators() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("c");
    let reporter = enrolled_device(&server, "c", "reporter");
    let coord = enrolled_device(&server, "c", "coordinator");
    for (title, at, tag) in [
        ("late", "2016-05-21T13:00:00+06:00", "release"),
        ("early", "2016-05-21T10:40:00+06:00", "arrest"),
    ] {
        reporter.ok(&[
            "record", "--case", "c", "--title", title, "--at", at, "--tag", tag,
        ]);
    }
    reporter.ok(&["sync"]);

    let path = "/v1/timeline?limit=1";
    let reply = send(
        "GET",
        &server.url,
        path,
        &signed_headers(&device_key(reporter.dir.path()), "GET", path, b""),
        b"",
    );
    check(
        "reporter reads the case timeline",
        &reply,
        403,
        "coordinators",
    );

    let key = device_key(coord.dir.path());
    let reply = send(
        "GET",
        &server.url,
        path,
        &signed_headers(&key, "GET", path, b""),
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let page: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(page["reports"][0]["title"], "early");
    let next = page["next"].as_str().unwrap();
    let path = format!("/v1/timeline?limit=1&after={next}");
    let page: serde_json::Value = serde_json::from_str(
        &send(
            "GET",
            &server.url,
            &path,
            &signed_headers(&key, "GET", &path, b""),
            b"",
        )
        .body,
    )
    .unwrap();
    assert_eq!(page["reports"][0]["title"], "late");
    let path = "/v1/timeline?tag=release";
    let page: serde_json::Value = serde_json::from_str(
        &send(
            "GET",
            &server.url,
            path,
            &signed_headers(&key, "GET", path, b""),
            b"",
        )
        .body,
    )
    .unwrap();
    assert_eq!(page["reports"].as_array().unwrap().len(), 1);
    assert_eq!(page["reports"][0]["title"], "late");
}

#[test]
fn the_server_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), "127.0.0.1:0");
    assert_eq!(send("GET", &server.url, "/healthz", &[], b"").body, "ok\n");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "server exited with {exit} on SIGTERM");
}
