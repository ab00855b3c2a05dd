use automerge::{AutoCommit, Automerge, ChangeHash, ReadDoc};

use fieldsync_core::document::{read_report, ReportDocument};
use fieldsync_core::ids::ReportId;
use fieldsync_core::model::Edit;
use fieldsync_core::protocol::{
    DocOffer, ProtocolError, SyncRequest, SyncResponse, WireEncoding, PROTOCOL_VERSION,
};
use fieldsync_core::signed_change::SignedChange;
use fieldsync_core::sync::device::absorb;
use fieldsync_core::sync::server::{handle_sync, ServerLimits, ServerStore};

use crate::world::{immutable, key, member, repair, report_id, state, time, world, World, ROLES};

/// `body` decoded as JSON, or failing that as CBOR: the fuzzer reaches
/// both decoders through one target.
fn decoded<T>(
    body: &[u8],
    decode: fn(&[u8], WireEncoding) -> Result<T, ProtocolError>,
) -> Option<T> {
    WireEncoding::ALL
        .into_iter()
        .find_map(|encoding| decode(body, encoding).ok())
}

/// The server's half: `data` is one byte choosing the requester (key
/// `data[0] % 4`; key 3 is revoked) and a sync request body, JSON or CBOR,
/// decoded as the server decodes it and applied to the fuzzing world's
/// store.
///
/// Invariants: the decoded request re-encodes to an equal request in both
/// encodings; the response re-encodes to an equal response in both; a report's id, case, creator
/// and creation time never change; its review changes only by a
/// coordinator's change; applying the same request again changes nothing.
pub fn sync_request(data: &[u8]) {
    let Some((&who, body)) = data.split_first() else {
        return;
    };
    let Some(mut request) = decoded(body, SyncRequest::decode) else {
        return;
    };
    for encoding in WireEncoding::ALL {
        let again = SyncRequest::decode(&request.encode(encoding), encoding)
            .expect("a decoded request re-encodes");
        assert_eq!(again, request, "the request does not survive {encoding:?}");
    }
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
    for encoding in WireEncoding::ALL {
        let decoded = SyncResponse::decode(&response.encode(encoding), encoding)
            .expect("a response re-encodes");
        assert_eq!(
            decoded, response,
            "the response does not survive {encoding:?}"
        );
    }

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
/// Invariants: the response (JSON or CBOR) re-encodes to an equal response
/// in both encodings; after a
/// successful absorb the document misses no dependency and holds the heads
/// it acknowledges; absorbing the same update again applies nothing.
pub fn sync_response(data: &[u8]) {
    let Some(mut response) = decoded(data, SyncResponse::decode) else {
        return;
    };
    for encoding in WireEncoding::ALL {
        let again = SyncResponse::decode(&response.encode(encoding), encoding)
            .expect("a response re-encodes");
        assert_eq!(
            again, response,
            "the response does not survive {encoding:?}"
        );
    }
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

/// Each target's seed corpus, from real encodings: `(target, file name,
/// bytes)`. Deterministic (fixed keys, times and nonces) but for the
/// login token's random nonce.
/// The requests of the hardening audit (issue 14), as seeds: changes
/// declaring 2^62 and ten million operations, a compressed change that
/// inflates, a report given a title that is a number, and a web session's
/// change relayed by a reporter.
pub(crate) fn hostile_requests(world: &World) -> Vec<(&'static str, u8, SyncRequest)> {
    use fieldsync_core::change_limits::craft::{self, Header};
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
            .sign(
                fieldsync_core::identity::Domain::Change,
                &craft::change_hash(&bytes),
            )
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
    let session = fieldsync_core::web_login::SessionKey::from_seed([9; 32]).expect("a session key");
    let cert = fieldsync_core::web_login::LoginCertificate::issue(
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
        signature: fieldsync_core::web_login::delegated_signature(
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
