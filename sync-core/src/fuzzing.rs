//! Fuzz target bodies, shared by the cargo-fuzz crate in `tests/fuzz` and by
//! the stable replay test `tests/scenarios/fuzz_corpus.rs`, which runs every
//! committed seed and regression through them. Behind the `fuzzing`
//! feature; not part of the API.
//!
//! Each target takes the fuzzer's bytes, must never panic on them, and
//! asserts the invariants named in its doc. Signatures cannot be guessed,
//! so the targets that verify them first *repair* what the fuzzer mutated:
//! an Automerge chunk's checksum is recomputed and a change whose actor is
//! one of the fixed fuzzing keys ([`key`]) is signed again. That lets the
//! fuzzer reach the code behind the signature check.
//!
//! [`seeds`] makes each target's seed corpus from real encodings.

use std::io::Cursor;
use std::sync::OnceLock;

use automerge::{AutoCommit, Automerge, ChangeHash, ReadDoc};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, FixedOffset, NaiveDate};
use ring::aead::{Aad, Nonce};

use crate::bundle::{self, BundleAttachment, BundleDoc, BundleManifest, BundleReader};
use crate::case_key::{CaseKey, CasePrivateKey, CaseSecret};
use crate::document::{read_report, NewReport, ReportDocument};
use crate::envelope::{self, AttachmentMeta};
use crate::identity::{DeviceKey, Domain, PublicKey};
use crate::ids::{CaseId, ReportId};
use crate::import::{self, Format, ImportOptions, Zone};
use crate::model::{Edit, Person, Place, Report, ReviewStatus, Role, TimelineEntry};
use crate::protocol::{DocOffer, DocUpdate, SyncRequest, SyncResponse, PROTOCOL_VERSION};
use crate::request_auth::{self, AuthError, RequestAuth, DEFAULT_WINDOW_SECS};
use crate::signed_change::SignedChange;
use crate::sync::device::absorb;
use crate::sync::memory::MemoryStore;
use crate::sync::policy::{DeviceRole, Member};
use crate::sync::server::{handle_sync, ServerLimits, ServerStore};
use crate::web_login::{LoginCertificate, SessionKey, DELEGATED_SIGNATURE_LEN};

/// A target's body: takes the fuzzer's bytes, panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its cargo-fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("sync_request", sync_request),
    ("sync_response", sync_response),
    ("envelope", envelope),
    ("import_csv", import_csv),
    ("import_text", import_text),
    ("import_json", import_json),
    ("request_auth", request_auth),
    ("bundle", bundle),
    ("codes", codes),
];

/// The fuzzing world's case.
pub const CASE: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";
/// Roles of the fixed keys 0 to 3; key 3 is revoked.
const ROLES: [DeviceRole; 4] = [
    DeviceRole::Reporter,
    DeviceRole::Reporter,
    DeviceRole::Coordinator,
    DeviceRole::Reporter,
];

/// Fixed device key `n` (0 to 3), derived from the seed `[n + 1; 32]`.
pub fn key(n: usize) -> &'static DeviceKey {
    static KEYS: OnceLock<Vec<DeviceKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..ROLES.len())
            .map(|n| key_from_seed([n as u8 + 1; 32]))
            .collect()
    })[n]
}

fn key_from_seed(seed: [u8; 32]) -> DeviceKey {
    // ring's PKCS#8 v2 document for Ed25519: prefix ‖ seed ‖ tag ‖ public key.
    const PREFIX: [u8; 16] = [
        0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    const MIDDLE: [u8; 5] = [0xa1, 0x23, 0x03, 0x21, 0x00];
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .expect("any 32 bytes are an Ed25519 seed");
    let mut pkcs8 = PREFIX.to_vec();
    pkcs8.extend_from_slice(&seed);
    pkcs8.extend_from_slice(&MIDDLE);
    pkcs8.extend_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
    DeviceKey::from_pkcs8(&pkcs8).expect("a well-formed PKCS#8 document")
}

fn member(n: usize) -> Member {
    Member {
        device: key(n).device_id(),
        role: ROLES[n],
        revoked: n == 3,
    }
}

fn case_id() -> CaseId {
    CASE.parse().expect("a valid case id")
}

fn time(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).expect("a valid time")
}

/// Report ids of the fuzzing world: `a` by key 0, `b` by key 1.
pub fn report_id(name: &str) -> ReportId {
    ReportId::derived_from(&[b"fieldsync fuzz", name.as_bytes()])
}

/// The fuzzing world: a server store holding report `a` (created by key 0,
/// edited, reviewed by key 2) and report `b` (key 1), and the device-side
/// history of `a`.
struct World {
    store: MemoryStore,
    /// Every change of report `a`, in order.
    a_changes: Vec<SignedChange>,
    /// Report `a` as key 0's device holds it: the creating change only.
    a_device: AutoCommit,
    b_changes: Vec<SignedChange>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let now = time("2016-05-21T12:00:00+06:00");
        let mut new = NewReport::new(
            report_id("a"),
            case_id(),
            "Arrests at the rally",
            time("2016-05-21T10:40:00+06:00"),
        );
        new.description = "Police detained people near the bus stop.".into();
        new.tags = vec!["arrest".into()];
        let (mut a, created) = ReportDocument::create(key(0), &new, now).expect("creates");
        let a_device = a.automerge().clone();
        let edit = a
            .edit(
                key(0),
                &[
                    Edit::AddPerson(Person {
                        name: "A. Witness".into(),
                        role: Role::Witness,
                        note: String::new(),
                    }),
                    Edit::AppendDescription(" Two vans.".into()),
                ],
                now,
            )
            .expect("edits")
            .expect("a change");
        let review = a
            .edit(
                key(2),
                &[Edit::SetReview {
                    status: ReviewStatus::Verified,
                    note: "two sources".into(),
                    reviewer: key(2).device_id().to_string(),
                    at: now,
                }],
                now,
            )
            .expect("edits")
            .expect("a change");
        let b_new = NewReport::new(
            report_id("b"),
            case_id(),
            "Checkpoint on the ring road",
            time("2016-05-22T08:00:00+06:00"),
        );
        let (_, b_created) = ReportDocument::create(key(1), &b_new, now).expect("creates");

        let mut store = MemoryStore::new(CASE);
        for (n, role) in ROLES.iter().enumerate() {
            store.enroll(key(n).public_key(), *role);
        }
        let a_changes = vec![created, edit, review];
        let b_changes = vec![b_created];
        let offer = |id: &str, changes: &[SignedChange]| SyncRequest {
            version: PROTOCOL_VERSION,
            cursor: 0,
            docs: vec![DocOffer {
                id: report_id(id),
                base_heads: vec![],
                changes: changes.to_vec(),
            }],
        };
        for (requester, request) in [
            (0, offer("a", &a_changes[..2])),
            (2, offer("a", &a_changes)),
            (1, offer("b", &b_changes)),
        ] {
            handle_sync(
                &mut store,
                &member(requester),
                &request,
                ServerLimits::default(),
            )
            .expect("the world syncs");
        }
        // Revoke key 3 only now: it is enrolled, and its changes refused.
        if let Some(m) = store.members.get_mut(&key(3).public_key()) {
            m.revoked = true;
        }
        World {
            store,
            a_changes,
            a_device,
            b_changes,
        }
    })
}

/// Makes a mutated change pass the checks the fuzzer cannot pass by itself:
/// recomputes an Automerge chunk's checksum and signs again a change whose
/// actor is a fixed key (unless it carries a web session's signature).
pub fn repair(change: &mut SignedChange) {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    if change.bytes.len() > 8 && change.bytes[..4] == MAGIC {
        let digest = ring::digest::digest(&ring::digest::SHA256, &change.bytes[8..]);
        change.bytes[4..8].copy_from_slice(&digest.as_ref()[..4]);
    }
    // Parsing what the bounds refuse could take forever; verify refuses it.
    if crate::change_limits::check(&change.bytes).is_err() {
        return;
    }
    let Ok(parsed) = automerge::Change::try_from(change.bytes.as_slice()) else {
        return;
    };
    if change.signature.len() == DELEGATED_SIGNATURE_LEN {
        return;
    }
    let actor = parsed.actor_id().to_bytes();
    if let Some(n) = (0..ROLES.len()).find(|&n| key(n).public_key().as_bytes() == actor) {
        change.signature = SignedChange::sign(&parsed, key(n)).signature;
    }
}

/// What a store holds, to compare before and after.
#[derive(Debug, PartialEq)]
struct StoreState {
    feed: usize,
    heads: Vec<(ReportId, Vec<ChangeHash>)>,
}

fn state(store: &MemoryStore) -> StoreState {
    StoreState {
        feed: store.feed_len(),
        heads: store
            .documents()
            .into_iter()
            .map(|(id, doc)| (id, doc.get_heads()))
            .collect(),
    }
}

/// Fields no change after the creating one may alter.
fn immutable(report: &Report) -> (String, String, String, Option<DateTime<FixedOffset>>, u64) {
    (
        report.id.clone(),
        report.case.clone(),
        report.created_by.clone(),
        report.created_at,
        report.schema_version,
    )
}

/// The server's half: `data` is one byte choosing the requester (key
/// `data[0] % 4`; key 3 is revoked) and a sync request body, decoded as the
/// server decodes it and applied to the fuzzing world's store.
///
/// Invariants: the decoded request re-encodes to an equal request; the
/// response re-encodes to an equal response; a report's id, case, creator
/// and creation time never change; its review changes only by a
/// coordinator's change; applying the same request again changes nothing.
pub fn sync_request(data: &[u8]) {
    let Some((&who, body)) = data.split_first() else {
        return;
    };
    let Ok(mut request) = SyncRequest::from_json(body) else {
        return;
    };
    let again = SyncRequest::from_json(&request.to_json()).expect("a decoded request re-encodes");
    assert_eq!(again, request, "the request does not survive re-encoding");
    for change in request.docs.iter_mut().flat_map(|d| d.changes.iter_mut()) {
        repair(change);
    }
    let world = world();
    let requester = member(usize::from(who) % ROLES.len());
    let mut store = world.store.clone();
    let before: Vec<(ReportId, Automerge)> = store.documents();
    let limits = ServerLimits::default();
    let Ok(response) = handle_sync(&mut store, &requester, &request, limits) else {
        return;
    };
    let decoded = SyncResponse::from_json(&response.to_json()).expect("a response re-encodes");
    assert_eq!(
        decoded, response,
        "the response does not survive re-encoding"
    );

    let coordinator = key(2).device_id();
    let new_entries = store
        .feed_after(&requester, world.store.feed_len() as u64, usize::MAX)
        .unwrap_or_else(|e| match e {});
    let coordinator_wrote = new_entries.iter().any(|e| e.actor == coordinator);
    for (id, doc) in store.documents() {
        let Some((_, old)) = before.iter().find(|(old_id, _)| old_id == &id) else {
            continue;
        };
        let (Ok(old), Ok(new)) = (read_report(old), read_report(&doc)) else {
            continue;
        };
        assert_eq!(
            immutable(&old),
            immutable(&new),
            "report {id}: a write-once field changed"
        );
        if !coordinator_wrote {
            assert_eq!(old.review, new.review, "report {id}: review changed");
        }
    }

    let after_first = state(&store);
    handle_sync(&mut store, &requester, &request, limits)
        .expect("a request that applied once applies again");
    assert_eq!(
        after_first,
        state(&store),
        "applying a request a second time changed the store"
    );
}

/// The device's half: `data` is a sync response body, decoded as the
/// device decodes it; each update is absorbed into the device's copy of the
/// report (report `a` holds its creating change, any other starts empty).
///
/// Invariants: the response re-encodes to an equal response; after a
/// successful absorb the document misses no dependency and holds the heads
/// it acknowledges; absorbing the same update again applies nothing.
pub fn sync_response(data: &[u8]) {
    let Ok(mut response) = SyncResponse::from_json(data) else {
        return;
    };
    let again = SyncResponse::from_json(&response.to_json()).expect("a response re-encodes");
    assert_eq!(again, response, "the response does not survive re-encoding");
    for change in response.docs.iter_mut().flat_map(|d| d.changes.iter_mut()) {
        repair(change);
    }
    let world = world();
    for update in &response.docs {
        let mut doc = if update.id == report_id("a") {
            world.a_device.clone()
        } else {
            AutoCommit::new()
        };
        let Ok(absorbed) = absorb(&mut doc, update) else {
            continue;
        };
        assert!(
            doc.get_missing_deps(&[]).is_empty(),
            "absorbed changes miss a dependency"
        );
        if let Some(acked) = &absorbed.acked {
            assert!(
                acked.iter().all(|h| doc.get_missing_deps(&[*h]).is_empty()),
                "acknowledged heads the document does not hold"
            );
        }
        let heads = doc.get_heads();
        let twice = absorb(&mut doc, update).expect("an update that applied once applies again");
        assert!(twice.applied.is_empty(), "an update applied twice");
        assert_eq!(heads, doc.get_heads());
    }
}

/// The case key the envelope target seals and opens with (epoch 1).
fn case_key() -> CaseKey {
    CaseKey::from_bytes(1, [7; 32])
}

/// The case private key of envelope version 2 (epoch 2).
fn case_private_key() -> CasePrivateKey {
    CasePrivateKey::from_bytes(2, [0x48; 32])
}

fn keys(epoch: u32) -> Option<CaseSecret> {
    match epoch {
        1 => Some(CaseSecret::Symmetric(case_key())),
        2 => Some(CaseSecret::Private(case_private_key())),
        _ => None,
    }
}

/// Seals `plain` with fixed keys, as a device would with random ones:
/// to the case public key (version 2) if `v2`, else with the symmetric key.
fn seal_fixed(plain: &[u8], v2: bool) -> Vec<u8> {
    let meta = AttachmentMeta {
        name: "photo.jpg".into(),
        media_type: "image/jpeg".into(),
        size: plain.len() as u64,
        sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, plain)),
        captured_at: Some("2016-05-21T10:40:00+06:00".into()),
    };
    let mut blob = Vec::new();
    let key = if v2 {
        envelope::SealingKey::Public(case_private_key().public())
    } else {
        envelope::SealingKey::Symmetric(case_key())
    };
    let random = envelope::SealRandom {
        content_key: [9; 32],
        nonce_prefix: [3; 7],
        header_nonce: [5; 12],
        ephemeral_seed: [6; 32],
    };
    envelope::seal_with(&key, &random, meta, &mut Cursor::new(plain), &mut blob)
        .expect("sealing into memory succeeds");
    blob
}

/// The attachment envelope. `data[0] % 3` picks the mode:
/// 0. the rest is a blob, opened with the fuzzing case key;
/// 1. the rest (`data[1]` times, at most 256 KiB) is a plaintext, sealed
///    (to the case public key when `data[1]` is odd, else with the
///    symmetric key), opened, and opened again with one byte altered;
/// 2. the rest is header JSON, sealed as a header and followed by the bytes
///    after its first NUL, then opened.
///
/// Invariants: an opened blob's plaintext has the size and SHA-256 its
/// header records and [`envelope::read_meta`] reads the same metadata;
/// sealing then opening gives the plaintext back; an altered blob never
/// opens.
pub fn envelope(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => open_checked(rest),
        1 => {
            let Some((&times, unit)) = rest.split_first() else {
                return;
            };
            let mut plain = Vec::new();
            for _ in 0..=times {
                if plain.len() + unit.len() > 256 * 1024 {
                    break;
                }
                plain.extend_from_slice(unit);
            }
            let mut blob = seal_fixed(&plain, times % 2 == 1);
            let mut out = Vec::new();
            envelope::open(&keys, &mut Cursor::new(&blob), &mut out).expect("a sealed blob opens");
            assert_eq!(out, plain, "sealing then opening changed the file");
            let at = usize::from(times) * 7919 % blob.len();
            blob[at] ^= 1 << (times % 8);
            assert!(
                envelope::open(&keys, &mut Cursor::new(&blob), &mut Vec::new()).is_err(),
                "a blob with byte {at} altered opened"
            );
        }
        _ => {
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let mut header = rest[..split].to_vec();
            let chunks = rest.get(split + 1..).unwrap_or_default();
            let nonce = [5u8; 12];
            envelope::aead_key(case_key().bytes())
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(envelope::header_aad(1)),
                    &mut header,
                )
                .expect("sealing a header succeeds");
            let mut blob = envelope::MAGIC.to_vec();
            blob.extend_from_slice(&1u32.to_be_bytes());
            blob.extend_from_slice(&nonce);
            blob.extend_from_slice(&(header.len() as u32).to_be_bytes());
            blob.extend_from_slice(&header);
            blob.extend_from_slice(chunks);
            open_checked(&blob);
        }
    }
}

fn open_checked(blob: &[u8]) {
    let _ = envelope::head_epoch(blob);
    let meta = envelope::read_meta(&keys, &mut Cursor::new(blob));
    let mut out = Vec::new();
    if let Ok(opened) = envelope::open(&keys, &mut Cursor::new(blob), &mut out) {
        assert_eq!(out.len() as u64, opened.size);
        assert_eq!(
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &out)),
            opened.sha256
        );
        assert_eq!(meta.ok(), Some(opened), "read_meta and open disagree");
    }
}

fn import_options(name: &str, format: Format) -> ImportOptions {
    ImportOptions {
        format,
        file_name: name.into(),
        map: vec![],
        timezone: Some(Zone::Named(chrono_tz::Asia::Almaty)),
        default_date: NaiveDate::from_ymd_opt(2016, 5, 21),
        year: None,
    }
}

/// Parses `data` as `format`, then checks that every report it read is one
/// a device can create: [`ReportDocument::creating_change`] accepts it,
/// and for the first report (when small) the full
/// [`ReportDocument::create`] makes the same change and reads back the
/// same fields.
fn import_checked(data: &[u8], name: &str, format: Format) {
    let Ok(parsed) = import::parse(data, &import_options(name, format)) else {
        return;
    };
    assert_eq!(parsed.format, format);
    let now = time("2024-01-01T00:00:00+00:00");
    for (i, imported) in parsed.reports.iter().enumerate() {
        let new = imported.to_new_report(report_id(&imported.source_key), case_id());
        let (change, _) = ReportDocument::creating_change(key(0), &new, now)
            .unwrap_or_else(|e| panic!("imported report {i} cannot be created: {e}"));
        if i > 0 || new.description.len() > 4096 {
            continue;
        }
        let (doc, created) = ReportDocument::create(key(0), &new, now).expect("creates");
        assert_eq!(created, change, "create and creating_change differ");
        let report = doc.view().expect("a new report reads");
        assert_eq!(report.title, new.title);
        assert_eq!(report.description, new.description);
        assert_eq!(report.occurred_at, Some(new.occurred_at));
        assert_eq!(report.timeline, new.timeline);
    }
}

/// The CSV import parser; see [`import_checked`] for the invariants.
pub fn import_csv(data: &[u8]) {
    import_checked(data, "fuzz.csv", Format::Csv);
}

/// The narrative text import parser; see [`import_checked`].
pub fn import_text(data: &[u8]) {
    import_checked(data, "fuzz.txt", Format::Text);
}

/// The JSON import parser; see [`import_checked`].
pub fn import_json(data: &[u8]) {
    import_checked(data, "fuzz.json", Format::Json);
}

/// The signed-request verifier. `data` is seven lines, the four headers
/// (device, timestamp, nonce, signature), method, path and the server's
/// clock, then the body. The headers are read with
/// [`RequestAuth::from_headers`] and verified under key 0.
///
/// Invariants: a request that verifies carries exactly the signature key 0
/// makes over it; the same request signed by key 0 verifies (or fails only
/// on the clock), and no alteration of its method, path, body, timestamp,
/// nonce or key verifies.
pub fn request_auth(data: &[u8]) {
    let mut parts = data.splitn(8, |&b| b == b'\n');
    let mut line = || {
        parts
            .next()
            .and_then(|l| std::str::from_utf8(l).ok())
            .unwrap_or("")
    };
    let lines: [&str; 7] = std::array::from_fn(|_| line());
    let body = parts.next().unwrap_or_default();
    let [device, timestamp, nonce, signature, method, path, now] = lines;
    let now: i64 = now.parse().unwrap_or(1_463_800_000);
    let public = key(0).public_key();
    let header = |name: &str| match name {
        request_auth::HEADER_DEVICE => Some(device),
        request_auth::HEADER_TIMESTAMP => Some(timestamp),
        request_auth::HEADER_NONCE => Some(nonce),
        request_auth::HEADER_SIGNATURE => Some(signature),
        _ => None,
    };
    let verify = |auth: &RequestAuth, method: &str, path: &str, body: &[u8], key: &PublicKey| {
        auth.verify(key, method, path, body, now, DEFAULT_WINDOW_SECS)
    };
    let auth = match RequestAuth::from_headers(header) {
        Ok(auth) => {
            if verify(&auth, method, path, body, &public).is_ok() {
                let expected = signed(&auth, method, path, body);
                assert_eq!(
                    auth.signature, expected.signature,
                    "a mutated request verified"
                );
            }
            auth
        }
        Err(_) => RequestAuth {
            device: key(0).device_id(),
            timestamp: timestamp.parse().unwrap_or(now),
            nonce: "00112233445566778899aabbccddeeff".into(),
            signature: String::new(),
        },
    };
    let good = signed(&auth, method, path, body);
    match verify(&good, method, path, body, &public) {
        Ok(()) | Err(AuthError::Clock { .. }) => {}
        Err(e) => panic!("a request signed by key 0 does not verify: {e}"),
    }
    let mut longer = body.to_vec();
    longer.push(b'x');
    let mut later = good.clone();
    later.timestamp = later.timestamp.wrapping_add(1);
    let mut other_nonce = good.clone();
    other_nonce.nonce = if good.nonce.starts_with('0') {
        format!("1{}", &good.nonce[1..])
    } else {
        format!("0{}", &good.nonce[1..])
    };
    let altered = [
        verify(&good, &format!("{method}X"), path, body, &public),
        verify(&good, method, &format!("{path}x"), body, &public),
        verify(&good, method, path, &longer, &public),
        verify(&later, method, path, body, &public),
        verify(&other_nonce, method, path, body, &public),
        verify(&good, method, path, body, &key(1).public_key()),
    ];
    for (i, result) in altered.into_iter().enumerate() {
        assert_eq!(
            result,
            Err(AuthError::BadSignature),
            "alteration {i} verified"
        );
    }
}

/// `auth`'s request as key 0 signs it, with `auth`'s timestamp and nonce.
fn signed(auth: &RequestAuth, method: &str, path: &str, body: &[u8]) -> RequestAuth {
    let message = request_auth::signed_message(method, path, auth.timestamp, &auth.nonce, body);
    RequestAuth {
        device: key(0).device_id(),
        timestamp: auth.timestamp,
        nonce: auth.nonce.clone(),
        signature: STANDARD.encode(key(0).sign(Domain::Request, &message).as_bytes()),
    }
}

/// Sync bundles. `data` is a bundle whose last 64 bytes are replaced by
/// key 0's signature (so a mutated bundle by key 0 still verifies), then
/// verified.
///
/// Invariants: a bundle that verifies names key 0 as its signer; writing
/// its manifest and attachments again makes a bundle that verifies to the
/// same manifest.
pub fn bundle(data: &[u8]) {
    let mut bytes = data.to_vec();
    if bytes.len() >= 64 {
        let at = bytes.len() - 64;
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes[..at]);
        let signature = key(0).sign(Domain::Bundle, digest.as_ref());
        bytes[at..].copy_from_slice(signature.as_bytes());
    }
    let len = bytes.len() as u64;
    let mut input = Cursor::new(&bytes);
    let Ok(mut reader) = BundleReader::open(&mut input, len) else {
        return;
    };
    let mut blobs = Vec::new();
    for i in 0..reader.manifest.attachments.len() {
        let mut blob = Vec::new();
        if reader.copy_attachment(i, &mut blob).is_err() {
            return;
        }
        blobs.push(blob);
    }
    let Ok(manifest) = reader.finish() else {
        return;
    };
    assert_eq!(manifest.device, key(0).device_id());
    let again = write_bundle(&manifest, &blobs);
    let reread = bundle::verify(&mut Cursor::new(&again), again.len() as u64)
        .expect("a rewritten bundle verifies");
    assert_eq!(reread, manifest, "the manifest does not survive rewriting");
}

fn write_bundle(manifest: &BundleManifest, blobs: &[Vec<u8>]) -> Vec<u8> {
    let mut next = blobs.iter();
    let mut out = Vec::new();
    bundle::write(
        key(0),
        manifest,
        &mut |_| {
            let blob = next.next().cloned().unwrap_or_default();
            Ok(Box::new(Cursor::new(blob)))
        },
        &mut out,
    )
    .expect("writing a bundle into memory succeeds");
    out
}

/// Share codes: a case key's share code and a web login link's token, each
/// decoded from `data` as text.
///
/// Invariants: a share code that decodes is the code of the key it
/// decodes to (whitespace aside); a token that decodes re-encodes to the
/// same certificate.
pub fn codes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = CaseSecret::from_share_code(text) {
        let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(key.share_code(), cleaned, "a share code decodes two ways");
    }
    if let Ok(cert) = LoginCertificate::from_token(text) {
        let again = LoginCertificate::from_token(&cert.to_token()).expect("a token re-encodes");
        assert_eq!(again, cert);
    }
}

/// Each target's seed corpus, from real encodings: `(target, file name,
/// bytes)`. Deterministic (fixed keys, times and nonces) but for the
/// login token's random nonce.
/// The requests of the hardening audit (issue 14), as seeds: changes
/// declaring 2^62 and ten million operations, a compressed change that
/// inflates, a report given a title that is a number, and a web session's
/// change relayed by a reporter.
fn hostile_requests(world: &World) -> Vec<(&'static str, u8, SyncRequest)> {
    use crate::change_limits::craft::{self, Header};
    let actor = *key(0).public_key().as_bytes();
    let header = Header {
        deps: &[],
        actor: &actor,
        seq: 1,
        start_op: 1,
        time_ms: 1_463_800_000_000,
    };
    let signed = |bytes: Vec<u8>| {
        let signature = key(0)
            .sign(crate::identity::Domain::Change, &craft::change_hash(&bytes))
            .as_bytes()
            .to_vec();
        SignedChange { bytes, signature }
    };
    let offer = |id: &str, base_heads: Vec<ChangeHash>, change: SignedChange| SyncRequest {
        version: PROTOCOL_VERSION,
        cursor: 0,
        docs: vec![DocOffer {
            id: report_id(id),
            base_heads,
            changes: vec![change],
        }],
    };
    let mut a = ReportDocument::load(&world.a_device.clone().save()).expect("loads");
    let a_heads = a.heads();
    let doc = a.automerge();
    doc.set_actor(key(0).public_key().actor_id());
    automerge::transaction::Transactable::put(doc, automerge::ROOT, "title", 42i64).expect("puts");
    doc.commit_with(automerge::transaction::CommitOptions::default().with_time(1_463_900_000_000));
    let title_int = doc.get_last_local_change().expect("a change").clone();
    let session = crate::web_login::SessionKey::from_seed([9; 32]).expect("a session key");
    let cert = crate::web_login::LoginCertificate::issue(
        key(2),
        &session.public_key(),
        2_000_000_000,
        2_000_000_000,
    )
    .expect("a certificate");
    let mut b = ReportDocument::load(&world.a_device.clone().save()).expect("loads");
    let web = b
        .prepare_edit(
            &session.public_key(),
            &[Edit::SetTitle("relayed".into())],
            time("2016-05-22T09:00:00+06:00"),
        )
        .expect("edits")
        .expect("a change");
    let relayed = SignedChange {
        bytes: web.raw_bytes().to_vec(),
        signature: crate::web_login::delegated_signature(
            &cert,
            &session.sign_change(&web.hash().0),
        ),
    };
    vec![
        (
            "ops-2-pow-62",
            0,
            offer(
                "c",
                vec![],
                signed(craft::run_of_puts(&header, "title", 1 << 62)),
            ),
        ),
        (
            "ops-10-million",
            0,
            offer(
                "c",
                vec![],
                signed(craft::run_of_puts(&header, "title", 10_000_000)),
            ),
        ),
        (
            "inflation-bomb",
            0,
            offer(
                "c",
                vec![],
                signed(craft::chunk(2, &craft::deflated_zeros(4000))),
            ),
        ),
        (
            "title-is-a-number",
            0,
            offer("a", a_heads.clone(), SignedChange::sign(&title_int, key(0))),
        ),
        ("web-session-relayed", 0, offer("a", a_heads, relayed)),
    ]
}

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
    }
    let mut store = world.store.clone();
    for (name, cursor, who) in [("feed", 0u64, 2usize), ("own-report", 0, 0), ("tail", 2, 2)] {
        let mut request = request(vec![]);
        request.cursor = cursor;
        let response = handle_sync(&mut store, &member(who), &request, ServerLimits::default())
            .expect("the world syncs");
        out.push(("sync_response", format!("{name}.json"), response.to_json()));
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
    };
    out.push(("sync_response", "answer.json".into(), answer.to_json()));

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
