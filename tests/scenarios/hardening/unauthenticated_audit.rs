//! Finding 8 of issue 14: 200 requests with random device ids wrote 200
//! audit rows, each in a write transaction. A request the server cannot
//! tie to an enrolled device's fresh signature now writes nothing to the
//! database: it is refused as before and logged, at a bounded rate.

use fieldsync_core::identity::DeviceKey;
use fieldsync_core::request_auth::RequestAuth;
use fieldsync_core::web_login::{LoginCertificate, SessionKey};
use fieldsync_server::Store;
use fieldsync_tests::http::{device_key, send, signed_headers};
use fieldsync_tests::{enrolled_device, ServerProcess};

const SYNC: &[u8] = br#"{"version":1,"cursor":0,"docs":[]}"#;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[test]
fn unauthenticated_requests_are_refused_and_write_no_audit_rows() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("c");
    let reporter = enrolled_device(&server, "c", "reporter");
    let store = Store::open(data.path()).unwrap();
    let rows_before = store.audit_log().unwrap().len();
    let sync = |headers: &[(&str, String)]| send("POST", &server.url, "/v1/sync", headers, SYNC);

    // 200 requests from devices the server has never seen.
    for _ in 0..200 {
        let stranger = DeviceKey::generate().unwrap();
        let reply = sync(&signed_headers(&stranger, "POST", "/v1/sync", SYNC));
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    // An enrolled device's id with a signature that does not verify, an
    // hour off, a replay of a request, and headers that are not a
    // signature at all.
    let key = device_key(reporter.dir.path());
    let mut forged = signed_headers(&key, "POST", "/v1/sync", SYNC);
    for (name, value) in forged.iter_mut() {
        if *name == "x-fieldsync-signature" {
            *value = value.chars().rev().collect();
        }
    }
    assert_eq!(sync(&forged).status, 401);
    let late = RequestAuth::sign(&key, "POST", "/v1/sync", SYNC, now() - 3600).unwrap();
    assert_eq!(sync(&late.headers()).status, 401);
    let fresh = signed_headers(&key, "POST", "/v1/sync", SYNC);
    assert_eq!(sync(&fresh).status, 200);
    assert_eq!(sync(&fresh).status, 401, "a replay");
    let garbage = [
        ("x-fieldsync-device", "not a device".to_owned()),
        ("x-fieldsync-signature", "%%%".to_owned()),
    ];
    assert_eq!(sync(&garbage).status, 401);
    // Enrollment with a made-up token, and a web login certified by a
    // key no device of this server has.
    for _ in 0..20 {
        let stranger = DeviceKey::generate().unwrap();
        let body = serde_json::json!({
            "token": "made-up-token",
            "public_key": hex::encode(stranger.public_key().as_bytes()),
        })
        .to_string();
        let headers = signed_headers(&stranger, "POST", "/v1/enroll", body.as_bytes());
        let reply = send("POST", &server.url, "/v1/enroll", &headers, body.as_bytes());
        assert_eq!(reply.status, 403, "{}", reply.body);
        let session = SessionKey::generate().unwrap();
        let at = now() as u64;
        let cert =
            LoginCertificate::issue(&stranger, &session.public_key(), at + 300, at + 3600).unwrap();
        let body = serde_json::json!({ "token": cert.to_token() }).to_string();
        let reply = send(
            "POST",
            &server.url,
            "/web/session",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 401, "{}", reply.body);
    }

    let rows = store.audit_log().unwrap().len() - rows_before;
    println!("audit rows written by 245 unauthenticated requests: {rows}");
    assert_eq!(rows, 0, "unauthenticated requests wrote to the audit log");

    // They are logged instead, at a bounded rate.
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    let lines = log
        .lines()
        .filter(|l| l.contains("unauthenticated request refused"))
        .count();
    println!("log lines about them: {lines}");
    assert!(lines > 0, "the refusals are not logged:\n{log}");
    assert!(lines <= 30, "{lines} lines logged in well under a minute");
}
