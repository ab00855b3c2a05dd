//! A device whose clock is a day off still syncs: the server's refusal
//! says by how much, the CLI corrects the time it signs with, keeps the
//! offset in the device home, retries, and tells the user. The times the
//! reporter recorded are kept exactly as recorded.

use fieldsync_tests::{enrolled_device, ServerProcess};
use serde_json::Value;

const DAY: i64 = 86_400;

#[test]
fn a_device_whose_clock_is_a_day_off_still_syncs_and_keeps_its_times() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let skew = format!("{}", -DAY);
    let skewed = |args: &[&str]| {
        let mut all = vec!["--simulate-clock-skew", skew.as_str()];
        all.extend_from_slice(args);
        reporter.run(&all)
    };

    let id = reporter.record(
        "almaty",
        "Arrest at the bus stop",
        &["--approximate", "--text", "Aleksey was arrested."],
    );
    reporter.ok(&[
        "edit",
        &id,
        "--timeline",
        "2016-05-21T13:00:00+06:00 released",
    ]);
    let recorded: Value = serde_json::from_str(&reporter.ok(&["show", &id, "--json"])).unwrap();

    // A day behind: the first request is refused, corrected and retried.
    let out = skewed(&["sync"]);
    let message = String::from_utf8_lossy(&out.stderr);
    println!("sync a day behind: {message}");
    assert!(out.status.success(), "{message}");
    assert!(
        message.contains("this device's clock is 24 hours behind the server's"),
        "{message}"
    );
    // The offset is kept: the next sync signs right at once, and says nothing.
    reporter.ok(&["edit", &id, "--append-text", " Two officers."]);
    let out = skewed(&["sync"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The report arrived with every recorded time as recorded.
    coordinator.ok(&["sync"]);
    let there: Value = serde_json::from_str(&coordinator.ok(&["show", &id, "--json"])).unwrap();
    let (mine, theirs) = (&recorded["report"], &there["report"]);
    assert_eq!(theirs["occurred_at"], "2016-05-21T10:40:00+06:00");
    assert_eq!(theirs["occurred_at"], mine["occurred_at"]);
    assert_eq!(theirs["approximate"], true);
    assert_eq!(theirs["created_at"], mine["created_at"]);
    assert_eq!(theirs["timeline"], mine["timeline"]);
    assert_eq!(theirs["description"], "Aleksey was arrested. Two officers.");
    let times = |shown: &Value| -> Vec<Value> {
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["time"].clone())
            .collect()
    };
    assert_eq!(times(&there)[..2], times(&recorded)[..]);

    // Its clock set right again, the device notices and drops the offset.
    let out = reporter.run(&["sync"]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{message}");
    assert!(message.contains("clock now agrees"), "{message}");
}

#[test]
fn a_clock_refusal_carries_the_skew_and_the_servers_time() {
    use fieldsync_core::identity::DeviceKey;
    use fieldsync_core::request_auth::RequestAuth;

    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let token = server.invite("almaty", "reporter");
    let key = DeviceKey::generate().unwrap();
    let body = serde_json::to_vec(&serde_json::json!({
        "token": token,
        "public_key": hex::encode(key.public_key().as_bytes()),
    }))
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let auth = RequestAuth::sign(&key, "POST", "/v1/enroll", &body, now + DAY).unwrap();
    let headers: Vec<(&str, String)> = auth.headers().to_vec();
    let reply = fieldsync_tests::http::send("POST", &server.url, "/v1/enroll", &headers, &body);
    assert_eq!(reply.status, 401, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    let skew = answer["clock_skew_secs"].as_i64().unwrap();
    assert!((DAY - 5..=DAY).contains(&skew), "{answer}");
    let server_time = answer["server_time"].as_i64().unwrap();
    assert!((server_time - now).abs() < 60, "{answer}");
    // Any other refusal carries no skew.
    let auth = RequestAuth::sign(&key, "POST", "/v1/enroll", b"{}", now).unwrap();
    let headers: Vec<(&str, String)> = auth.headers().to_vec();
    let reply = fieldsync_tests::http::send("POST", &server.url, "/v1/enroll", &headers, &body);
    assert_eq!(reply.status, 401);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    assert!(answer.get("clock_skew_secs").is_none(), "{answer}");
}
