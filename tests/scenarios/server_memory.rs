//! The server loads documents on demand: its memory does not grow with the
//! number of reports stored.

use std::time::{Duration, Instant};

use fieldsync_core::model::Place;
use fieldsync_core::protocol::{SyncResponse, DEFAULT_MAX_REQUEST_BYTES};
use fieldsync_core::sync::device::{PendingDoc, RequestBuilder};
use fieldsync_core::{CaseId, NewReport, ReportDocument, ReportId};
use fieldsync_tests::http::{device_key, send, signed_headers};
use fieldsync_tests::{enrolled_device, ServerProcess};

const REPORTERS: usize = 4;
const REPORTS: usize = 20_000;
const LIMIT_MIB: u64 = 100;

fn resident_kib(pid: u32) -> u64 {
    fieldsync_tests::proc_status_kib(pid, "VmRSS")
}

#[test]
fn idle_server_memory_stays_small_after_twenty_thousand_reports() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    let case: CaseId = server.create_case("big").parse().unwrap();
    let reporters: Vec<_> = (0..REPORTERS)
        .map(|_| enrolled_device(&server, "big", "reporter"))
        .collect();
    let started = Instant::now();
    let threads: Vec<_> = reporters
        .iter()
        .map(|home| {
            let key = device_key(home.dir.path());
            let url = server.url.clone();
            let case = case.clone();
            std::thread::spawn(move || {
                let now = chrono::Utc::now().fixed_offset();
                let mut pending: Vec<PendingDoc> = (0..REPORTS / REPORTERS)
                    .map(|i| {
                        let new = NewReport {
                            place: Place {
                                name: "Almaty".into(),
                                lat: Some(43.2),
                                lon: Some(76.9),
                            },
                            description: "A short account of what happened.".into(),
                            tags: vec!["arrest".into()],
                            ..NewReport::new(
                                ReportId::random().unwrap(),
                                case.clone(),
                                format!("report {i}"),
                                now,
                            )
                        };
                        let (_, change) = ReportDocument::create(&key, &new, now).unwrap();
                        PendingDoc {
                            id: new.id,
                            base_heads: vec![],
                            changes: vec![change],
                        }
                    })
                    .collect();
                let mut cursor = 0;
                while !pending.is_empty() {
                    let mut builder = RequestBuilder::new(cursor, DEFAULT_MAX_REQUEST_BYTES);
                    let mut taken = 0;
                    for doc in pending.iter().cloned() {
                        if !builder.offer(doc) {
                            break;
                        }
                        taken += 1;
                    }
                    pending.drain(..taken);
                    let body = builder.finish().request.to_json();
                    // 503 is the server's "busy, sync again in a moment"
                    // (twenty writers at once): do what it asks.
                    let mut tries = 0;
                    let reply = loop {
                        let reply = send(
                            "POST",
                            &url,
                            "/v1/sync",
                            &signed_headers(&key, "POST", "/v1/sync", &body),
                            &body,
                        );
                        tries += 1;
                        if reply.status != 503 || tries == 20 {
                            break reply;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    };
                    assert_eq!(reply.status, 200, "{}", reply.body);
                    cursor = SyncResponse::from_json(reply.body.as_bytes())
                        .unwrap()
                        .cursor;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let synced_in = started.elapsed();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.child.id())).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let kib = resident_kib(server.child.id());
    let db_bytes = std::fs::metadata(data.path().join("fieldsync.sqlite3"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "{REPORTS} reports from {REPORTERS} devices synced in {:.1}s (server CPU {:.1}s); idle server resident memory {:.1} MiB (limit {LIMIT_MIB} MiB); database {:.1} MiB",
        synced_in.as_secs_f64(),
        ticks as f64 / 100.0,
        kib as f64 / 1024.0,
        db_bytes as f64 / 1_048_576.0
    );
    assert!(kib < LIMIT_MIB * 1024, "idle server uses {kib} KiB");
}
