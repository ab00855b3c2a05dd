//! The one thing a device needs from a network: send a signed request to
//! its server and get the answer. The client implements it (the CLI with
//! `ureq`); the core decides what to send and what an answer means.

use std::io::Read;

use crate::request_auth::describe_offset;

/// A request to the device's server, signed by the transport with the
/// device's key (and its corrected clock).
pub struct Request<'a> {
    pub method: &'static str,
    /// Path and query, which the signature covers.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body<'a>,
}

pub enum Body<'a> {
    /// No body (signed over the empty body).
    Empty,
    /// An API message, JSON or CBOR (its `Content-Type` says which): the
    /// signature covers these bytes, and the transport counts them as sync
    /// traffic.
    Message(&'a [u8]),
    /// Blob bytes, streamed; the request is signed over an empty body and
    /// the bytes are authenticated by the blob id (their SHA-256). The
    /// caller sets `Content-Length`.
    Stream(Box<dyn Read + 'a>),
}

/// A successful (2xx) answer.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn Read + Send>,
}

impl Response {
    /// A header's value; names compare case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole body.
    pub fn bytes(self) -> Result<Vec<u8>, TransportError> {
        let mut body = Vec::new();
        let mut reader = self.body;
        reader
            .read_to_end(&mut body)
            .map_err(|e| TransportError::BadResponse(e.to_string()))?;
        Ok(body)
    }
}

/// Sends requests to one server.
pub trait Transport {
    /// Signs and sends `request`; a non-2xx answer is an error carrying the
    /// server's own message.
    fn send(&self, request: Request<'_>) -> Result<Response, TransportError>;

    /// Where the server is, for messages.
    fn base(&self) -> &str;

    /// Seconds added to the device's clock when signing: what the device
    /// home kept, corrected by any refusal for the request's time since.
    fn clock_offset(&self) -> i64 {
        0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("could not reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server refused the request ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        /// The answer's `Upload-Offset` header, which a tus server sends
        /// with a body it saw end early.
        upload_offset: Option<String>,
    },
    #[error("the server's answer could not be read: {0}")]
    BadResponse(String),
    /// Refused for the request's time; the transport has corrected its
    /// signing clock by `skew_secs`, so a new request goes through.
    #[error("the server refused the request's time ({skew_secs} s off): {message}")]
    Clock { skew_secs: i64, message: String },
    /// Refused for the request's time by more than a device corrects by
    /// itself; nothing was changed.
    #[error("the server says this device's clock is {} the server's, more than the 48 hours fieldsync corrects by itself; set this device's clock (date, time and time zone), then try again ({message})", describe_offset(*offset_secs))]
    ClockTooFar { offset_secs: i64, message: String },
    /// The server answered "busy" (503) to every one of `tries` tries.
    #[error("the server stayed busy through {tries} tries: {message}")]
    Busy { tries: u32, message: String },
    /// Refused because a copy of this very request reached the server
    /// first (a network that duplicates requests).
    #[error("the server had already received this request ({message})")]
    Replayed { message: String },
}

impl TransportError {
    /// The server said it is busy (503): trying again later may help.
    pub fn is_busy(&self) -> bool {
        matches!(self, TransportError::Refused { status: 503, .. })
    }
}
