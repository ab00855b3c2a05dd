use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use fieldsync_core::identity::{Domain, PublicKey};
use fieldsync_core::request_auth::{self, AuthError, RequestAuth, DEFAULT_WINDOW_SECS};

use crate::world::key;

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
pub(crate) fn signed(auth: &RequestAuth, method: &str, path: &str, body: &[u8]) -> RequestAuth {
    let message = request_auth::signed_message(method, path, auth.timestamp, &auth.nonce, body);
    RequestAuth {
        device: key(0).device_id(),
        timestamp: auth.timestamp,
        nonce: auth.nonce.clone(),
        signature: STANDARD.encode(key(0).sign(Domain::Request, &message).as_bytes()),
    }
}
