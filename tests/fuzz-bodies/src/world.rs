use std::sync::OnceLock;

use automerge::{AutoCommit, ChangeHash};
use chrono::{DateTime, FixedOffset};

use fieldsync_core::document::{NewReport, ReportDocument};
use fieldsync_core::identity::DeviceKey;
use fieldsync_core::ids::{CaseId, DeviceId, ReportId};
use fieldsync_core::model::{DeviceRole, Edit, Person, Report, ReviewStatus, Role};
use fieldsync_core::protocol::{DocOffer, SyncRequest, PROTOCOL_VERSION};
use fieldsync_core::signed_change::SignedChange;
use fieldsync_core::sync::memory::MemoryStore;
use fieldsync_core::sync::policy::Member;
use fieldsync_core::sync::server::{handle_sync, ServerLimits};
use fieldsync_core::web_login::DELEGATED_SIGNATURE_LEN;

/// The fuzzing world's case.
pub const CASE: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";
/// Roles of the fixed keys 0 to 3; key 3 is revoked.
pub(crate) const ROLES: [DeviceRole; 4] = [
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

pub(crate) fn key_from_seed(seed: [u8; 32]) -> DeviceKey {
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

pub(crate) fn member(n: usize) -> Member {
    Member {
        device: key(n).device_id(),
        role: ROLES[n],
        revoked: n == 3,
    }
}

pub(crate) fn case_id() -> CaseId {
    CASE.parse().expect("a valid case id")
}

pub(crate) fn time(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).expect("a valid time")
}

/// Report ids of the fuzzing world: `a` by key 0, `b` by key 1.
pub fn report_id(name: &str) -> ReportId {
    ReportId::derived_from(&[b"fieldsync fuzz", name.as_bytes()])
}

/// The fuzzing world: a server store holding report `a` (created by key 0,
/// edited, reviewed by key 2) and report `b` (key 1), and the device-side
/// history of `a`.
pub(crate) struct World {
    pub(crate) store: MemoryStore,
    /// Every change of report `a`, in order.
    pub(crate) a_changes: Vec<SignedChange>,
    /// Report `a` as key 0's device holds it: the creating change only.
    pub(crate) a_device: AutoCommit,
    pub(crate) b_changes: Vec<SignedChange>,
}

pub(crate) fn world() -> &'static World {
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
    if fieldsync_core::change_limits::check(&change.bytes).is_err() {
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
pub(crate) struct StoreState {
    feed: usize,
    heads: Vec<(ReportId, Vec<ChangeHash>)>,
}

pub(crate) fn state(store: &MemoryStore) -> StoreState {
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
pub(crate) fn immutable(
    report: &Report,
) -> (
    ReportId,
    CaseId,
    DeviceId,
    Option<DateTime<FixedOffset>>,
    u64,
) {
    (
        report.id.clone(),
        report.case.clone(),
        report.created_by.clone(),
        report.created_at,
        report.schema_version,
    )
}
