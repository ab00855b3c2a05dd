//! The device's HTTP client: the core's [`Transport`] over `ureq`, signing
//! each request with the device key and the clock the server implies.

use std::cell::Cell;
use std::io::Read;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use fieldsync_core::device::{self, Body, Device, Request, Response, Transport, TransportError};
use fieldsync_core::identity::DeviceKey;
use fieldsync_core::protocol::ErrorBody;
use fieldsync_core::replica::Replica;
use fieldsync_core::request_auth::{corrected_offset, describe_offset, RequestAuth};

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
    key: DeviceKey,
    agent: ureq::Agent,
    /// Sync traffic, for `sync --json` and the benchmarks.
    pub traffic: Cell<Traffic>,
    /// Seconds added to the device's clock when signing: learned from a
    /// server that refused a request for its time, kept in the device home.
    clock_offset: Cell<i64>,
}

/// Requests and body bytes of the signed API calls, JSON or CBOR (not
/// blob transfers).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Traffic {
    pub requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Client {
    pub fn new(base: &str, key: DeviceKey) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key,
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

    /// A request to `path` signed over `body`, which the caller must then
    /// send unchanged.
    fn signed_over(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<ureq::Request, TransportError> {
        let now = device_clock().saturating_add(self.clock_offset.get());
        let auth = RequestAuth::sign(&self.key, method, path, body, now)
            .map_err(|e| TransportError::BadResponse(e.to_string()))?;
        let mut request = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        for (name, value) in auth.headers() {
            request = request.set(name, &value);
        }
        Ok(request)
    }

    /// Turns ureq's result into a response or a [`TransportError`] carrying
    /// the server's own message. A refusal for the request's time corrects
    /// the clock offset, so the next request is signed right, unless the
    /// offset would pass [`MAX_CLOCK_CORRECTION_SECS`]; either is said on
    /// stderr.
    fn outcome(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, TransportError> {
        match result {
            Ok(response) => Ok(response),
            Err(ureq::Error::Status(status, response)) => {
                let upload_offset = response.header("Upload-Offset").map(str::to_owned);
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
                            return Err(TransportError::ClockTooFar {
                                offset_secs: offset,
                                message,
                            });
                        }
                        eprintln!(
                            "the server says this device's clock is {} the server's; signing requests with the corrected time (fieldsync corrects up to 48 hours by itself)",
                            describe_offset(offset)
                        );
                        self.clock_offset.set(offset);
                        Err(TransportError::Clock { skew_secs, message })
                    }
                    _ if status == 401 && replayed => Err(TransportError::Replayed { message }),
                    _ => Err(TransportError::Refused {
                        status,
                        message,
                        upload_offset,
                    }),
                }
            }
            Err(ureq::Error::Transport(t)) => Err(TransportError::Unreachable {
                url: self.base.clone(),
                reason: t.to_string(),
            }),
        }
    }
}

impl Transport for Client {
    fn send(&self, request: Request<'_>) -> Result<Response, TransportError> {
        let signed_body: &[u8] = match &request.body {
            Body::Message(bytes) => bytes,
            Body::Empty | Body::Stream(_) => b"",
        };
        let mut call = self.signed_over(request.method, &request.path, signed_body)?;
        for (name, value) in &request.headers {
            call = call.set(name, value);
        }
        let result = match request.body {
            Body::Message(bytes) => {
                let response = self.outcome(call.send_bytes(bytes))?;
                let status = response.status();
                let headers = headers(&response);
                // The signed API calls are what `sync --json` counts.
                let answer = read_all(response);
                let mut traffic = self.traffic.get();
                traffic.requests += 1;
                traffic.bytes_sent += bytes.len() as u64;
                traffic.bytes_received += answer.as_ref().map(|a| a.len() as u64).unwrap_or(0);
                self.traffic.set(traffic);
                return Ok(Response {
                    status,
                    headers,
                    body: Box::new(std::io::Cursor::new(answer?)),
                });
            }
            Body::Stream(reader) => call.send(reader),
            Body::Empty if matches!(request.method, "GET" | "HEAD") => call.call(),
            Body::Empty => call.send_bytes(b""),
        };
        let response = self.outcome(result)?;
        Ok(Response {
            status: response.status(),
            headers: headers(&response),
            body: Box::new(response.into_reader()),
        })
    }

    fn base(&self) -> &str {
        &self.base
    }

    fn clock_offset(&self) -> i64 {
        self.clock_offset.get()
    }
}

fn headers(response: &ureq::Response) -> Vec<(String, String)> {
    response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_owned();
            Some((name, value))
        })
        .collect()
}

fn read_all(response: ureq::Response) -> Result<Vec<u8>, TransportError> {
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| TransportError::BadResponse(e.to_string()))?;
    Ok(body)
}

/// A client for `server`, signing as `key` with the clock offset this
/// device home learned from the server, if any.
pub fn client_for(replica: &Replica, server: &str, key: DeviceKey) -> Result<Client> {
    let offset = device::clock_offset(replica)?;
    Ok(Client::new(server, key).with_clock_offset(offset))
}

/// A client for this device's server; the device key is loaded (asking
/// for the passphrase if the home has one).
pub fn client_of(replica: &Replica, server: &str) -> Result<Client> {
    let key = replica
        .device_key()?
        .context("this device has no identity")?;
    client_for(replica, server, key)
}

/// Keeps a clock offset the client learned in the device home and tells
/// the user their clock is off. The times a user records are never
/// changed by it; only request signatures use it.
pub fn keep_clock_offset(device: &mut Device, client: &Client) -> Result<()> {
    if let Some(offset) = device.keep_clock_offset(client.clock_offset())? {
        say_clock_offset(offset);
    }
    Ok(())
}

/// Tells the user the clock offset the device home now keeps.
pub fn say_clock_offset(offset: i64) {
    if offset == 0 {
        eprintln!("this device's clock now agrees with the server's");
    } else {
        eprintln!(
            "warning: this device's clock is {} the server's; fieldsync signs its requests with the server's time from now on. \
             Times you record (--at, --timeline) are kept exactly as you give them, but set this device's clock: times it stamps by itself are off by as much",
            describe_offset(offset)
        );
    }
}
