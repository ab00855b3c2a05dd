//! The sync round in both encodings on one server: the CLI device sends
//! CBOR, another device posts JSON as the phone app and devices from
//! before CBOR do, and they converge. The server answers in the encoding
//! it was asked in, and refuses a broken CBOR body with a JSON error.

use fieldsync_core::protocol::{SyncRequest, SyncResponse, WireEncoding};
use fieldsync_core::replica::Replica;
use fieldsync_tests::http::{device_key, signed_headers};
use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};
use serde_json::Value;

struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// POSTs `body`, signed as `home`'s device, to `/v1/sync` with
/// `content_type` (none: no header at all).
fn post_sync(
    server: &ServerProcess,
    home: &DeviceHome,
    body: &[u8],
    content_type: Option<&str>,
) -> Answer {
    let key = device_key(home.dir.path());
    let mut request = ureq::post(&format!("{}/v1/sync", server.url));
    for (name, value) in signed_headers(&key, "POST", "/v1/sync", body) {
        request = request.set(name, &value);
    }
    if let Some(content_type) = content_type {
        request = request.set("Content-Type", content_type);
    }
    let response = match request.send_bytes(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("sync request failed: {e}"),
    };
    let status = response.status();
    let content_type = response.header("Content-Type").map(str::to_owned);
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
    Answer {
        status,
        content_type,
        body,
    }
}

/// One sync round of `home`'s replica done by hand, the request in
/// `encoding` sent as `content_type`; the answer is absorbed.
fn round_by_hand(
    server: &ServerProcess,
    home: &DeviceHome,
    encoding: WireEncoding,
    content_type: Option<&str>,
) -> Answer {
    let mut replica = Replica::open(home.dir.path()).unwrap();
    let request: SyncRequest = replica.prepare_sync(1 << 20).unwrap().request;
    let answer = post_sync(server, home, &request.encode(encoding), content_type);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let answered_in = WireEncoding::from_content_type(answer.content_type.as_deref());
    let response = SyncResponse::decode(&answer.body, answered_in).unwrap();
    replica.complete_sync(&request, &response).unwrap();
    answer
}

fn description(home: &DeviceHome, id: &str) -> String {
    let shown: Value = serde_json::from_str(&home.ok(&["show", id, "--json"])).unwrap();
    shown["report"]["description"].as_str().unwrap().to_owned()
}

#[test]
fn a_cbor_device_and_a_json_device_converge_on_one_server() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let alice = enrolled_device(&server, "almaty", "reporter");
    let bob = enrolled_device(&server, "almaty", "reporter");
    let coord = enrolled_device(&server, "almaty", "coordinator");

    // Alice syncs with the CLI: CBOR.
    let alices = alice.record(
        "almaty",
        "Assembly at the library",
        &["--text", "Alice saw it."],
    );
    let synced: Value = serde_json::from_str(&alice.ok(&["sync", "--json"])).unwrap();
    assert_eq!(synced["sent"], 1, "{synced}");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    let syncs: Vec<&str> = log.lines().filter(|l| l.contains("api::sync")).collect();
    assert_eq!(syncs.len(), 1, "{log}");
    assert!(
        syncs[0].contains("Cbor"),
        "the CLI's sync was not CBOR: {}",
        syncs[0]
    );

    // Bob's device speaks JSON, as the phone app does.
    let bobs = bob.record(
        "almaty",
        "Arrest at the bus stop",
        &["--text", "Bob saw it."],
    );
    let answer = round_by_hand(&server, &bob, WireEncoding::Json, Some("application/json"));
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));

    // The coordinator (CBOR) gets both and edits both.
    coord.ok(&["sync"]);
    assert_eq!(description(&coord, &alices), "Alice saw it.");
    assert_eq!(description(&coord, &bobs), "Bob saw it.");
    for id in [&alices, &bobs] {
        coord.ok(&["edit", id, "--append-text", " Checked."]);
    }
    coord.ok(&["sync"]);

    // Each reporter takes the coordinator's edit, in its own encoding.
    alice.ok(&["sync"]);
    round_by_hand(&server, &bob, WireEncoding::Json, Some("application/json"));
    assert_eq!(description(&alice, &alices), "Alice saw it. Checked.");
    assert_eq!(description(&bob, &bobs), "Bob saw it. Checked.");
    assert_eq!(description(&coord, &bobs), "Bob saw it. Checked.");
    let pending = |home: &DeviceHome| {
        Replica::open(home.dir.path())
            .unwrap()
            .pending_change_count()
            .unwrap()
    };
    assert_eq!((pending(&alice), pending(&bob), pending(&coord)), (0, 0, 0));
}

#[test]
fn the_server_answers_in_the_encoding_it_was_asked_in() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("c");
    let dev = enrolled_device(&server, "c", "reporter");

    // CBOR in, CBOR out; parameters and case do not matter.
    dev.record("c", "first", &[]);
    let answer = round_by_hand(
        &server,
        &dev,
        WireEncoding::Cbor,
        Some("Application/CBOR; x=1"),
    );
    assert_eq!(answer.content_type.as_deref(), Some("application/cbor"));
    assert!(serde_json::from_slice::<Value>(&answer.body).is_err());

    // A client from before CBOR: JSON with no Content-Type, or with one
    // that names neither, gets JSON, as it always did.
    for content_type in [None, Some("text/plain")] {
        dev.record("c", "another", &[]);
        let answer = round_by_hand(&server, &dev, WireEncoding::Json, content_type);
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/json"),
            "{content_type:?}"
        );
    }

    // A broken CBOR body is refused with a JSON error that says so, and a
    // CBOR body sent as JSON is read as (bad) JSON.
    let replica = Replica::open(dev.dir.path()).unwrap();
    let mut body = replica.prepare_sync(1 << 20).unwrap().request.to_cbor();
    drop(replica);
    let as_json = post_sync(&server, &dev, &body, Some("application/json"));
    assert_eq!(as_json.status, 400);
    body.push(0);
    let refused = post_sync(&server, &dev, &body, Some("application/cbor"));
    assert_eq!(refused.status, 400);
    let error: Value = serde_json::from_slice(&refused.body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("not valid sync CBOR: 1 bytes follow the message"),
        "{error}"
    );
}
