use automerge::{Automerge, ChangeHash};

use fieldsync_core::bundle::{BundleAttachment, BundleDoc, BundleManifest};
use fieldsync_core::document::{read_report, NewReport, ReportDocument};
use fieldsync_core::import::{self};
use fieldsync_core::model::{Edit, Place, TimelineEntry};
use fieldsync_core::protocol::{DocOffer, DocUpdate, SyncRequest, SyncResponse, PROTOCOL_VERSION};
use fieldsync_core::request_auth::RequestAuth;
use fieldsync_core::signed_change::SignedChange;
use fieldsync_core::sync::server::{handle_sync, ServerLimits};
use fieldsync_core::web_login::{LoginCertificate, SessionKey};

use crate::envelope::{case_key, seal_fixed, write_bundle};
use crate::request_auth::signed;
use crate::sync::hostile_requests;
use crate::world::{case_id, key, member, report_id, time, world, CASE};

pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let world = world();
    let request = |docs: Vec<DocOffer>| SyncRequest {
        version: PROTOCOL_VERSION,
        cursor: 0,
        docs,
    };
    let offer = |id: &str, base: Vec<ChangeHash>, changes: Vec<SignedChange>| DocOffer {
        id: report_id(id),
        base_heads: base,
        changes,
    };
    let mut a = ReportDocument::load(&world.a_device.clone().save()).expect("loads");
    let a_heads = a.heads();
    let now = time("2016-05-21T13:00:00+06:00");
    let tag = a
        .edit(key(0), &[Edit::AddTag("vans".into())], now)
        .expect("edits")
        .expect("a change");
    let mut new = NewReport::new(
        report_id("c"),
        case_id(),
        "Search of the office",
        time("2016-05-23T09:15:00+06:00"),
    );
    new.place = Place {
        name: "Office".into(),
        lat: Some(43.25),
        lon: Some(76.95),
    };
    new.timeline = vec![TimelineEntry {
        at: time("2016-05-23T09:20:00+06:00"),
        text: "Door forced".into(),
        approximate: true,
    }];
    let (_, c_created) = ReportDocument::create(key(0), &new, now).expect("creates");
    let requests = [
        (
            "create",
            0u8,
            request(vec![offer("c", vec![], vec![c_created.clone()])]),
        ),
        (
            "edit",
            0,
            request(vec![offer("a", a_heads.clone(), vec![tag.clone()])]),
        ),
        (
            "review-by-coordinator",
            2,
            request(vec![offer("a", vec![], world.a_changes.clone())]),
        ),
        (
            "relay-two-reports",
            2,
            request(vec![
                offer("a", vec![], world.a_changes.clone()),
                offer("b", vec![], world.b_changes.clone()),
            ]),
        ),
        (
            "not-yours",
            1,
            request(vec![offer("a", a_heads, vec![tag.clone()])]),
        ),
        (
            "revoked",
            3,
            request(vec![offer("c", vec![], vec![c_created])]),
        ),
    ];
    for (name, who, request) in requests.into_iter().chain(hostile_requests(world)) {
        let mut data = vec![who];
        data.extend_from_slice(&request.to_json());
        out.push(("sync_request", format!("{name}.json"), data));
        let mut data = vec![who];
        data.extend_from_slice(&request.to_cbor());
        out.push(("sync_request", format!("{name}.cbor"), data));
    }
    let mut store = world.store.clone();
    for (name, cursor, who) in [("feed", 0u64, 2usize), ("own-report", 0, 0), ("tail", 2, 2)] {
        let mut request = request(vec![]);
        request.cursor = cursor;
        let response = handle_sync(&mut store, &member(who), &request, ServerLimits::default())
            .expect("the world syncs");
        out.push(("sync_response", format!("{name}.json"), response.to_json()));
        out.push(("sync_response", format!("{name}.cbor"), response.to_cbor()));
    }
    let answer = SyncResponse {
        version: PROTOCOL_VERSION,
        docs: vec![DocUpdate {
            id: report_id("a"),
            changes: world.a_changes[1..].to_vec(),
            heads: vec![],
            complete: true,
            refused: vec![],
        }],
        cursor: 3,
        more: false,
        case_timezone: None,
    };
    out.push(("sync_response", "answer.json".into(), answer.to_json()));
    out.push(("sync_response", "answer.cbor".into(), answer.to_cbor()));

    for (name, plain) in [("empty", &b""[..]), ("short", b"a photo of a van")] {
        let mut data = vec![0];
        data.extend_from_slice(&seal_fixed(plain, false));
        out.push(("envelope", format!("open-{name}.bin"), data));
    }
    out.push((
        "envelope",
        "seal.bin".into(),
        [&[1u8, 40][..], &b"frame "[..]].concat(),
    ));
    let header = br#"{"content_key":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=","nonce_prefix":"AwMDAwMDAw==","name":"a.jpg","media_type":"image/jpeg","size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","captured_at":null}"#;
    out.push((
        "envelope",
        "header.bin".into(),
        [&[2u8][..], &header[..], &[0u8][..]].concat(),
    ));

    // The CSV, text and list-JSON seeds are committed files, taken from the
    // parsers' tests and a real field report; the export is made here.
    let report = read_report(&Automerge::load(&world.a_device.clone().save()).expect("loads"))
        .expect("reads");
    let export = serde_json::json!({
        "format": import::EXPORT_FORMAT,
        "version": import::EXPORT_VERSION,
        "case": CASE,
        "reports": [report],
    });
    out.push((
        "import_json",
        "export.json".into(),
        serde_json::to_vec_pretty(&export).expect("serializes"),
    ));

    let auth = signed(
        &RequestAuth {
            device: key(0).device_id(),
            timestamp: 1_463_800_000,
            nonce: "00112233445566778899aabbccddeeff".into(),
            signature: String::new(),
        },
        "POST",
        "/v1/sync",
        b"{}",
    );
    let lines = auth
        .headers()
        .into_iter()
        .map(|(_, value)| value)
        .chain(["POST".into(), "/v1/sync".into(), "1463800010".into()])
        .collect::<Vec<_>>()
        .join("\n");
    out.push((
        "request_auth",
        "signed.txt".into(),
        format!("{lines}\n{{}}").into_bytes(),
    ));

    let manifest = BundleManifest {
        version: 1,
        device: key(0).device_id(),
        public_key: hex::encode(key(0).public_key().as_bytes()),
        case_id: case_id(),
        case_name: "fuzz".into(),
        created_at: "2016-05-21T13:00:00+06:00".into(),
        docs: vec![BundleDoc {
            id: report_id("a"),
            changes: vec![world.a_changes[0].clone(), tag],
        }],
        attachments: vec![],
    };
    out.push((
        "bundle",
        "no-attachments.bin".into(),
        write_bundle(&manifest, &[]),
    ));
    let blob = seal_fixed(b"a photo of a van", false);
    let with_blob = BundleManifest {
        attachments: vec![BundleAttachment {
            blob: hex::encode(ring::digest::digest(&ring::digest::SHA256, &blob)),
            report: report_id("a"),
            attachment_id: "0123456789abcdef0123456789abcdef".into(),
            size: blob.len() as u64,
        }],
        ..manifest
    };
    out.push((
        "bundle",
        "attachment.bin".into(),
        write_bundle(&with_blob, &[blob]),
    ));

    out.push((
        "codes",
        "share-code.txt".into(),
        case_key().share_code().into_bytes(),
    ));
    let session = SessionKey::from_seed([11; 32]).expect("a session key");
    let cert = LoginCertificate::issue(key(2), &session.public_key(), 1_463_800_300, 1_463_828_800)
        .expect("issues");
    out.push((
        "codes",
        "login-token.txt".into(),
        cert.to_token().into_bytes(),
    ));
    out
}
