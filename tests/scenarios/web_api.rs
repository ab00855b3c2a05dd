//! The review web app's API without a browser: a `web-login` link starts a
//! session once, the session reads the case, and a review edit signed with
//! the link's session key reaches a reporter's phone, attributed to the
//! coordinator's device.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use fieldsync_core::web_login::SessionKey;
use fieldsync_tests::http::{send, Reply};
use fieldsync_tests::{enrolled_device, fieldsync_ok, DeviceHome, ServerProcess};
use serde_json::{json, Value};

struct Case {
    server: ServerProcess,
    coordinator: DeviceHome,
    reporter: DeviceHome,
    report: String,
    _data: tempfile::TempDir,
}

fn case() -> Case {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    coordinator.ok(&["key", "new", "--case", "almaty"]);
    let report = reporter
        .ok(fieldsync_tests::BUS_STOP_ARREST)
        .trim()
        .to_owned();
    reporter.ok(&["sync"]);
    Case {
        server,
        coordinator,
        reporter,
        report,
        _data: data,
    }
}

/// The parts of a login link's fragment.
pub(crate) struct Link {
    pub(crate) token: String,
    pub(crate) keys: String,
    pub(crate) seed: String,
}

pub(crate) fn web_login(device: &DeviceHome) -> Link {
    let out: Value = serde_json::from_str(&device.ok(&["web-login", "--json"])).unwrap();
    let link = out["link"].as_str().unwrap().to_owned();
    let (_, fragment) = link.split_once('#').expect("the link has a fragment");
    let part = |name: &str| {
        fragment
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {fragment}"))
            .to_owned()
    };
    assert!(
        !link.split('#').next().unwrap().contains(&part("k")),
        "the case key must not be in the part of the link a browser sends"
    );
    Link {
        token: part("t"),
        keys: part("k"),
        seed: part("s"),
    }
}

impl Link {
    /// The web session's key, from the seed in the link's fragment.
    pub(crate) fn session_key(&self) -> SessionKey {
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&self.seed)
            .unwrap()
            .try_into()
            .unwrap();
        SessionKey::from_seed(seed).unwrap()
    }
}

/// Signs a prepared review change as the page does (over the hash of its
/// own bytes, with the link's session key) and commits it to `path`.
pub(crate) fn sign_and_commit(
    session: &Session,
    url: &str,
    path: &str,
    link: &Link,
    prepared: &Value,
) -> Reply {
    let change = STANDARD
        .decode(prepared["change"].as_str().unwrap())
        .unwrap();
    let hash = automerge::Change::try_from(change.as_slice())
        .unwrap()
        .hash();
    let signature = link.session_key().sign_change(&hash.0);
    session.post(
        url,
        &format!("{path}/commit"),
        &json!({"change": prepared["change"], "sig": STANDARD.encode(signature.as_bytes())}),
        true,
    )
}

pub(crate) struct Session {
    cookie: String,
    csrf: String,
}

fn login(url: &str, token: &str) -> Reply {
    send(
        "POST",
        url,
        "/web/session",
        &[("Content-Type", "application/json".into())],
        json!({ "token": token }).to_string().as_bytes(),
    )
}

pub(crate) fn start(url: &str, token: &str) -> Session {
    let reply = login(url, token);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let set_cookie = reply.header("set-cookie").expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let me: Value = serde_json::from_str(&reply.body).unwrap();
    Session {
        cookie,
        csrf: me["csrf"].as_str().unwrap().to_owned(),
    }
}

impl Session {
    pub(crate) fn get(&self, url: &str, path: &str) -> Reply {
        send("GET", url, path, &[("Cookie", self.cookie.clone())], b"")
    }

    pub(crate) fn post(&self, url: &str, path: &str, body: &Value, csrf: bool) -> Reply {
        let mut headers = vec![
            ("Cookie", self.cookie.clone()),
            ("Content-Type", "application/json".into()),
        ];
        if csrf {
            headers.push(("X-Fieldsync-CSRF", self.csrf.clone()));
        }
        send("POST", url, path, &headers, body.to_string().as_bytes())
    }
}

pub(crate) fn json_of(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

#[test]
fn a_web_review_signed_in_the_browser_reaches_the_reporters_phone_as_the_coordinators() {
    let c = case();
    let url = &c.server.url;
    let link = web_login(&c.coordinator);
    let session = start(url, &link.token);
    assert_eq!(
        login(url, &link.token).status,
        401,
        "a login link works once"
    );

    let timeline = json_of(&session.get(url, "/web/api/timeline?tag=arrest"));
    let rows = timeline["reports"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["report_id"], c.report.as_str());
    assert_eq!(rows[0]["lat"], 43.25);

    let path = format!("/web/api/reports/{}", c.report);
    let detail = json_of(&session.get(url, &path));
    assert_eq!(detail["report"]["title"], "Arrest at the bus stop");
    assert_eq!(detail["history"][0]["signature_verified"], true);
    assert_eq!(detail["history"][0]["device_id"], c.reporter.id.as_str());

    let edits = json!({"edits": [
        {"op": "set_status", "status": "verified", "note": "two witnesses"},
        {"op": "add_tag", "tag": "detention"},
    ]});
    let prepare = format!("{path}/prepare");
    assert_eq!(
        session.post(url, &prepare, &edits, false).status,
        403,
        "a POST without the CSRF header is refused"
    );
    let prepared = json_of(&session.post(url, &prepare, &edits, true));
    let committed = sign_and_commit(&session, url, &path, &link, &prepared);
    assert_eq!(committed.status, 200, "{}", committed.body);
    let after = json_of(&committed);
    assert_eq!(after["report"]["review"]["status"], "verified");
    let last = after["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["via_web_session"], true);
    assert_eq!(last["device_id"], c.coordinator.id.as_str());

    // The reporter's phone receives the review with its next sync.
    c.reporter.ok(&["sync"]);
    let shown: Value =
        serde_json::from_str(&c.reporter.ok(&["show", &c.report, "--json"])).unwrap();
    assert_eq!(shown["report"]["review"]["status"], "verified");
    assert_eq!(
        shown["report"]["review"]["reviewer"],
        c.coordinator.id.as_str()
    );
    let web = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(web["author"], c.coordinator.id.as_str());
    assert_eq!(web["via_web_session"], true);
    assert_eq!(web["signature_verified"], true);

    // The server never received the case key.
    let key_bytes = URL_SAFE_NO_PAD.decode(&link.keys).unwrap();
    let key_hex = hex::encode(&key_bytes[5..37]);
    for entry in std::fs::read_dir(&c.server.data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&link.keys)
                    && !text.contains(&key_hex)
                    && !text.contains(&link.seed)
            );
            assert!(!bytes.windows(32).any(|w| w == &key_bytes[5..37]));
        }
    }
}

#[test]
fn a_forged_expired_or_reporters_link_opens_nothing_and_revocation_ends_the_session() {
    let c = case();
    let url = &c.server.url;
    let link = web_login(&c.coordinator);
    let mut forged = URL_SAFE_NO_PAD.decode(&link.token).unwrap();
    forged[80] ^= 1; // a longer session than the device signed
    let reply = login(url, &URL_SAFE_NO_PAD.encode(&forged));
    assert_eq!(reply.status, 401);
    assert!(reply.body.contains("not valid"), "{}", reply.body);
    assert_eq!(login(url, "garbage").status, 401);

    let refused = c.reporter.run(&["web-login"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("for coordinators"));

    assert_eq!(
        send("GET", url, "/web/api/timeline", &[], b"").status,
        401,
        "no cookie, no timeline"
    );
    let session = start(url, &link.token);
    assert_eq!(session.get(url, "/web/api/me").status, 200);
    let data = c.server.data.to_str().unwrap().to_owned();
    fieldsync_ok(&["admin", "--data", &data, "revoke", &c.coordinator.id]);
    let reply = session.get(url, "/web/api/me");
    assert_eq!(reply.status, 401);
    assert!(reply.body.contains("web-login"), "{}", reply.body);
}

#[test]
fn the_page_is_served_with_a_strict_content_security_policy() {
    let c = case();
    for path in ["/", "/login", "/assets/app.js", "/web/api/me"] {
        let reply = send("GET", &c.server.url, path, &[], b"");
        let csp = reply.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    let page = send("GET", &c.server.url, "/", &[], b"");
    assert!(page.body.contains("/assets/app.js"));
    assert!(!page.body.contains("<script>"), "no inline script");
    let reply = send(
        "POST",
        &c.server.url,
        "/web/session",
        &[("Origin", "http://evil.example".into())],
        b"{}",
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
}
