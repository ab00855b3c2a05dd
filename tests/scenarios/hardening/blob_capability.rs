//! Finding 7 of issue 14: a blob id was a bearer capability. A reporter
//! added another reporter's blob id to its own report, created an upload
//! with it, got `Upload-Offset` = the full length without sending a byte,
//! and `GET` then served the other reporter's blob; a different length
//! answered 409 with the stored size.
//!
//! Now a reporter reads only blobs its own device uploaded, a reporter
//! that names a blob it did not upload must send every byte (checked
//! against the id) before it holds it, and no answer to a reporter differs
//! by whether another device's blob exists.

use fieldsync_server::blob_store::BlobId;
use fieldsync_tests::http::Reply;
use fieldsync_tests::{enrolled_device, Rng, ServerProcess};

use crate::blob_api::{attach, check, number, random_bytes, report_with_attachment, Device};

const SIZE: usize = 70_000;

#[test]
fn a_reporter_naming_another_reporters_blob_must_upload_every_byte_before_reading_it() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("c");
    let mut rng = Rng::from_env_or_random();
    let alice_home = enrolled_device(&server, "c", "reporter");
    let bytes = random_bytes(&mut rng, SIZE);
    let blob = BlobId::of(&bytes).to_string();
    let alice_report = report_with_attachment(&alice_home, "c", &blob, SIZE as u64);
    let alice = Device::of(&server, &alice_home);
    let location = alice.created(&blob, &alice_report, SIZE as u64);
    alice.upload_from(&location, &bytes, 0, SIZE);

    // Bob, a reporter of the same case, adds Alice's blob id to a report
    // of his own and syncs it: the server's copy of his report lists it.
    let bob_home = enrolled_device(&server, "c", "reporter");
    let bob_report = report_with_attachment(&bob_home, "c", &blob, SIZE as u64);
    let bob = Device::of(&server, &bob_home);

    let reply = bob.create(&blob, &bob_report, SIZE as u64);
    println!(
        "Bob creates an upload of Alice's blob: {} Upload-Offset {:?}",
        reply.status,
        reply.header("upload-offset")
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        number(&reply, "upload-offset"),
        0,
        "Bob did not upload the blob: he must send every byte"
    );
    let bob_location = reply.header("location").unwrap().to_owned();
    assert_eq!(bob.head(&bob_location).status, 200);
    assert_eq!(number(&bob.head(&bob_location), "upload-offset"), 0);

    let (refused, served) = bob.get(&blob, None);
    println!(
        "Bob GETs Alice's blob: {} ({} bytes)",
        refused.status,
        served.len()
    );
    assert!(served != bytes, "Alice's blob was served to Bob");
    check(
        "Bob reads Alice's blob",
        &bob.get_refused(&blob),
        404,
        "uploaded itself",
    );

    // Another length: the answer does not name the stored size.
    let other = bob.create(&blob, &bob_report, 1_234);
    println!(
        "Bob creates with another length: {} {}",
        other.status, other.body
    );
    assert_eq!(other.status, 201, "{}", other.body);
    assert_eq!(number(&other, "upload-offset"), 0);
    assert_eq!(number(&other, "upload-length"), 1_234);
    let everything = format!("{} {:?}", other.body, other.headers);
    assert!(!everything.contains(&SIZE.to_string()), "{everything}");

    // Bytes of the right length that are not the blob get 422 and open
    // nothing.
    let fake = random_bytes(&mut rng, SIZE);
    check(
        "Bob uploads other bytes under Alice's blob id",
        &bob.patch(&bob_location, 0, &fake),
        422,
        "do not match the blob id",
    );
    check(
        "Bob reads after the refused upload",
        &bob.get_refused(&blob),
        404,
        "uploaded itself",
    );

    // Every byte, checked against the id: then Bob holds the blob.
    let proof = bob.created(&blob, &bob_report, SIZE as u64);
    bob.upload_from(&proof, &bytes, 0, SIZE);
    let (reply, served) = bob.get(&blob, None);
    assert_eq!(reply.status, 200, "Bob uploaded every byte");
    assert!(served == bytes);

    // Coordinators keep reading every blob of their case.
    let coord_home = enrolled_device(&server, "c", "coordinator");
    let coord = Device::of(&server, &coord_home);
    let (reply, served) = coord.get(&blob, None);
    assert_eq!(reply.status, 200);
    assert!(served == bytes);
}

/// What a reporter learns from an answer: status, the tus offsets and the
/// error text, with the blob id it asked about replaced.
fn seen(reply: &Reply, blob: &str) -> (u16, Option<String>, Option<String>, String) {
    let error = serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default()
        .replace(blob, "BLOB");
    (
        reply.status,
        reply.header("upload-offset").map(str::to_owned),
        reply.header("upload-length").map(str::to_owned),
        error,
    )
}

#[test]
fn no_answer_tells_a_reporter_whether_another_devices_blob_exists() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        data.path(),
        "127.0.0.1:0",
        &["--device-quota-bytes", "100000"],
    );
    server.create_case("c");
    let mut rng = Rng::from_env_or_random();
    let alice_home = enrolled_device(&server, "c", "reporter");
    let bytes = random_bytes(&mut rng, SIZE);
    let held = BlobId::of(&bytes).to_string();
    let alice_report = report_with_attachment(&alice_home, "c", &held, SIZE as u64);
    let alice = Device::of(&server, &alice_home);
    let location = alice.created(&held, &alice_report, SIZE as u64);
    alice.upload_from(&location, &bytes, 0, SIZE);
    // A blob id no device has uploaded.
    let absent = BlobId::of(&random_bytes(&mut rng, SIZE)).to_string();

    // Bob lists both on his report, and has used 40,000 bytes of his
    // 100,000-byte quota on an attachment of his own.
    let bob_home = enrolled_device(&server, "c", "reporter");
    let own = random_bytes(&mut rng, 40_000);
    let own_blob = BlobId::of(&own).to_string();
    let bob_report = report_with_attachment(&bob_home, "c", &own_blob, 40_000);
    attach(&bob_home, &bob_report, &held, SIZE as u64);
    attach(&bob_home, &bob_report, &absent, SIZE as u64);
    let bob = Device::of(&server, &bob_home);
    let own_location = bob.created(&own_blob, &bob_report, 40_000);
    bob.upload_from(&own_location, &own, 0, 40_000);

    let compare = |what: &str, a: &Reply, b: &Reply| {
        let (a, b) = (seen(a, &held), seen(b, &absent));
        println!("{what}: Alice's blob {a:?}, no one's blob {b:?}");
        assert_eq!(a, b, "{what}: the answers differ");
    };
    // Past the quota (before the fix Alice's blob cost nothing: 201).
    compare(
        "create past the quota",
        &bob.create(&held, &bob_report, SIZE as u64),
        &bob.create(&absent, &bob_report, SIZE as u64),
    );
    // Another length (before the fix: 409 naming the stored size); the
    // two fit in the quota together.
    let with_held = bob.create(&held, &bob_report, 25_000);
    let with_absent = bob.create(&absent, &bob_report, 25_000);
    compare("create with another length", &with_held, &with_absent);
    assert_eq!(with_held.status, 201, "{}", with_held.body);
    for reply in [&with_held, &with_absent] {
        let location = reply.header("location").unwrap();
        let head = bob.head(location);
        assert_eq!(head.status, 200);
        assert_eq!(number(&head, "upload-offset"), 0);
    }
    // Downloads (before the fix: 200 and Alice's bytes, against 404).
    compare("GET", &bob.get_refused(&held), &bob.get_refused(&absent));
    let head = |blob: &str| {
        let path = format!("/v1/blobs/{blob}");
        fieldsync_tests::http::send("HEAD", &server.url, &path, &bob.signed("HEAD", &path), b"")
    };
    compare("HEAD", &head(&held), &head(&absent));
}
