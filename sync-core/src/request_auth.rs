//! Signed HTTP requests. Every request a device sends is signed over its
//! method, path (with query), a timestamp, a random nonce and the SHA-256 of
//! its body. The server checks the signature against the enrolled key, the
//! timestamp against a window, and the nonce against those it has seen, so a
//! captured request can be neither altered nor replayed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

use crate::identity::{DeviceKey, Domain, PublicKey, Signature};
use crate::ids::DeviceId;

pub const HEADER_DEVICE: &str = "x-fieldsync-device";
pub const HEADER_TIMESTAMP: &str = "x-fieldsync-timestamp";
pub const HEADER_NONCE: &str = "x-fieldsync-nonce";
pub const HEADER_SIGNATURE: &str = "x-fieldsync-signature";
/// How far a request's timestamp may be from the server's clock.
pub const DEFAULT_WINDOW_SECS: i64 = 300;

/// The four headers that authenticate a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAuth {
    pub device: DeviceId,
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the request has no {0} header; it must be signed by an enrolled device")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the request's timestamp is {skew_secs} seconds away from the server's clock (at most {window_secs} allowed); set this device's clock to the right time and sync again")]
    Clock { skew_secs: i64, window_secs: i64 },
    #[error("the request signature does not verify for this device")]
    BadSignature,
    #[error("the system random number generator failed")]
    Random,
}

impl RequestAuth {
    /// Signs a request. `path` includes the query string, as sent.
    pub fn sign(
        key: &DeviceKey,
        method: &str,
        path: &str,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Self, AuthError> {
        let mut nonce = [0u8; 16];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| AuthError::Random)?;
        Ok(Self::sign_with_nonce(
            key,
            method,
            path,
            body,
            now_secs,
            &hex::encode(nonce),
        ))
    }

    /// [`Self::sign`] with a given nonce (32 lowercase hex characters): for
    /// test vectors. A real request must use a fresh random nonce.
    pub fn sign_with_nonce(
        key: &DeviceKey,
        method: &str,
        path: &str,
        body: &[u8],
        now_secs: i64,
        nonce: &str,
    ) -> Self {
        let signature = key.sign(
            Domain::Request,
            &signed_message(method, path, now_secs, nonce, body),
        );
        Self {
            device: key.device_id(),
            timestamp: now_secs,
            nonce: nonce.to_owned(),
            signature: STANDARD.encode(signature.as_bytes()),
        }
    }

    /// Reads the headers through `get`, which returns a header's value.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, AuthError> {
        let header = |name: &'static str| get(name).ok_or(AuthError::Missing(name));
        let device = header(HEADER_DEVICE)?
            .parse()
            .map_err(|_| AuthError::Malformed(HEADER_DEVICE))?;
        let timestamp = header(HEADER_TIMESTAMP)?
            .parse()
            .map_err(|_| AuthError::Malformed(HEADER_TIMESTAMP))?;
        let nonce = header(HEADER_NONCE)?;
        if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Malformed(HEADER_NONCE));
        }
        Ok(Self {
            device,
            timestamp,
            nonce: nonce.to_owned(),
            signature: header(HEADER_SIGNATURE)?.to_owned(),
        })
    }

    /// The headers to send, as (name, value) pairs.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_DEVICE, self.device.to_string()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }

    /// Checks the signature and the clock. The caller must also check that
    /// the nonce is new and that `key` is the enrolled key of `self.device`.
    pub fn verify(
        &self,
        key: &PublicKey,
        method: &str,
        path: &str,
        body: &[u8],
        now_secs: i64,
        window_secs: i64,
    ) -> Result<(), AuthError> {
        let signature = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|bytes| Signature::from_bytes(&bytes).ok())
            .ok_or(AuthError::Malformed(HEADER_SIGNATURE))?;
        key.verify(
            Domain::Request,
            &signed_message(method, path, self.timestamp, &self.nonce, body),
            &signature,
        )
        .map_err(|_| AuthError::BadSignature)?;
        // Saturating: a signed timestamp of i64::MIN must not overflow.
        let skew_secs = self.timestamp.saturating_sub(now_secs);
        if skew_secs.unsigned_abs() > window_secs.unsigned_abs() {
            return Err(AuthError::Clock {
                skew_secs,
                window_secs,
            });
        }
        Ok(())
    }
}

/// The offset a device adds to its own clock to sign requests, after the
/// server refused one signed with `offset_secs` as `skew_secs` off: the
/// corrected offset lands the next request on the server's clock.
pub fn corrected_offset(offset_secs: i64, skew_secs: i64) -> i64 {
    offset_secs.saturating_sub(skew_secs)
}

/// How far off a device's clock is, in words: "24 hours behind", "5
/// minutes ahead". `offset_secs` is what the device adds to its clock to
/// match the server's (positive: the device is behind).
pub fn describe_offset(offset_secs: i64) -> String {
    let way = if offset_secs > 0 {
        "behind"
    } else {
        "ahead of"
    };
    let secs = offset_secs.unsigned_abs();
    let (n, unit) = if secs >= 2 * 3600 {
        ((secs + 1800) / 3600, "hours")
    } else if secs >= 3600 {
        (1, "hour")
    } else if secs >= 120 {
        ((secs + 30) / 60, "minutes")
    } else {
        (secs, if secs == 1 { "second" } else { "seconds" })
    };
    format!("{n} {unit} {way}")
}

/// The bytes a request signature covers, after the domain tag
/// `"fieldsync request v1\0"`: `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nhex(sha256(body))`.
pub fn signed_message(
    method: &str,
    path: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let body_hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, body));
    format!("{method}\n{path}\n{timestamp}\n{nonce}\n{body_hash}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        auth: &RequestAuth,
        key: &PublicKey,
        method: &str,
        path: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), AuthError> {
        let headers = auth.headers();
        let parsed = RequestAuth::from_headers(|name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        })?;
        parsed.verify(key, method, path, body, now, DEFAULT_WINDOW_SECS)
    }

    #[test]
    fn a_signed_request_verifies_and_any_alteration_does_not() {
        let key = DeviceKey::generate().unwrap();
        let public = key.public_key();
        let auth = RequestAuth::sign(&key, "POST", "/v1/sync", b"{}", 1_000_000).unwrap();
        assert_eq!(
            check(&auth, &public, "POST", "/v1/sync", b"{}", 1_000_010),
            Ok(())
        );
        assert_eq!(
            check(&auth, &public, "POST", "/v1/sync", b"{ }", 1_000_010),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(&auth, &public, "GET", "/v1/sync", b"{}", 1_000_010),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(&auth, &public, "POST", "/v1/timeline", b"{}", 1_000_010),
            Err(AuthError::BadSignature)
        );
        let other = DeviceKey::generate().unwrap().public_key();
        assert_eq!(
            check(&auth, &other, "POST", "/v1/sync", b"{}", 1_000_010),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn a_clock_a_day_off_gets_an_error_that_says_so() {
        let key = DeviceKey::generate().unwrap();
        let auth = RequestAuth::sign(&key, "POST", "/v1/sync", b"", 1_000_000 - 86_400).unwrap();
        let err = check(&auth, &key.public_key(), "POST", "/v1/sync", b"", 1_000_000).unwrap_err();
        assert_eq!(
            err,
            AuthError::Clock {
                skew_secs: -86_400,
                window_secs: DEFAULT_WINDOW_SECS
            }
        );
        assert!(err.to_string().contains("set this device's clock"), "{err}");
    }

    /// Found by fuzzing: a signed timestamp far from the server's clock
    /// overflowed the skew arithmetic.
    #[test]
    fn an_extreme_timestamp_is_a_clock_error_not_an_overflow() {
        let key = DeviceKey::generate().unwrap();
        for (signed_at, now) in [(i64::MIN, 1_000_000), (i64::MAX, -1_000_000)] {
            let auth = RequestAuth::sign(&key, "POST", "/v1/sync", b"", signed_at).unwrap();
            let err = check(&auth, &key.public_key(), "POST", "/v1/sync", b"", now).unwrap_err();
            assert!(matches!(err, AuthError::Clock { .. }), "{err}");
        }
    }

    #[test]
    fn a_corrected_offset_lands_the_next_request_inside_the_window() {
        let key = DeviceKey::generate().unwrap();
        let server_now = 1_000_000;
        // A device a day behind signs with its own clock and is refused.
        let device_now = server_now - 86_400;
        let auth = RequestAuth::sign(&key, "POST", "/v1/sync", b"", device_now).unwrap();
        let Err(AuthError::Clock { skew_secs, .. }) = check(
            &auth,
            &key.public_key(),
            "POST",
            "/v1/sync",
            b"",
            server_now,
        ) else {
            panic!("a day off must be refused for the clock");
        };
        let offset = corrected_offset(0, skew_secs);
        assert_eq!(offset, 86_400);
        // A few seconds later it signs again with the offset: accepted.
        let auth =
            RequestAuth::sign(&key, "POST", "/v1/sync", b"", device_now + 3 + offset).unwrap();
        let later = server_now + 3;
        assert_eq!(
            check(&auth, &key.public_key(), "POST", "/v1/sync", b"", later),
            Ok(())
        );
        // An offset that went stale (the clock was fixed) is corrected too.
        assert_eq!(corrected_offset(86_400, 86_400), 0);
    }

    #[test]
    fn an_offset_is_described_in_words() {
        assert_eq!(describe_offset(86_400), "24 hours behind");
        assert_eq!(describe_offset(-86_400), "24 hours ahead of");
        assert_eq!(describe_offset(3_700), "1 hour behind");
        assert_eq!(describe_offset(-7 * 60 - 10), "7 minutes ahead of");
        assert_eq!(describe_offset(45), "45 seconds behind");
        assert_eq!(describe_offset(-1), "1 second ahead of");
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let err = RequestAuth::from_headers(|_| None).unwrap_err();
        assert_eq!(err, AuthError::Missing(HEADER_DEVICE));
        let err = RequestAuth::from_headers(|name| match name {
            HEADER_DEVICE => Some("0123456789abcdef0123456789abcdef"),
            HEADER_TIMESTAMP => Some("soon"),
            _ => Some("x"),
        })
        .unwrap_err();
        assert_eq!(err, AuthError::Malformed(HEADER_TIMESTAMP));
    }
}
