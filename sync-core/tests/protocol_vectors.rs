//! The protocol's test vectors (`tests/vectors/signed-request.json`,
//! `creating-change.json`, `sync-round.json`): fixed keys, times and nonces,
//! so any client can check its bytes against this build's. The phone app's
//! node tests read the same files (`tests/browser/unit/app-core-*.test.mjs`).
//!
//! This test rebuilds every vector and fails if the shipped files differ.
//! After a deliberate change of the protocol, rewrite them with
//! `FIELDSYNC_WRITE_VECTORS=1 cargo test -p fieldsync-core --test protocol_vectors`.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, FixedOffset};
use fieldsync_core::change_limits::{self, craft, craft::Header, LimitError};
use fieldsync_core::document::read_report;
use fieldsync_core::identity::Domain;
use fieldsync_core::model::{DeviceRole, Edit, Person, Place, ReviewStatus, Role, TimelineEntry};
use fieldsync_core::protocol::{DocOffer, SyncRequest, SyncResponse, PROTOCOL_VERSION};
use fieldsync_core::request_auth::{signed_message, RequestAuth};
use fieldsync_core::sync::memory::MemoryStore;
use fieldsync_core::sync::policy::Member;
use fieldsync_core::sync::server::{handle_sync, ServerLimits};
use fieldsync_core::{CaseId, DeviceKey, NewReport, ReportDocument, ReportId, SignedChange};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

/// PKCS#8 v1 of an Ed25519 seed (RFC 8410): what WebCrypto imports.
const PKCS8_V1_PREFIX: &str = "302e020100300506032b657004220420";

struct Key {
    seed: [u8; 32],
    key: DeviceKey,
}

impl Key {
    fn from_seed(byte: u8) -> Self {
        let seed = [byte; 32];
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        // ring stores keys as PKCS#8 v2 (RFC 5958, with the public key).
        let pkcs8 = hex::decode(format!(
            "3053020101300506032b657004220420{}a123032100{}",
            hex::encode(seed),
            hex::encode(pair.public_key().as_ref())
        ))
        .unwrap();
        Self {
            seed,
            key: DeviceKey::from_pkcs8(&pkcs8).unwrap(),
        }
    }

    fn describe(&self) -> Value {
        let public = self.key.public_key();
        json!({
            "seed_hex": hex::encode(self.seed),
            "pkcs8_v1_hex": format!("{PKCS8_V1_PREFIX}{}", hex::encode(self.seed)),
            "public_key_hex": hex::encode(public.as_bytes()),
            "device_id": self.key.device_id().as_str(),
            "actor_id_hex": hex::encode(public.as_bytes()),
        })
    }

    fn member(&self, role: DeviceRole) -> Member {
        Member {
            device: self.key.device_id(),
            role,
            revoked: false,
        }
    }
}

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn case() -> CaseId {
    "c0ffee00c0ffee00c0ffee00c0ffee00".parse().unwrap()
}

fn new_report() -> NewReport {
    NewReport {
        id: "0123456789abcdef0123456789abcdef"
            .parse::<ReportId>()
            .unwrap(),
        case: case(),
        title: "Detention at the bus station".into(),
        occurred_at: t("2026-11-30T10:40:00+05:00"),
        approximate: true,
        place: Place {
            name: "Central bus station".into(),
            lat: Some(43.2567),
            lon: Some(76.9286),
        },
        description: "Two people were taken into a van.".into(),
        people: vec![Person {
            name: "A. B.".into(),
            role: Role::Detainee,
            note: "student".into(),
        }],
        tags: vec!["detention".into(), "police".into()],
        timeline: vec![TimelineEntry {
            at: t("2026-11-30T10:42:00+05:00"),
            text: "The van left north.".into(),
            approximate: false,
        }],
    }
}

fn signed_request_vector() -> Value {
    let device = Key::from_seed(7);
    let (method, path, timestamp) = ("POST", "/v1/sync", 1_796_000_000_i64);
    let nonce = "00112233445566778899aabbccddeeff";
    let body = br#"{"version":1,"cursor":0,"docs":[]}"#;
    let auth = RequestAuth::sign_with_nonce(&device.key, method, path, body, timestamp, nonce);
    let message = signed_message(method, path, timestamp, nonce, body);
    let mut signed = Domain::Request.tag().to_vec();
    signed.extend_from_slice(&message);
    let headers: serde_json::Map<String, Value> = auth
        .headers()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    json!({
        "about": "A signed request. The signature is Ed25519 (RFC 8032) by the device key over domain_tag || message, where message = METHOD \\n PATH?QUERY \\n TIMESTAMP (Unix seconds) \\n NONCE (16 random bytes, 32 lowercase hex) \\n hex(SHA-256(body)). The signature is sent in standard base64. Blob routes sign an empty body whatever they carry.",
        "device": device.describe(),
        "method": method,
        "path": path,
        "timestamp": timestamp,
        "nonce": nonce,
        "body": std::str::from_utf8(body).unwrap(),
        "domain_tag_hex": hex::encode(Domain::Request.tag()),
        "message": String::from_utf8(message).unwrap(),
        "signed_bytes_hex": hex::encode(&signed),
        "signature_b64": auth.signature,
        "headers": headers,
    })
}

fn creating_change_vector() -> Value {
    let device = Key::from_seed(7);
    let now = t("2026-11-30T11:05:00.123+05:00");
    let report = new_report();
    let (mut doc, change) = ReportDocument::create(&device.key, &report, now).unwrap();
    let hash = change.verify().unwrap().hash();
    let mut signed = Domain::Change.tag().to_vec();
    signed.extend_from_slice(&hash.0);
    let view = read_report(doc.automerge()).unwrap();
    json!({
        "about": "The first change of a report: no dependencies, by the device's actor (its public key), time in milliseconds, writing every field of the report. The signature is Ed25519 over domain_tag || the raw 32-byte change hash (not its hex).",
        "device": device.describe(),
        "now": now.to_rfc3339(),
        "time_ms": now.timestamp_millis(),
        "change": {"bytes": STANDARD.encode(&change.bytes), "sig": STANDARD.encode(&change.signature)},
        "hash_hex": hash.to_string(),
        "domain_tag_hex": hex::encode(Domain::Change.tag()),
        "signed_bytes_hex": hex::encode(&signed),
        "report": serde_json::to_value(&view).unwrap(),
    })
}

fn round(store: &mut MemoryStore, member: &Member, request: SyncRequest) -> Value {
    let response: SyncResponse = handle_sync(store, member, &request, ServerLimits::default())
        .expect("the memory store never fails");
    json!({"request": request, "response": response})
}

fn sync_round_vector() -> Value {
    let reporter = Key::from_seed(7);
    let coordinator = Key::from_seed(9);
    let mut store = MemoryStore::new(case().as_str());
    store.enroll(reporter.key.public_key(), DeviceRole::Reporter);
    store.enroll(coordinator.key.public_key(), DeviceRole::Coordinator);
    let report = new_report();
    let created_at = t("2026-11-30T11:05:00.123+05:00");
    let (mut doc, creation) = ReportDocument::create(&reporter.key, &report, created_at).unwrap();
    let mut rounds = Vec::new();

    // 1. The reporter sends its new report.
    rounds.push(round(
        &mut store,
        &reporter.member(DeviceRole::Reporter),
        SyncRequest {
            version: PROTOCOL_VERSION,
            cursor: 0,
            docs: vec![DocOffer {
                id: report.id.clone(),
                base_heads: vec![],
                changes: vec![creation.clone()],
            }],
        },
    ));
    let acked = vec![creation.verify().unwrap().hash()];

    // 2. A coordinator reviews it: the coordinator learns the report from
    //    the feed, then offers its review.
    rounds.push(round(
        &mut store,
        &coordinator.member(DeviceRole::Coordinator),
        SyncRequest {
            version: PROTOCOL_VERSION,
            cursor: 0,
            docs: vec![],
        },
    ));
    let mut coordinator_doc = ReportDocument::load(&doc.automerge().save()).unwrap();
    let review = coordinator_doc
        .edit(
            &coordinator.key,
            &[Edit::SetReview {
                status: ReviewStatus::Verified,
                note: "Two witnesses confirm.".into(),
                // What the CLI and the review page write: the device id.
                reviewer: coordinator.key.device_id().as_str().to_owned(),
                at: t("2026-11-30T12:00:00+05:00"),
            }],
            t("2026-11-30T12:00:00+05:00"),
        )
        .unwrap()
        .unwrap();
    rounds.push(round(
        &mut store,
        &coordinator.member(DeviceRole::Coordinator),
        SyncRequest {
            version: PROTOCOL_VERSION,
            cursor: 1,
            docs: vec![DocOffer {
                id: report.id.clone(),
                base_heads: acked.clone(),
                changes: vec![review],
            }],
        },
    ));

    // 3. Meanwhile the reporter added a timeline entry offline, and (a
    //    hostile or buggy client) a review of its own: the server takes the
    //    entry, refuses the review, and sends the coordinator's review and
    //    the heads of everything it has.
    let entry = doc
        .edit(
            &reporter.key,
            &[Edit::AddTimelineEntry(TimelineEntry {
                at: t("2026-11-30T10:50:00+05:00"),
                text: "A second van arrived.".into(),
                approximate: true,
            })],
            t("2026-11-30T12:10:00+05:00"),
        )
        .unwrap()
        .unwrap();
    let own_review = doc
        .edit(
            &reporter.key,
            &[Edit::SetReview {
                status: ReviewStatus::Verified,
                note: "trust me".into(),
                reviewer: reporter.key.device_id().as_str().to_owned(),
                at: t("2026-11-30T12:11:00+05:00"),
            }],
            t("2026-11-30T12:11:00+05:00"),
        )
        .unwrap()
        .unwrap();
    rounds.push(round(
        &mut store,
        &reporter.member(DeviceRole::Reporter),
        SyncRequest {
            version: PROTOCOL_VERSION,
            cursor: 1,
            docs: vec![DocOffer {
                id: report.id.clone(),
                base_heads: acked,
                changes: vec![entry, own_review],
            }],
        },
    ));
    json!({
        "about": "Sync rounds against the reference server (sync-core/src/sync/memory.rs). Each request is POST /v1/sync, signed as in signed-request.json; each response is what the server answers. Round 1: a reporter's new report. Round 2: a coordinator's first sync (the feed brings the report). Round 3: the coordinator's review. Round 4: the reporter offers a timeline entry and a review (refused: review_is_for_coordinators); the answer brings the coordinator's review and the server's heads (the review and the entry), which the reporter records as acknowledged; it keeps the refused change and sends nothing built on it again.",
        "case_id": case().as_str(),
        "reporter": reporter.describe(),
        "coordinator": coordinator.describe(),
        "rounds": rounds,
    })
}

fn check(name: &str, built: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let text = serde_json::to_string_pretty(&built).unwrap() + "\n";
    if std::env::var_os("FIELDSYNC_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let shipped =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shipped: Value = serde_json::from_str(&shipped).unwrap();
    assert_eq!(
        shipped, built,
        "{name} differs from what this build makes; if the protocol changed on purpose, rewrite it (see this file's doc)"
    );
}

#[test]
fn the_shipped_signed_request_vector_matches_this_build_and_verifies() {
    let vector = signed_request_vector();
    let device = Key::from_seed(7);
    let auth = RequestAuth::from_headers(|name| vector["headers"][name].as_str()).unwrap();
    auth.verify(
        &device.key.public_key(),
        "POST",
        "/v1/sync",
        vector["body"].as_str().unwrap().as_bytes(),
        vector["timestamp"].as_i64().unwrap(),
        300,
    )
    .unwrap();
    check("signed-request.json", vector);
}

#[test]
fn the_shipped_creating_change_vector_matches_this_build_and_verifies() {
    let vector = creating_change_vector();
    let change: SignedChange = serde_json::from_value(vector["change"].clone()).unwrap();
    let verified = change.verify().unwrap();
    assert_eq!(
        verified.author.device_id().as_str(),
        vector["device"]["device_id"]
    );
    let parsed = automerge::Change::from_bytes(change.bytes.clone()).unwrap();
    assert!(
        parsed.deps().is_empty(),
        "a creating change has no dependencies"
    );
    assert_eq!(parsed.timestamp(), vector["time_ms"].as_i64().unwrap());
    check("creating-change.json", vector);
}

#[test]
fn the_shipped_sync_round_vector_matches_this_build() {
    let vector = sync_round_vector();
    let last = &vector["rounds"][3]["response"]["docs"][0];
    assert_eq!(last["refused"][0]["reason"], "review_is_for_coordinators");
    assert_eq!(last["changes"].as_array().unwrap().len(), 1);
    assert_eq!(
        vector["rounds"][0]["response"]["docs"][0]["heads"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    check("sync-round.json", vector);
}

/// A run-length column holding `v` once.
fn rle_one(v: u64) -> Vec<u8> {
    let mut d = Vec::new();
    craft::sleb(&mut d, 1);
    craft::uleb(&mut d, v);
    d
}

/// A string column holding the key "title" once.
fn title_key() -> Vec<u8> {
    let mut key = Vec::new();
    craft::sleb(&mut key, 1);
    craft::uleb(&mut key, 5);
    key.extend_from_slice(b"title");
    key
}

fn verdict(bytes: &[u8]) -> Value {
    match change_limits::check(bytes) {
        Ok(shape) => {
            json!({"verdict": "ok", "ops": shape.ops, "deletes": shape.deletes, "preds": shape.preds})
        }
        Err(e) => {
            let kind = match &e {
                LimitError::NotAChange(_) => "not_a_change",
                LimitError::Compressed => "compressed",
                LimitError::TooManyOps { .. } => "too_many_ops",
                LimitError::Malformed(_) => "malformed",
            };
            json!({"verdict": kind, "message": e.to_string()})
        }
    }
}

fn hostile_changes_vector() -> Value {
    let device = Key::from_seed(7);
    let actor = *device.key.public_key().as_bytes();
    let header = Header {
        deps: &[],
        actor: &actor,
        seq: 1,
        start_op: 1,
        time_ms: 1_463_800_000_000,
    };
    let (_, creation) = ReportDocument::create(
        &device.key,
        &new_report(),
        t("2026-11-30T11:05:00.123+05:00"),
    )
    .unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        (
            "a creating change as the core makes it".into(),
            creation.bytes.clone(),
        ),
        (
            "a crafted run of 3 puts".into(),
            craft::run_of_puts(&header, "title", 3),
        ),
        (
            "a run declaring 1,000,000 puts in a few bytes".into(),
            craft::run_of_puts(&header, "title", 1_000_000),
        ),
        (
            "a run declaring 2^62 puts".into(),
            craft::run_of_puts(&header, "title", 1 << 62),
        ),
    ];
    let mut pred = Vec::new();
    craft::sleb(&mut pred, 1);
    craft::uleb(&mut pred, 1 << 40);
    cases.push((
        "one op with 2^40 predecessors".into(),
        craft::change_chunk(
            &header,
            &[
                ((1 << 4) | 5, title_key()),
                ((4 << 4) | 2, rle_one(1)),
                ((5 << 4) | 6, rle_one(0)),
                (7 << 4, pred),
            ],
        ),
    ));
    let mut compressed = creation.bytes.clone();
    compressed[8] = 2;
    cases.push(("a change chunk marked compressed".into(), compressed));
    cases.push((
        "a compressed column".into(),
        craft::change_chunk(&header, &[((4 << 4) | 8 | 2, vec![1, 1])]),
    ));
    cases.push((
        "a compressed chunk inflating to zeros".into(),
        craft::chunk(2, &craft::deflated_zeros(1000)),
    ));
    cases.push((
        "a predecessor actor index past the change's actors".into(),
        craft::change_chunk(
            &header,
            &[
                ((1 << 4) | 5, title_key()),
                ((3 << 4) | 4, vec![1]),
                ((4 << 4) | 2, rle_one(1)),
                ((5 << 4) | 6, rle_one(0)),
                (7 << 4, rle_one(1)),
                ((7 << 4) | 1, rle_one(3)),
                ((7 << 4) | 3, rle_one(1)),
            ],
        ),
    ));
    let mut document = creation.bytes.clone();
    document[8] = 0;
    cases.push(("a document chunk, not a change".into(), document));
    let mut longer = creation.bytes.clone();
    longer.push(0);
    cases.push(("a change with a byte after it".into(), longer));
    for cut in [
        0,
        4,
        8,
        9,
        20,
        creation.bytes.len() / 2,
        creation.bytes.len() - 1,
    ] {
        cases.push((
            format!("the creating change cut to {cut} bytes"),
            creation.bytes[..cut].to_vec(),
        ));
    }
    let cases: Vec<Value> = cases
        .into_iter()
        .map(|(name, bytes)| {
            let mut case = verdict(&bytes);
            case["name"] = json!(name);
            case["bytes_b64"] = json!(STANDARD.encode(&bytes));
            case
        })
        .collect();
    json!({
        "about": "Changes a client must bound from their raw bytes before Automerge parses them (sync-core/src/change_limits.rs): each with the verdict of change_limits::check (ok with its counts, or not_a_change, compressed, too_many_ops, malformed). Limits: non-delete ops at most 2*len+4096; deletes at most 256 KiB + 16 KiB; predecessors at most ops + deletes (see the module doc).",
        "cases": cases,
    })
}

#[test]
fn the_shipped_hostile_changes_vector_matches_this_build() {
    let vector = hostile_changes_vector();
    let verdicts: Vec<&str> = vector["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(&verdicts[..2], ["ok", "ok"]);
    assert!(verdicts[2..].iter().all(|v| *v != "ok"), "{verdicts:?}");
    check("hostile-changes.json", vector);
}

/// A review made in the browser: a change by the web session's actor,
/// signed `certificate ‖ session signature`. The certificate carries a
/// random nonce, so this vector is not rebuilt byte for byte: the test
/// checks that the shipped one verifies and names the coordinator.
fn web_session_change_vector() -> Value {
    use fieldsync_core::web_login::{delegated_signature, LoginCertificate, SessionKey};
    let reporter = Key::from_seed(7);
    let coordinator = Key::from_seed(9);
    let session = SessionKey::from_seed([5; 32]).unwrap();
    let (login_until, session_until) = (2_000_000_000, 2_000_003_600);
    let cert = LoginCertificate::issue(
        &coordinator.key,
        &session.public_key(),
        login_until,
        session_until,
    )
    .unwrap();
    let (doc, creation) = ReportDocument::create(
        &reporter.key,
        &new_report(),
        t("2026-11-30T11:05:00.123+05:00"),
    )
    .unwrap();
    let mut doc = doc;
    let change = doc
        .prepare_edit(
            &session.public_key(),
            &[Edit::SetReview {
                status: ReviewStatus::Disputed,
                note: "The time does not match the CCTV.".into(),
                reviewer: coordinator.key.device_id().as_str().to_owned(),
                at: t("2026-11-30T13:00:00+05:00"),
            }],
            t("2026-11-30T13:00:00+05:00"),
        )
        .unwrap()
        .unwrap();
    let session_signature = session.sign_change(&change.hash().0);
    let signed = SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: delegated_signature(&cert, &session_signature),
    };
    json!({
        "about": "A review made in the coordinators' web page: the change's actor is the web session's key; its signature is the 164-byte login certificate (magic, device key, session key, login_until and session_until as u64 big-endian seconds, 16-byte nonce, then the device's Ed25519 signature in the domain \"fieldsync web-login v1\\0\" over everything before it) followed by the session key's signature over domain \"fieldsync change v1\\0\" || the raw change hash. It answers for the coordinator's device; the change time must be before session_until.",
        "reporter": reporter.describe(),
        "coordinator": coordinator.describe(),
        "session_public_key_hex": hex::encode(session.public_key().as_bytes()),
        "login_until": login_until,
        "session_until": session_until,
        "certificate_hex": hex::encode(cert.to_bytes()),
        "creating_change": {"bytes": STANDARD.encode(&creation.bytes), "sig": STANDARD.encode(&creation.signature)},
        "change": {"bytes": STANDARD.encode(&signed.bytes), "sig": STANDARD.encode(&signed.signature)},
        "hash_hex": change.hash().to_string(),
        "author_device_id": coordinator.key.device_id().as_str(),
    })
}

#[test]
fn the_shipped_web_session_change_verifies_and_answers_for_the_coordinator() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/web-session-change.json");
    if std::env::var_os("FIELDSYNC_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&web_session_change_vector()).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let vector: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let change: SignedChange = serde_json::from_value(vector["change"].clone()).unwrap();
    let verified = change.verify().unwrap();
    assert_eq!(
        verified.author.device_id().as_str(),
        vector["author_device_id"]
    );
    assert_eq!(
        hex::encode(verified.actor.as_bytes()),
        vector["session_public_key_hex"]
    );
    assert_eq!(verified.hash().to_string(), vector["hash_hex"]);
    // One flipped bit anywhere in the certificate or the session signature
    // and it no longer verifies.
    for at in [0, 40, 100, 163, 170, change.signature.len() - 1] {
        let mut bad = change.clone();
        bad.signature[at] ^= 1;
        assert!(bad.verify().is_err(), "flipped byte {at}");
    }
}
