//! Finding 5: the review page signs what the server tells it to. The page's
//! own check of a prepared change is tested in node (tests/browser/unit/) and
//! in the browser (`web_review`); here are the parts around it: the CLI
//! hands its keys only to a server reached over TLS or on this machine, and
//! the server believes a reverse proxy's forwarded headers only when told to
//! (`serve --trust-proxy`).

use std::net::{IpAddr, UdpSocket};
use std::process::Output;

use fieldsync_tests::http::{send, Reply};
use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};
use serde_json::{json, Value};

/// This machine's address on its outward network (not loopback): the one a
/// packet to a TEST-NET address would leave from. Nothing is sent.
fn non_loopback_address() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("this test needs a network interface besides loopback");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "no non-loopback address: {ip}");
    ip
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn enroll_at(home: &DeviceHome, url: &str, token: &str, extra: &[&str]) -> Output {
    let mut args = vec!["device", "enroll", "--server", url, "--token", token];
    args.extend_from_slice(extra);
    home.run(&args)
}

fn says_what_to_do(out: &Output) {
    let message = stderr(out);
    assert!(!out.status.success(), "should have been refused");
    for words in ["plain http", "TLS", "reverse proxy", "--insecure-http"] {
        assert!(message.contains(words), "{message:?} should say {words:?}");
    }
}

#[test]
fn enroll_refuses_plain_http_to_another_host_unless_insecure_http() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "0.0.0.0:0");
    server.create_case("almaty");
    let port = server.addr.rsplit(':').next().unwrap();
    let url = format!("http://{}:{port}", non_loopback_address());
    let token = server.invite("almaty", "reporter");

    let phone = DeviceHome::new();
    let refused = enroll_at(&phone, &url, &token, &[]);
    says_what_to_do(&refused);
    println!("refused: {}", stderr(&refused).trim());

    // Nothing was sent: the same one-time token still enrolls, once the
    // user says the network is theirs.
    let allowed = enroll_at(&phone, &url, &token, &["--insecure-http"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
}

#[test]
fn web_login_refuses_a_plain_http_server_that_is_not_this_machine() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "0.0.0.0:0");
    server.create_case("almaty");
    let port = server.addr.rsplit(':').next().unwrap();
    let url = format!("http://{}:{port}", non_loopback_address());
    let coordinator = DeviceHome::new();
    let token = server.invite("almaty", "coordinator");
    let enrolled = enroll_at(&coordinator, &url, &token, &["--insecure-http"]);
    assert!(enrolled.status.success(), "{}", stderr(&enrolled));

    let refused = coordinator.run(&["web-login", "--json"]);
    says_what_to_do(&refused);
    assert!(
        refused.stdout.is_empty(),
        "no link may be printed: {}",
        String::from_utf8_lossy(&refused.stdout)
    );

    let allowed = coordinator.ok(&["web-login", "--json", "--insecure-http"]);
    let link: Value = serde_json::from_str(&allowed).unwrap();
    assert!(link["link"].as_str().unwrap().starts_with(&url));
}

#[test]
fn loopback_http_still_enrolls_and_logs_in() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let port = server.addr.rsplit(':').next().unwrap();
    for url in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let coordinator = DeviceHome::new();
        let out = enroll_at(
            &coordinator,
            &url,
            &server.invite("almaty", "coordinator"),
            &[],
        );
        assert!(out.status.success(), "{url}: {}", stderr(&out));
        let link: Value = serde_json::from_str(&coordinator.ok(&["web-login", "--json"])).unwrap();
        assert!(link["link"].as_str().unwrap().starts_with(&url));
    }
}

/// The login token of a fresh `web-login` link of `coordinator`.
fn login_token(coordinator: &DeviceHome) -> String {
    let link: Value = serde_json::from_str(&coordinator.ok(&["web-login", "--json"])).unwrap();
    let link = link["link"].as_str().unwrap().to_owned();
    let fragment = link.split('#').nth(1).unwrap();
    fragment
        .split('&')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .to_owned()
}

fn start_session(server: &ServerProcess, token: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all: Vec<(&str, String)> = vec![("Content-Type", "application/json".into())];
    all.extend(headers.iter().map(|(n, v)| (*n, v.to_string())));
    send(
        "POST",
        &server.url,
        "/web/session",
        &all,
        json!({ "token": token }).to_string().as_bytes(),
    )
}

fn cookie_is_secure(reply: &Reply) -> bool {
    let cookie = reply.header("set-cookie").expect("a session cookie");
    cookie.split(';').any(|a| a.trim() == "Secure")
}

const FORGED: [(&str, &str); 3] = [
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("Forwarded", "proto=https;host=evil.example"),
];

#[test]
fn forged_forwarded_headers_do_not_pass_the_origin_check_without_trust_proxy() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");

    // Another site's page claims, through forwarded headers, to be the
    // origin the server is reached at.
    let mut headers = FORGED.to_vec();
    headers.push(("Origin", "https://evil.example"));
    let reply = start_session(&server, &login_token(&coordinator), &headers);
    assert_eq!(
        reply.status, 403,
        "the Origin check believed the forwarded headers: {}",
        reply.body
    );
    assert!(reply.body.contains("another site"), "{}", reply.body);
}

#[test]
fn a_forged_forwarded_proto_does_not_make_the_cookie_secure_without_trust_proxy() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");

    // A plain-http request that claims https does not get a Secure cookie
    // (which the browser would then never send back over http).
    let reply = start_session(&server, &login_token(&coordinator), &FORGED);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        !cookie_is_secure(&reply),
        "{:?}",
        reply.header("set-cookie")
    );
}

#[test]
fn a_reverse_proxys_headers_are_believed_with_trust_proxy() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(data.path(), "127.0.0.1:0", &["--trust-proxy"]);
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let proxy = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "review.example.org"),
        ("Origin", "https://review.example.org"),
    ];
    let reply = start_session(&server, &login_token(&coordinator), &proxy);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(cookie_is_secure(&reply), "{:?}", reply.header("set-cookie"));

    let mut other = FORGED.to_vec();
    other.push(("Origin", "https://another.example"));
    let reply = start_session(&server, &login_token(&coordinator), &other);
    assert_eq!(reply.status, 403, "{}", reply.body);
}
