//! Finding 4: a coordinator's own device never received the reviews it
//! made in the browser, because the feed skipped every change attributed
//! to the requester. The feed now skips only what the requester's own key
//! signed; a web session signs with a key of its own.

use fieldsync_tests::{enrolled_device, ServerProcess, BUS_STOP_ARREST};
use serde_json::{json, Value};

use crate::web_api::{json_of, sign_and_commit, start, web_login};

#[test]
fn a_review_made_in_the_browser_reaches_the_same_coordinators_device_in_one_sync() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    // A login link carries the case keys; a coordinator makes them first.
    coordinator.ok(&["key", "new", "--case", "almaty"]);
    let reporter = enrolled_device(&server, "almaty", "reporter");
    let report = reporter.ok(BUS_STOP_ARREST).trim().to_owned();
    reporter.ok(&["sync"]);
    coordinator.ok(&["sync"]);

    let url = &server.url;
    let link = web_login(&coordinator);
    let session = start(url, &link.token);
    let path = format!("/web/api/reports/{report}");
    let prepared = json_of(&session.post(
        url,
        &format!("{path}/prepare"),
        &json!({"edits": [{"op": "set_status", "status": "disputed", "note": "one witness"}]}),
        true,
    ));
    let committed = sign_and_commit(&session, url, &path, &link, &prepared);
    assert_eq!(committed.status, 200, "{}", committed.body);

    // One sync of the same coordinator's device brings its browser review.
    coordinator.ok(&["sync"]);
    let shown: Value = serde_json::from_str(&coordinator.ok(&["show", &report, "--json"])).unwrap();
    assert_eq!(shown["report"]["review"]["status"], "disputed");
    let last = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["author"], coordinator.id.as_str());
    assert_eq!(last["via_web_session"], true);
    assert_eq!(last["signature_verified"], true);
    // And the reporter's, as before.
    reporter.ok(&["sync"]);
    let shown: Value = serde_json::from_str(&reporter.ok(&["show", &report, "--json"])).unwrap();
    assert_eq!(shown["report"]["review"]["status"], "disputed");
}
