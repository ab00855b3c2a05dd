//! Review edits made in a browser: changes by a web session's own actor,
//! signed with the key the coordinator's device lent it.

use automerge::AutoCommit;

use super::*;
use crate::identity::Signature;
use crate::model::{Edit, ReviewStatus};
use crate::protocol::{DocOffer, Refusal, PROTOCOL_VERSION};
use crate::signed_change::{attribute, SignedChange};
use crate::sync::server::SyncError;
use crate::web_login::{delegated_signature, LoginCertificate, SessionKey};

const MIB: usize = 1 << 20;
const SESSION_END: u64 = 2_000_000_000; // 2033

/// What the server does for `POST …/prepare` and the browser for signing:
/// a change by the session's actor on the server's copy, signed by the
/// session key under the device's certificate.
fn web_change(
    w: &World,
    device: usize,
    session: &SessionKey,
    id: &ReportId,
    edits: &[Edit],
    at: &str,
) -> SignedChange {
    let device_key = w.devices[device].replica.device_key().unwrap().unwrap();
    let cert =
        LoginCertificate::issue(&device_key, &session.public_key(), SESSION_END, SESSION_END)
            .unwrap();
    let (_, server_doc) = w
        .server
        .documents()
        .into_iter()
        .find(|(doc_id, _)| doc_id == id)
        .unwrap();
    let mut doc =
        crate::ReportDocument::from_automerge(AutoCommit::load(&server_doc.save()).unwrap());
    let change = doc
        .prepare_edit(&session.public_key(), edits, t(at))
        .unwrap()
        .unwrap();
    let signature: Signature = session.sign_change(&change.hash().0);
    SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: delegated_signature(&cert, &signature),
    }
}

fn offer(id: &ReportId, change: SignedChange) -> SyncRequest {
    SyncRequest {
        version: PROTOCOL_VERSION,
        cursor: 0,
        docs: vec![DocOffer {
            id: id.clone(),
            base_heads: vec![],
            changes: vec![change],
        }],
    }
}

fn verified(by: &str) -> Edit {
    Edit::SetReview {
        status: ReviewStatus::Verified,
        note: "two witnesses".into(),
        reviewer: by.into(),
        at: t("2016-05-22T09:00:00+06:00"),
    }
}

#[test]
fn a_coordinators_web_review_merges_with_its_offline_edits_and_names_the_device() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "bus stop arrest");
    w.sync(0, MIB);
    w.sync(1, MIB);
    // The coordinator's phone edits offline while its browser session
    // reviews the same report on the server.
    w.devices[1]
        .replica
        .edit_report(&id, &[Edit::AddTag("detention".into())])
        .unwrap();
    let session = SessionKey::generate().unwrap();
    let coordinator = w.devices[1].key.device_id().to_string();
    let change = web_change(
        &w,
        1,
        &session,
        &id,
        &[verified(&coordinator)],
        "2016-05-22T09:00:00Z",
    );
    let response = w
        .serve_in_session(1, &offer(&id, change.clone()), &session.public_key())
        .unwrap();
    assert!(
        response.docs[0].refused.is_empty(),
        "{:?}",
        response.docs[0]
    );
    w.sync(1, MIB);
    w.sync(0, MIB);
    for device in 0..2 {
        let report = w.devices[device].replica.report(&id).unwrap();
        assert_eq!(report.review.status, ReviewStatus::Verified);
        assert_eq!(
            report.review.reviewer.as_deref(),
            Some(coordinator.as_str())
        );
    }
    let report = w.devices[1].replica.report(&id).unwrap();
    assert!(report.tags.contains("detention"), "the offline edit merged");
    // Anyone holding the change can tell who answers for it.
    let parsed = automerge::Change::try_from(change.bytes.as_slice()).unwrap();
    let who = attribute(&parsed, &change.signature);
    assert_eq!(who.device, Some(w.devices[1].key));
    assert!(who.via_web_session && who.signature_verified);
}

#[test]
fn a_reporters_web_session_cannot_review() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "r");
    w.sync(0, MIB);
    let session = SessionKey::generate().unwrap();
    let change = web_change(
        &w,
        0,
        &session,
        &id,
        &[verified("me")],
        "2016-05-22T09:00:00Z",
    );
    let response = w
        .serve_in_session(0, &offer(&id, change), &session.public_key())
        .unwrap();
    assert_eq!(
        response.docs[0].refused[0].reason,
        Refusal::ReviewIsForCoordinators
    );
}

#[test]
fn a_web_change_dated_after_its_session_or_signed_by_another_key_is_refused() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "r");
    w.sync(0, MIB);
    let session = SessionKey::generate().unwrap();
    let late = web_change(
        &w,
        1,
        &session,
        &id,
        &[Edit::SetTitle("late".into())],
        "2040-01-01T00:00:00Z",
    );
    let member = w.member(1);
    let err = handle_sync(&mut w.server, &member, &offer(&id, late), w.limits).unwrap_err();
    assert!(matches!(err, SyncError::InvalidChange { .. }), "{err}");
    assert!(err.to_string().contains("web session"), "{err}");

    let mut forged = web_change(
        &w,
        1,
        &session,
        &id,
        &[Edit::SetTitle("forged".into())],
        "2016-05-22T09:00:00Z",
    );
    let other = SessionKey::generate().unwrap();
    let cert_len = crate::web_login::CERT_LEN;
    let hash = automerge::Change::try_from(forged.bytes.as_slice())
        .unwrap()
        .hash();
    forged.signature[cert_len..].copy_from_slice(other.sign_change(&hash.0).as_bytes());
    let err = handle_sync(&mut w.server, &member, &offer(&id, forged), w.limits).unwrap_err();
    assert!(matches!(err, SyncError::InvalidChange { .. }), "{err}");
    assert_eq!(w.server.documents().len(), 1);
}

#[test]
fn a_revoked_coordinators_web_session_is_refused() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "r");
    w.sync(0, MIB);
    let session = SessionKey::generate().unwrap();
    let coordinator = w.devices[1].key;
    let change = web_change(
        &w,
        1,
        &session,
        &id,
        &[verified("c")],
        "2016-05-22T09:00:00Z",
    );
    w.server.members.get_mut(&coordinator).unwrap().revoked = true;
    let err = w
        .serve_in_session(1, &offer(&id, change), &session.public_key())
        .unwrap_err();
    assert!(matches!(err, SyncError::Revoked), "{err}");
    assert_eq!(
        w.server.feed_len(),
        1,
        "only the report's creation is stored"
    );
}

#[test]
fn a_web_change_reaches_the_server_new_only_through_its_live_session() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "r");
    w.sync(0, MIB);
    let session = SessionKey::generate().unwrap();
    let first = web_change(
        &w,
        1,
        &session,
        &id,
        &[verified("c")],
        "2016-05-22T09:00:00Z",
    );
    // The link's key material in a reporter's hands after logout: the
    // certificate and the session seed sign a fresh change, and the
    // reporter relays it through the ordinary sync route.
    let response = w.serve(0, &offer(&id, first.clone()));
    assert_eq!(response.docs[0].refused[0].reason, Refusal::SessionNotLive);
    // So does the coordinator's own device, and another session's route.
    let response = w.serve(1, &offer(&id, first.clone()));
    assert_eq!(response.docs[0].refused[0].reason, Refusal::SessionNotLive);
    let other = SessionKey::generate().unwrap();
    let response = w
        .serve_in_session(1, &offer(&id, first.clone()), &other.public_key())
        .unwrap();
    assert_eq!(response.docs[0].refused[0].reason, Refusal::SessionNotLive);
    assert_eq!(w.server.feed_len(), 1, "nothing but the creation is stored");

    // Through its own live session it is taken; relayed afterwards it is a
    // change the server has, which any device may pass on.
    let response = w
        .serve_in_session(1, &offer(&id, first.clone()), &session.public_key())
        .unwrap();
    assert!(response.docs[0].refused.is_empty());
    let response = w.serve(0, &offer(&id, first));
    assert!(response.docs[0].refused.is_empty());
    assert_eq!(w.server.feed_len(), 2);
}
