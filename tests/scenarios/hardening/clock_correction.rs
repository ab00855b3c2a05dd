//! Finding 10 of issue 14: the CLI adopted any `clock_skew_secs` from an
//! error body, which is not authenticated: whoever answers for the server
//! (or sits on a plain-http path) could set the device's signing clock
//! years off. Now a correction beyond 48 hours is refused with a message
//! saying to set the device's clock, and one within it is announced.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use fieldsync_core::replica::Replica;
use fieldsync_tests::{enrolled_device, ServerProcess};

const TEN_YEARS: i64 = 10 * 365 * 86_400;

/// A loopback HTTP responder that refuses every request for its time,
/// saying it is `skew_secs` off, and records each request's signed
/// timestamp.
struct ClockLiar {
    url: String,
    timestamps: Arc<Mutex<Vec<i64>>>,
}

impl ClockLiar {
    fn start(skew_secs: i64) -> ClockLiar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let timestamps = Arc::new(Mutex::new(Vec::new()));
        let seen = timestamps.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.trim();
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.parse().unwrap_or(0);
                    }
                    if name.eq_ignore_ascii_case("x-fieldsync-timestamp") {
                        seen.lock().unwrap().push(value.parse().unwrap_or(0));
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let answer = serde_json::json!({
                    "error": "the request's clock is off",
                    "server_time": chrono::Utc::now().timestamp(),
                    "clock_skew_secs": skew_secs,
                })
                .to_string();
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        ClockLiar { url, timestamps }
    }

    fn timestamps(&self) -> Vec<i64> {
        self.timestamps.lock().unwrap().clone()
    }
}

#[test]
fn a_clock_correction_of_ten_years_from_an_error_body_is_not_adopted() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("c");
    let reporter = enrolled_device(&server, "c", "reporter");
    reporter.record("c", "Arrest at the bus stop", &[]);

    // The device now talks to something that claims its clock is ten
    // years ahead.
    let liar = ClockLiar::start(TEN_YEARS);
    let mut replica = Replica::open(reporter.dir.path()).unwrap();
    replica.set_meta("server", &liar.url).unwrap();
    drop(replica);
    let out = reporter.run(&["sync"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("sync against the liar: {stderr}");
    assert!(!out.status.success());
    let now = chrono::Utc::now().timestamp();
    let signed = liar.timestamps();
    println!(
        "request timestamps, seconds from now: {:?}",
        signed.iter().map(|t| t - now).collect::<Vec<_>>()
    );
    assert!(!signed.is_empty());
    assert!(
        signed.iter().all(|t| (t - now).abs() < 3_600),
        "a request was signed with the liar's clock"
    );
    let kept = Replica::open(reporter.dir.path())
        .unwrap()
        .meta("clock_offset_secs")
        .unwrap();
    assert!(
        kept.as_deref().is_none_or(|k| k == "0"),
        "the offset was kept: {kept:?}"
    );
    assert!(stderr.contains("set this device's clock"), "{stderr}");

    // A correction within 48 hours is applied, and said so.
    let near = ClockLiar::start(-3 * 3_600);
    let mut replica = Replica::open(reporter.dir.path()).unwrap();
    replica.set_meta("server", &near.url).unwrap();
    drop(replica);
    let out = reporter.run(&["sync"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("sync against a server 3 hours ahead: {stderr}");
    let signed = near.timestamps();
    assert_eq!(signed.len(), 2, "refused, corrected, retried once");
    assert!((signed[1] - signed[0] - 3 * 3_600).abs() < 60, "{signed:?}");
    assert!(stderr.contains("3 hours behind"), "{stderr}");
}
