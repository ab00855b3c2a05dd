//! The two encodings of the sync messages and the checks every decoded
//! message passes, whichever encoding it came in. CBOR is the compact one
//! devices send; JSON stays for debugging, the phone app and devices from
//! before CBOR. The request's `Content-Type` says which; the answer comes
//! in the same.

use std::collections::HashSet;

use super::cbor::{self, CborError};
use super::messages::{SyncRequest, SyncResponse, PROTOCOL_VERSION};
use crate::ids::ReportId;

/// How a sync message is written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireEncoding {
    /// JSON, change bytes and signatures in base64, hashes in hex.
    Json,
    /// CBOR (RFC 8949) arrays, byte fields as byte strings.
    Cbor,
}

impl WireEncoding {
    /// Every encoding, for tests that try each.
    pub const ALL: [WireEncoding; 2] = [WireEncoding::Json, WireEncoding::Cbor];

    /// The media type this encoding is sent as.
    pub const fn content_type(self) -> &'static str {
        match self {
            WireEncoding::Json => "application/json",
            WireEncoding::Cbor => "application/cbor",
        }
    }

    /// The encoding a `Content-Type` header names: CBOR for
    /// `application/cbor` (any case, any parameters), JSON for anything
    /// else and for no header, as every server before CBOR read it.
    pub fn from_content_type(header: Option<&str>) -> Self {
        let essence = header
            .and_then(|h| h.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        if essence.eq_ignore_ascii_case("application/cbor") {
            WireEncoding::Cbor
        } else {
            WireEncoding::Json
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the message is not valid sync JSON: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("the message is not valid sync CBOR: {0}")]
    MalformedCbor(CborError),
    #[error("protocol version {got} is not supported (this side speaks {PROTOCOL_VERSION}); update fieldsync")]
    Version { got: u32 },
    #[error("report {0} appears twice in one request")]
    DuplicateDocument(ReportId),
}

impl SyncRequest {
    pub fn encode(&self, encoding: WireEncoding) -> Vec<u8> {
        match encoding {
            WireEncoding::Json => self.to_json(),
            WireEncoding::Cbor => self.to_cbor(),
        }
    }

    pub fn decode(bytes: &[u8], encoding: WireEncoding) -> Result<Self, ProtocolError> {
        match encoding {
            WireEncoding::Json => Self::from_json(bytes),
            WireEncoding::Cbor => Self::from_cbor(bytes),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("sync messages always serialize")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let request: Self = serde_json::from_slice(bytes)?;
        check_version(request.version)?;
        request.check_documents()
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode_request(self)
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ProtocolError> {
        cbor::decode_request(bytes)?.check_documents()
    }

    /// Each report at most once: the server applies one offer per report.
    fn check_documents(self) -> Result<Self, ProtocolError> {
        let mut seen = HashSet::with_capacity(self.docs.len());
        for doc in &self.docs {
            if !seen.insert(&doc.id) {
                return Err(ProtocolError::DuplicateDocument(doc.id.clone()));
            }
        }
        Ok(self)
    }
}

impl SyncResponse {
    pub fn encode(&self, encoding: WireEncoding) -> Vec<u8> {
        match encoding {
            WireEncoding::Json => self.to_json(),
            WireEncoding::Cbor => self.to_cbor(),
        }
    }

    pub fn decode(bytes: &[u8], encoding: WireEncoding) -> Result<Self, ProtocolError> {
        match encoding {
            WireEncoding::Json => Self::from_json(bytes),
            WireEncoding::Cbor => Self::from_cbor(bytes),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("sync messages always serialize")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let response: Self = serde_json::from_slice(bytes)?;
        check_version(response.version)?;
        Ok(response)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode_response(self)
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ProtocolError> {
        Ok(cbor::decode_response(bytes)?)
    }
}

impl From<CborError> for ProtocolError {
    /// A version the CBOR decoder stopped at is the same refusal as in JSON.
    fn from(e: CborError) -> Self {
        match e {
            CborError::Version(got) => ProtocolError::Version { got },
            other => ProtocolError::MalformedCbor(other),
        }
    }
}

fn check_version(got: u32) -> Result<(), ProtocolError> {
    if got == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtocolError::Version { got })
    }
}

// The request builder ([`crate::sync::device::RequestBuilder`]) bounds a
// request with these JSON sizes whatever the encoding: the CBOR of every
// part is smaller than its JSON (PROTOCOL.md, "Limits"), so they are an
// upper bound for both, which `cbor_requests_fit_the_json_estimate` checks.

/// Bytes a document offer adds to a request besides its changes.
pub(crate) const OFFER_OVERHEAD: usize = 64 + 32 /* id */;
/// Bytes of a request besides its offers.
pub(crate) const REQUEST_OVERHEAD: usize = 64;
/// Bytes per head hash in JSON.
pub(crate) const HASH_WIRE_LEN: usize = 64 + 3;
