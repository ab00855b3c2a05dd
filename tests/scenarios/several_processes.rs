//! Two `fieldsync serve` processes on one PostgreSQL database and one
//! bucket, a client talking to either (ARCHITECTURE.md, "Several processes
//! on one database"): an upload created through one continues with a
//! PATCH through the other, a download resumes on either, and a browser
//! session started on one works, and ends, on both. Runs where the
//! scenarios have both (`./test`'s second pass:
//! `FIELDSYNC_TEST_STORE=postgres` under `tests/with-s3-server`).

use fieldsync_server::blob_store::BlobId;
use fieldsync_tests::blobs::s3_endpoint;
use fieldsync_tests::stores::{on_postgres, processes_on_one_database};
use fieldsync_tests::{enrolled_device, Rng};
use serde_json::json;

use crate::blob_api::{check, number, random_bytes, report_with_attachment, Device};
use crate::web_api::{json_of, start, web_login};

const MIB: usize = 1 << 20;

#[test]
fn an_upload_a_download_and_a_browser_session_carry_over_between_processes() {
    if !on_postgres() || s3_endpoint().is_none() {
        println!("skipped: needs FIELDSYNC_TEST_STORE=postgres and an S3 server (./test runs it)");
        return;
    }
    let (_dirs, servers) = processes_on_one_database(2);
    let (a, b) = (&servers[0], &servers[1]);
    a.create_case("c");
    let reporter = enrolled_device(a, "c", "reporter");
    let coordinator = enrolled_device(b, "c", "coordinator");
    coordinator.ok(&["key", "new", "--case", "c"]);
    let size = 2 * MIB + 3;
    let bytes = random_bytes(&mut Rng::from_env_or_random(), size);
    let blob = BlobId::of(&bytes).to_string();
    let report = report_with_attachment(&reporter, "c", &blob, size as u64);

    // Created and half sent through A; B knows where it stands, refuses a
    // PATCH at the old offset as A does, and takes the rest.
    let (via_a, via_b) = (Device::of(a, &reporter), Device::of(b, &reporter));
    let location = via_a.created(&blob, &report, size as u64);
    let sent = MIB + 7;
    assert_eq!(via_a.patch(&location, 0, &bytes[..sent]).status, 204);
    let head = via_b.head(&location);
    assert_eq!(head.status, 200, "HEAD through B: {}", head.body);
    assert_eq!(number(&head, "upload-offset"), sent as u64);
    check(
        "a PATCH through B at the offset A has moved past",
        &via_b.patch(&location, 0, &bytes[..10]),
        409,
        &format!("offset {sent}"),
    );
    via_b.upload_from(&location, &bytes, sent, MIB);
    assert_eq!(number(&via_a.head(&location), "upload-offset"), size as u64);

    // The first half of the download through B, the rest through A.
    let half = size / 2;
    let (first, head_bytes) = via_b.get(&blob, Some(&format!("bytes=0-{}", half - 1)));
    assert_eq!(first.status, 206);
    let (rest, tail_bytes) = via_a.get(&blob, Some(&format!("bytes={half}-")));
    assert_eq!(rest.status, 206);
    assert!(
        [head_bytes, tail_bytes].concat() == bytes,
        "the blob read across the two processes differs from what was sent"
    );

    // A browser session started on A reads the case through B; ended
    // through B, A refuses it too.
    let link = web_login(&coordinator);
    let session = start(&a.url, &link.token);
    let timeline = json_of(&session.get(&b.url, "/web/api/timeline"));
    assert_eq!(timeline["reports"][0]["report_id"], report.as_str());
    let ended = session.post(&b.url, "/web/logout", &json!({}), true);
    assert_eq!(ended.status, 204, "{}", ended.body);
    assert_eq!(session.get(&a.url, "/web/api/timeline").status, 401);
    assert_eq!(session.get(&b.url, "/web/api/timeline").status, 401);
}
