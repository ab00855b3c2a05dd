//! The operators' metrics (`serve --metrics-listen`, `server/src/metrics.rs`)
//! against a real `fieldsync serve`: served on their own listener only,
//! never on the public one; requests counted by route pattern, not by
//! path; a sync's changes and time; uploads in progress, also after a
//! restart.

use fieldsync_server::blob_store::BlobId;
use fieldsync_tests::http::{send, Reply};
use fieldsync_tests::{enrolled_device, Rng, ServerProcess};

use crate::blob_api::{random_bytes, report_with_attachment, Device};

/// A server with its metrics on a second port of its own.
fn start(data: &std::path::Path) -> ServerProcess {
    ServerProcess::start_with(data, "127.0.0.1:0", &["--metrics-listen", "127.0.0.1:0"])
}

/// The metrics listener's `http://ADDR` (its URL without `/metrics`).
fn metrics_base(server: &ServerProcess) -> String {
    let url = server
        .metrics_url
        .as_deref()
        .expect("the server printed its metrics address");
    url.strip_suffix("/metrics")
        .unwrap_or_else(|| panic!("{url} ends in /metrics"))
        .to_owned()
}

/// One scrape, checked to be a Prometheus text exposition.
fn scrape(server: &ServerProcess) -> String {
    let reply = send("GET", &metrics_base(server), "/metrics", &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    reply.body
}

/// The value of the sample named exactly `series`, name and labels.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The count of requests to `route` with `method` answered `status`.
fn requests(text: &str, route: &str, method: &str, status: u16) -> f64 {
    sample(
        text,
        &format!(
            "fieldsync_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
        ),
    )
    .unwrap_or(0.0)
}

fn changes_stored(text: &str) -> f64 {
    sample(text, "fieldsync_changes_stored_total").expect("the changes counter")
}

fn sync_rounds_timed(text: &str) -> f64 {
    sample(text, "fieldsync_sync_round_duration_seconds_count").expect("the sync histogram")
}

fn uploads_in_progress(text: &str) -> f64 {
    sample(text, "fieldsync_uploads_in_progress").expect("the uploads gauge")
}

/// Changes in the server's database, counted by SQL beside the server.
fn changes_in_database(server: &ServerProcess) -> f64 {
    let db = rusqlite::Connection::open_with_flags(
        server.data.join(fieldsync_server::store::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT count(*) FROM changes", [], |r| r.get::<_, i64>(0))
        .unwrap() as f64
}

fn check_not_found(name: &str, reply: &Reply) {
    assert_eq!(reply.status, 404, "{name}: {}", reply.body);
    assert!(
        !reply.body.contains("fieldsync_"),
        "{name} shows metrics: {}",
        reply.body
    );
}

#[test]
fn metrics_are_served_on_their_own_listener_and_never_on_the_public_one() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path());
    assert_ne!(metrics_base(&server), server.url);

    check_not_found(
        "GET /metrics on the public listener",
        &send("GET", &server.url, "/metrics", &[], b""),
    );
    check_not_found(
        "GET /healthz on the metrics listener",
        &send("GET", &metrics_base(&server), "/healthz", &[], b""),
    );
    // Paths a client makes up are one label value, whatever they say.
    for path in ["/v1/nothing-here-7f3a", "/.env", "/admin-9c1e"] {
        send("GET", &server.url, path, &[], b"");
    }
    assert_eq!(
        send("GET", &server.url, "/healthz", &[], b"").status,
        200,
        "the public listener serves as usual"
    );

    let text = scrape(&server);
    println!("{text}");
    assert_eq!(requests(&text, "/healthz", "GET", 200), 1.0, "{text}");
    assert_eq!(requests(&text, "unmatched", "GET", 404), 4.0, "{text}");
    for made_up in ["nothing-here", "9c1e", "/metrics\""] {
        assert!(!text.contains(made_up), "{made_up} is a label:\n{text}");
    }
    assert_eq!(
        sample(&text, "fieldsync_store_pool_max_connections"),
        Some(16.0)
    );
    assert!(
        sample(&text, "fieldsync_store_pool_connections{state=\"in_use\"}").is_some(),
        "{text}"
    );
    assert_eq!(
        sample(&text, "fieldsync_sync_rounds{state=\"waiting\"}"),
        Some(0.0)
    );

    // Without the flag there is no metrics listener, and the public one
    // still has no /metrics.
    let plain_data = tempfile::tempdir().unwrap();
    let plain = ServerProcess::start(plain_data.path(), "127.0.0.1:0");
    assert!(plain.metrics_url.is_none());
    check_not_found(
        "GET /metrics without --metrics-listen",
        &send("GET", &plain.url, "/metrics", &[], b""),
    );
}

#[test]
fn a_sync_shows_the_changes_it_stored_its_time_and_its_route() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path());
    server.create_case("c");
    let reporter = enrolled_device(&server, "c", "reporter");
    for title in ["Detained at the square", "Van with no plates", "Released"] {
        reporter.record("c", title, &[]);
    }
    let before = scrape(&server);
    assert_eq!(changes_stored(&before), 0.0);
    assert_eq!(sync_rounds_timed(&before), 0.0);
    assert_eq!(requests(&before, "/v1/enroll", "POST", 200), 1.0);

    reporter.ok(&["sync"]);
    let stored = changes_in_database(&server);
    assert!(stored >= 3.0, "three reports make at least three changes");
    let after = scrape(&server);
    assert_eq!(changes_stored(&after), stored, "{after}");
    let rounds = sync_rounds_timed(&after);
    assert!(rounds >= 1.0, "{after}");
    assert!(
        sample(&after, "fieldsync_sync_round_duration_seconds_sum").unwrap() > 0.0,
        "{after}"
    );
    assert!(
        requests(&after, "/v1/sync", "POST", 200) >= rounds,
        "{after}"
    );

    // Nothing new: the rounds are timed, and nothing more is stored. A
    // coordinator that receives every change stores none either.
    reporter.ok(&["sync"]);
    let coordinator = enrolled_device(&server, "c", "coordinator");
    coordinator.ok(&["sync"]);
    assert_eq!(coordinator.timeline("c").len(), 3);
    let again = scrape(&server);
    assert_eq!(changes_stored(&again), stored, "{again}");
    assert_eq!(changes_in_database(&server), stored);
    assert!(sync_rounds_timed(&again) >= rounds + 2.0, "{again}");

    // A coordinator's edit is one more change.
    let report = &coordinator.timeline("c")[0];
    let id = report["id"].as_str().unwrap();
    coordinator.ok(&["edit", id, "--add-tag", "verified"]);
    coordinator.ok(&["sync"]);
    let edited = scrape(&server);
    assert_eq!(changes_stored(&edited), stored + 1.0, "{edited}");
}

#[test]
fn uploads_in_progress_rise_and_fall_and_are_right_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut server = start(data.path());
    server.create_case("c");
    let reporter = enrolled_device(&server, "c", "reporter");
    let bytes = random_bytes(&mut Rng::from_env_or_random(), 200_001);
    let blob = BlobId::of(&bytes).to_string();
    let report = report_with_attachment(&reporter, "c", &blob, bytes.len() as u64);
    assert_eq!(uploads_in_progress(&scrape(&server)), 0.0);

    let location = Device::of(&server, &reporter).created(&blob, &report, bytes.len() as u64);
    assert_eq!(uploads_in_progress(&scrape(&server)), 1.0);
    Device::of(&server, &reporter).upload_from(&location, &bytes[..100_000], 0, 100_000);
    assert_eq!(uploads_in_progress(&scrape(&server)), 1.0);

    // The gauge is the store's count, not the process's memory.
    server.restart();
    assert_eq!(uploads_in_progress(&scrape(&server)), 1.0);

    // The rest in two PATCHes: 100,000 bytes, then the last byte.
    let device = Device::of(&server, &reporter);
    device.upload_from(&location, &bytes, 100_000, 100_000);
    assert_eq!(device.head(&location).status, 200);
    let text = scrape(&server);
    assert_eq!(uploads_in_progress(&text), 0.0, "{text}");
    assert_eq!(
        requests(&text, "/v1/uploads/{id}", "PATCH", 204),
        2.0,
        "counted since the restart: {text}"
    );
    assert_eq!(requests(&text, "/v1/uploads/{id}", "HEAD", 200), 1.0);
    let upload_id = location.trim_start_matches("/v1/uploads/");
    assert!(
        !text.contains(upload_id),
        "the upload id is a label:\n{text}"
    );
}
