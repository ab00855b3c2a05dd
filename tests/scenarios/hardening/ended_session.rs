//! Finding 3: a web-login link's key material outlived its session. After
//! logout, a reporter holding the link's `t` (the login certificate) and
//! `s` (the session key's seed) signed a change marking its own report
//! verified "as the coordinator", and `/v1/sync` took it; a week-old link
//! worked too. A change signed under a web session's certificate now
//! reaches the server new only through that live session's commit route.

use fieldsync_core::model::{Edit, ReviewStatus};
use fieldsync_core::protocol::{Refusal, SyncResponse};
use fieldsync_core::replica::Replica;
use fieldsync_core::web_login::{delegated_signature, LoginCertificate};
use fieldsync_core::{ReportDocument, ReportId, SignedChange};
use fieldsync_tests::http::{device_key, offer_changes};
use fieldsync_tests::{enrolled_device, ServerProcess, BUS_STOP_ARREST};
use serde_json::json;

use crate::web_api::{start, web_login};

#[test]
fn a_web_login_links_keys_cannot_sign_for_the_coordinator_after_logout() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    // A login link carries the case keys; a coordinator makes them first.
    coordinator.ok(&["key", "new", "--case", "almaty"]);
    let reporter = enrolled_device(&server, "almaty", "reporter");
    let report: ReportId = reporter.ok(BUS_STOP_ARREST).trim().parse().unwrap();
    reporter.ok(&["sync"]);

    // The coordinator logs in with a link and out again; the link's
    // fragment is left in a browser history the reporter can read.
    let link = web_login(&coordinator);
    let session = start(&server.url, &link.token);
    let out = session.post(&server.url, "/web/logout", &json!({}), true);
    assert_eq!(out.status, 204, "{}", out.body);

    let cert = LoginCertificate::from_token(&link.token).unwrap();
    let session_key = link.session_key();
    assert_eq!(cert.session, session_key.public_key());
    let mut doc = ReportDocument::from_automerge(
        Replica::open(reporter.dir.path())
            .unwrap()
            .document(&report)
            .unwrap(),
    );
    let heads = doc.heads();
    let now = chrono::Utc::now().fixed_offset();
    let change = doc
        .prepare_edit(
            &session_key.public_key(),
            &[Edit::SetReview {
                status: ReviewStatus::Verified,
                note: "verified by the coordinator".into(),
                reviewer: coordinator.id.clone(),
                at: now,
            }],
            now,
        )
        .unwrap()
        .unwrap();
    let forged = SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: delegated_signature(&cert, &session_key.sign_change(&change.hash().0)),
    };
    forged
        .verify()
        .expect("the signature itself is valid: the key material is real");

    let key = device_key(reporter.dir.path());
    let reply = offer_changes(&server.url, &key, &report, heads, vec![forged]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let response = SyncResponse::from_json(reply.body.as_bytes()).unwrap();
    let refused = &response.docs[0].refused;
    println!("relayed after logout: {refused:?}");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].reason, Refusal::SessionNotLive);

    // Nothing changed: the coordinator's device sees the report unreviewed.
    coordinator.ok(&["sync"]);
    let shown: serde_json::Value =
        serde_json::from_str(&coordinator.ok(&["show", report.as_str(), "--json"])).unwrap();
    assert_eq!(shown["report"]["review"]["status"], "unverified");
    assert_eq!(shown["history"].as_array().unwrap().len(), 1);
}
