//! The device's HTTP client: signed requests to a fieldsync server.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fieldsync_core::case_key_trust::PublishedCaseKey;
use fieldsync_core::identity::DeviceKey;
use fieldsync_core::protocol::{
    CaseInfo, CaseKeysResponse, EnrollRequest, EnrollResponse, ErrorBody, InviteRequest,
    InviteResponse, PublishResponse, SyncRequest, SyncResponse,
};
use fieldsync_core::replica::RosterEntry;
use fieldsync_core::request_auth::{corrected_offset, describe_offset, RequestAuth};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the server's answer could not be read: {0}")]
    BadResponse(String),
    /// Refused for the request's time; the client has corrected its
    /// signing clock by `skew_secs`, so a new request goes through.
    #[error("the server refused the request's time ({skew_secs} s off): {message}")]
    Clock { skew_secs: i64, message: String },
    /// Refused for the request's time by more than the client corrects
    /// by itself ([`MAX_CLOCK_CORRECTION_SECS`]); nothing was changed.
    #[error("the server says this device's clock is {} the server's, more than the 48 hours fieldsync corrects by itself; set this device's clock (date, time and time zone), then try again ({message})", describe_offset(*offset_secs))]
    ClockTooFar { offset_secs: i64, message: String },
    /// Refused because a copy of this very request reached the server
    /// first (a network that duplicates requests).
    #[error("the server had already received this request ({message})")]
    Replayed { message: String },
}

/// The largest clock offset the client signs with: 48 hours. The offset
/// comes from an error body, which is not authenticated, so whoever
/// answers for the server could send any value. Requests signed with a
/// time far from the real one are requests an attacker who holds them can
/// replay to the real server when that time comes (the server has not seen
/// their nonces yet). 48 hours covers what real phones get wrong: a wrong
/// time zone (UTC-12 to UTC+14 is 26 hours), a date a day off, daylight
/// saving; a clock further off must be set by hand.
pub const MAX_CLOCK_CORRECTION_SECS: i64 = 48 * 3600;

/// Seconds added to this machine's clock to play a device whose clock is
/// wrong (the hidden `--simulate-clock-skew`, for tests).
static SIMULATED_SKEW_SECS: AtomicI64 = AtomicI64::new(0);

/// Makes this process's device clock `secs` off (tests only).
pub fn simulate_clock_skew(secs: i64) {
    SIMULATED_SKEW_SECS.store(secs, Ordering::Relaxed);
}

/// The device's clock, Unix seconds: the machine's, or a simulated wrong one.
fn device_clock() -> i64 {
    chrono::Utc::now().timestamp() + SIMULATED_SKEW_SECS.load(Ordering::Relaxed)
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Sync traffic, for `sync --json` and the benchmarks.
    pub traffic: Cell<Traffic>,
    /// Seconds added to the device's clock when signing: learned from a
    /// server that refused a request for its time, kept in the device home.
    clock_offset: Cell<i64>,
}

/// Requests and body bytes of the signed JSON calls (not blob transfers).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Traffic {
    pub requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(15))
                .timeout_read(Duration::from_secs(120))
                .timeout_write(Duration::from_secs(120))
                .build(),
            traffic: Default::default(),
            clock_offset: Cell::new(0),
        }
    }

    /// Signs with the device's clock plus `secs` (what the device home
    /// kept from an earlier correction); an offset past
    /// [`MAX_CLOCK_CORRECTION_SECS`] (kept by an older fieldsync) is not used.
    pub fn with_clock_offset(self, secs: i64) -> Self {
        if secs.abs() <= MAX_CLOCK_CORRECTION_SECS {
            self.clock_offset.set(secs);
        }
        self
    }

    /// The offset requests are signed with now; changed by a server's
    /// clock refusal.
    pub fn clock_offset(&self) -> i64 {
        self.clock_offset.get()
    }

    /// A request to `path` (with query) signed by `key` over an empty body.
    /// Blob transfers are signed this way: the bytes are authenticated by
    /// the blob id (their SHA-256), not by the request signature.
    pub fn signed(
        &self,
        key: &DeviceKey,
        method: &str,
        path: &str,
    ) -> Result<ureq::Request, ClientError> {
        self.signed_over(key, method, path, b"")
    }

    /// A request to `path` signed by `key` over `body`, which the caller
    /// must then send unchanged.
    fn signed_over(
        &self,
        key: &DeviceKey,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<ureq::Request, ClientError> {
        let now = device_clock().saturating_add(self.clock_offset.get());
        let auth = RequestAuth::sign(key, method, path, body, now)
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let mut request = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        for (name, value) in auth.headers() {
            request = request.set(name, &value);
        }
        Ok(request)
    }

    /// Where the server is, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A signed POST. Refused for its time, it is signed again once with
    /// the clock the server's answer implies.
    fn post(&self, key: &DeviceKey, path: &str, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        match self.post_once(key, path, body) {
            Err(ClientError::Clock { .. }) => self.post_once(key, path, body),
            other => other,
        }
    }

    fn post_once(&self, key: &DeviceKey, path: &str, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let result = self
            .signed_over(key, "POST", path, body)?
            .set("content-type", "application/json")
            .send_bytes(body);
        let answer = read_all(self.outcome(result)?);
        let mut traffic = self.traffic.get();
        traffic.requests += 1;
        traffic.bytes_sent += body.len() as u64;
        traffic.bytes_received += answer.as_ref().map(|a| a.len() as u64).unwrap_or(0);
        self.traffic.set(traffic);
        answer
    }

    /// Turns ureq's result into a response or a [`ClientError`] carrying
    /// the server's own message. A refusal for the request's time corrects
    /// the clock offset, so the next request is signed right, unless the
    /// offset would pass [`MAX_CLOCK_CORRECTION_SECS`]; either is said on
    /// stderr.
    pub fn outcome(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, ClientError> {
        match result {
            Ok(response) => Ok(response),
            Err(ureq::Error::Status(status, response)) => {
                let body = read_all(response).unwrap_or_default();
                let parsed = serde_json::from_slice::<ErrorBody>(&body).ok();
                let skew = parsed.as_ref().and_then(|e| e.clock_skew_secs);
                let replayed = parsed.as_ref().is_some_and(|e| e.replayed);
                let message = parsed
                    .map(|e| e.error)
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
                match skew {
                    Some(skew_secs) if status == 401 => {
                        let offset = corrected_offset(self.clock_offset.get(), skew_secs);
                        if offset.saturating_abs() > MAX_CLOCK_CORRECTION_SECS {
                            return Err(ClientError::ClockTooFar {
                                offset_secs: offset,
                                message,
                            });
                        }
                        eprintln!(
                            "the server says this device's clock is {} the server's; signing requests with the corrected time (fieldsync corrects up to 48 hours by itself)",
                            describe_offset(offset)
                        );
                        self.clock_offset.set(offset);
                        Err(ClientError::Clock { skew_secs, message })
                    }
                    _ if status == 401 && replayed => Err(ClientError::Replayed { message }),
                    _ => Err(ClientError::Refused { status, message }),
                }
            }
            Err(ureq::Error::Transport(t)) => Err(ClientError::Unreachable {
                url: self.base.clone(),
                reason: t.to_string(),
            }),
        }
    }

    pub fn enroll(&self, key: &DeviceKey, token: &str) -> Result<EnrollResponse, ClientError> {
        let body = serde_json::to_vec(&EnrollRequest {
            token: token.to_owned(),
            public_key: hex::encode(key.public_key().as_bytes()),
        })
        .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let answer = self.post(key, "/v1/enroll", &body)?;
        serde_json::from_slice(&answer).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    pub fn sync(
        &self,
        key: &DeviceKey,
        request: &SyncRequest,
    ) -> Result<SyncResponse, ClientError> {
        let body = request.to_json();
        // The server applies a sync request at most once and answers a
        // repeated one as if new, so when a duplicate of ours got there
        // first, the same request signed afresh gets our answer.
        let answer = match self.post(key, "/v1/sync", &body) {
            Err(ClientError::Replayed { .. }) => self.post(key, "/v1/sync", &body),
            other => other,
        }?;
        SyncResponse::from_json(&answer).map_err(|e| ClientError::BadResponse(e.to_string()))
    }
}

impl Client {
    /// The case, with its import salt (coordinators only).
    pub fn case_info(&self, key: &DeviceKey) -> Result<CaseInfo, ClientError> {
        let response = self.outcome(self.signed(key, "GET", "/v1/case")?.call())?;
        serde_json::from_slice(&read_all(response)?)
            .map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// The case's devices (coordinators only).
    pub fn roster(&self, key: &DeviceKey) -> Result<Vec<RosterEntry>, ClientError> {
        let response = self.outcome(self.signed(key, "GET", "/v1/devices")?.call())?;
        serde_json::from_slice(&read_all(response)?)
            .map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// The case's published public keys (`GET /v1/case-keys`).
    pub fn case_keys(&self, key: &DeviceKey) -> Result<Vec<PublishedCaseKey>, ClientError> {
        let response = self.outcome(self.signed(key, "GET", "/v1/case-keys")?.call())?;
        let answer: CaseKeysResponse = serde_json::from_slice(&read_all(response)?)
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        Ok(answer.case_keys)
    }

    /// Publishes a case public key this (coordinator's) device signed.
    /// `true` if the server did not have it yet.
    pub fn publish_case_key(
        &self,
        key: &DeviceKey,
        published: &PublishedCaseKey,
    ) -> Result<bool, ClientError> {
        let body =
            serde_json::to_vec(published).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let answer: PublishResponse =
            serde_json::from_slice(&self.post(key, "/v1/case-keys", &body)?)
                .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        Ok(answer.stored)
    }

    /// A one-time enrollment token for this (coordinator's) device's case.
    pub fn invite(
        &self,
        key: &DeviceKey,
        request: &InviteRequest,
    ) -> Result<InviteResponse, ClientError> {
        let body =
            serde_json::to_vec(request).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        serde_json::from_slice(&self.post(key, "/v1/invites", &body)?)
            .map_err(|e| ClientError::BadResponse(e.to_string()))
    }
}

fn read_all(response: ureq::Response) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body)
        .map_err(|e| ClientError::BadResponse(e.to_string()))?;
    Ok(body)
}
