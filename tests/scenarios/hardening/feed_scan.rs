//! Finding 9: with `cursor: 0` a device made the server page through every
//! change of the case, loading each one's bytes, under the global write
//! lock. The feed is now read after the round's commit in a read
//! transaction, a reporter's through an index of the reports it created,
//! and one response looks at no more than a bounded number of entries.

use fieldsync_core::protocol::{SyncRequest, SyncResponse, PROTOCOL_VERSION};
use fieldsync_core::sync::server::DEFAULT_MAX_FEED_SCAN;
use fieldsync_core::{CaseId, NewReport, ReportId};
use fieldsync_server::Store;
use fieldsync_tests::http::{device_key, send, signed_headers};
use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};

const REPORTS: usize = 20_000;

fn empty_round(server: &ServerProcess, device: &DeviceHome, cursor: u64) -> SyncResponse {
    let key = device_key(device.dir.path());
    let body = SyncRequest {
        version: PROTOCOL_VERSION,
        cursor,
        docs: vec![],
    }
    .to_json();
    let reply = send(
        "POST",
        &server.url,
        "/v1/sync",
        &signed_headers(&key, "POST", "/v1/sync", &body),
        &body,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    SyncResponse::from_json(reply.body.as_bytes()).unwrap()
}

#[test]
fn a_round_from_cursor_zero_looks_at_a_bounded_part_of_the_feed() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    let case: CaseId = server.create_case("almaty").parse().unwrap();
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    let own = reporter.record("almaty", "the reporter's own report", &[]);
    reporter.ok(&["sync"]);

    // Twenty thousand reports the coordinator's key signed, in the store.
    let key = device_key(coordinator.dir.path());
    let now = chrono::Utc::now().fixed_offset();
    let store = Store::open(data.path()).unwrap();
    for chunk in (0..REPORTS).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| {
                let at = now - chrono::Duration::minutes(*i as i64);
                (
                    &key,
                    NewReport::new(
                        ReportId::random().unwrap(),
                        case.clone(),
                        format!("r{i}"),
                        at,
                    ),
                )
            })
            .collect();
        store.import_generated_reports(&batch, now).unwrap();
    }
    drop(store);

    // The coordinator's own changes are nothing to send it; before, one
    // round scanned all of them under the write lock and answered
    // `more: false`. Now each round looks at a bounded number of entries
    // and says there is more.
    let mut cursor = 0;
    let mut rounds = 0;
    loop {
        let response = empty_round(&server, &coordinator, cursor);
        rounds += 1;
        let advanced = response.cursor - cursor;
        assert!(
            advanced <= DEFAULT_MAX_FEED_SCAN as u64,
            "round {rounds} moved the cursor over {advanced} entries"
        );
        cursor = response.cursor;
        if !response.more {
            break;
        }
        assert!(rounds < 100, "the feed never ends");
    }
    println!("coordinator caught up over {REPORTS} of its own changes in {rounds} rounds");
    assert!(rounds > 1);
    assert!(cursor >= REPORTS as u64);

    // A reporter reads only the reports it created: its round from zero
    // finds nothing of the coordinator's twenty thousand, and one round
    // is enough.
    let response = empty_round(&server, &reporter, 0);
    assert!(!response.more);
    assert!(response.docs.is_empty(), "{:?}", response.docs.len());
    // A review of its own report still reaches it.
    coordinator.ok(&["sync"]);
    coordinator.ok(&["edit", &own, "--status", "verified", "--note", "seen"]);
    coordinator.ok(&["sync"]);
    reporter.ok(&["sync"]);
    let shown: serde_json::Value =
        serde_json::from_str(&reporter.ok(&["show", &own, "--json"])).unwrap();
    assert_eq!(shown["report"]["review"]["status"], "verified");
}
