//! A raw, signed HTTP client for tests that need to send exactly what they
//! choose: replays, tampered signatures, garbage bodies.

use fieldsync_core::identity::DeviceKey;
use fieldsync_core::request_auth::RequestAuth;

/// A response: status and body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Sends `body` to `url` + `path` with `headers`, whatever the status.
pub fn send(method: &str, url: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let mut request = ureq::request(method, &format!("{url}{path}"));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = if method == "GET" {
        request.call()
    } else {
        request.send_bytes(body)
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request to {url}{path} failed: {e}"),
    };
    let status = response.status();
    Reply {
        status,
        body: response.into_string().unwrap_or_default(),
    }
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
