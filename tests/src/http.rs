//! A raw, signed HTTP client for tests that need to send exactly what they
//! choose: replays, tampered signatures, garbage bodies.

use fieldsync_core::identity::DeviceKey;
use fieldsync_core::request_auth::RequestAuth;

/// A response: status, headers (names in lowercase) and body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `body` to `url` + `path` with `headers`, whatever the status.
pub fn send(method: &str, url: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let response = call(method, url, path, headers, body);
    let (status, headers) = status_and_headers(&response);
    let body = if method == "HEAD" {
        String::new()
    } else {
        response.into_string().unwrap_or_default()
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends a request without a body and returns the raw bytes of the
/// response body, for binary downloads.
pub fn send_for_bytes(
    method: &str,
    url: &str,
    path: &str,
    headers: &[(&str, String)],
) -> (Reply, Vec<u8>) {
    let response = call(method, url, path, headers, b"");
    let (status, headers) = status_and_headers(&response);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).expect("read body");
    (
        Reply {
            status,
            headers,
            body: String::new(),
        },
        bytes,
    )
}

/// The response to a request, whatever its status; panics only when no
/// response came at all.
fn call(
    method: &str,
    url: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> ureq::Response {
    let mut request = ureq::request(method, &format!("{url}{path}"));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = if method == "GET" || method == "HEAD" {
        request.call()
    } else {
        request.send_bytes(body)
    };
    match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request to {url}{path} failed: {e}"),
    }
}

/// Status and headers (names in lowercase) of a response.
fn status_and_headers(response: &ureq::Response) -> (u16, Vec<(String, String)>) {
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_owned();
            Some((name.to_ascii_lowercase(), value))
        })
        .collect();
    (response.status(), headers)
}

/// Opens a raw HTTP/1.1 request to `addr` (host:port) with `headers` and a
/// `Content-Length` of `content_length`, and sends none of the body: the
/// caller writes as much of it as it likes, then drops the stream to cut
/// the request mid-body, as a network failure would.
pub fn open_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    content_length: u64,
) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the server");
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {content_length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .expect("send request head");
    stream
}

/// Signs a request as `key` would and returns the headers.
pub fn signed_headers(
    key: &DeviceKey,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    RequestAuth::sign(key, method, path, body, now)
        .expect("sign")
        .headers()
        .to_vec()
}

/// The device key kept in a device home.
pub fn device_key(home: &std::path::Path) -> DeviceKey {
    fieldsync_core::replica::Replica::open(home)
        .expect("open replica")
        .device_key()
        .expect("read key")
        .expect("device has a key")
}

/// Signs raw change bytes as `key`, the way a device signs its own changes:
/// for changes a test builds by hand, which Automerge may not even parse.
pub fn sign_raw_change(key: &DeviceKey, bytes: Vec<u8>) -> fieldsync_core::SignedChange {
    let hash = fieldsync_core::change_limits::craft::change_hash(&bytes);
    let signature = key
        .sign(fieldsync_core::identity::Domain::Change, &hash)
        .as_bytes()
        .to_vec();
    fieldsync_core::SignedChange { bytes, signature }
}

/// POSTs a sync request offering `changes` to report `id`, signed as `key`.
pub fn offer_changes(
    url: &str,
    key: &DeviceKey,
    id: &fieldsync_core::ReportId,
    base_heads: Vec<automerge::ChangeHash>,
    changes: Vec<fieldsync_core::SignedChange>,
) -> Reply {
    use fieldsync_core::protocol::{DocOffer, SyncRequest, PROTOCOL_VERSION};
    let body = SyncRequest {
        version: PROTOCOL_VERSION,
        cursor: u64::MAX,
        docs: vec![DocOffer {
            id: id.clone(),
            base_heads,
            changes,
        }],
    }
    .to_json();
    send(
        "POST",
        url,
        "/v1/sync",
        &signed_headers(key, "POST", "/v1/sync", &body),
        &body,
    )
}
