//! The server's calls, over any [`Transport`]: the sync round in CBOR
//! (JSON for a server from before CBOR), everything else in JSON.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::transport::{Body, Request, Response, Transport, TransportError};
use crate::case_key_trust::PublishedCaseKey;
use crate::identity::PublicKey;
use crate::protocol::{
    CaseInfo, CaseKeysResponse, EnrollRequest, EnrollResponse, InviteRequest, InviteResponse,
    PublishResponse, SyncRequest, SyncResponse, WireEncoding,
};
use crate::replica::RosterEntry;

/// Tries of a sync round the server answers "busy" (503), the first
/// included; the waits between them double from half a second.
const BUSY_TRIES: u32 = 4;

fn bad(e: impl ToString) -> TransportError {
    TransportError::BadResponse(e.to_string())
}

/// A signed POST of `body` in `encoding`. Refused for its time, it is
/// signed again once with the clock the server's answer implies.
fn post_as(
    t: &impl Transport,
    path: &str,
    body: &[u8],
    encoding: WireEncoding,
) -> Result<Response, TransportError> {
    let once = || {
        t.send(Request {
            method: "POST",
            path: path.to_owned(),
            headers: vec![("content-type", encoding.content_type().to_owned())],
            body: Body::Message(body),
        })
    };
    match once() {
        Err(TransportError::Clock { .. }) => once(),
        other => other,
    }
}

/// A signed POST of a JSON body; the answer's bytes.
fn post(t: &impl Transport, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
    post_as(t, path, body, WireEncoding::Json)?.bytes()
}

fn get<T: DeserializeOwned>(t: &impl Transport, path: &str) -> Result<T, TransportError> {
    let response = t.send(Request {
        method: "GET",
        path: path.to_owned(),
        headers: Vec::new(),
        body: Body::Empty,
    })?;
    serde_json::from_slice(&response.bytes()?).map_err(bad)
}

/// Enrolls the device whose key is `public_key` with a one-time `token`.
pub fn enroll(
    t: &impl Transport,
    public_key: &PublicKey,
    token: &str,
) -> Result<EnrollResponse, TransportError> {
    let body = serde_json::to_vec(&EnrollRequest {
        token: token.to_owned(),
        public_key: hex::encode(public_key.as_bytes()),
    })
    .map_err(bad)?;
    serde_json::from_slice(&post(t, "/v1/enroll", &body)?).map_err(bad)
}

/// One sync round, in `encoding`. A server from before CBOR refuses a
/// CBOR body (415, or 400 because it read it as JSON); the round is then
/// sent again in JSON, and `encoding` becomes JSON for the rest of the
/// sync. The answer is read in the encoding its `Content-Type` names.
pub fn sync_round(
    t: &impl Transport,
    request: &SyncRequest,
    encoding: &mut WireEncoding,
) -> Result<SyncResponse, TransportError> {
    match sync_round_as(t, request, *encoding) {
        Err(e) if *encoding == WireEncoding::Cbor && refuses_cbor(&e) => {
            *encoding = WireEncoding::Json;
            sync_round_as(t, request, WireEncoding::Json)
        }
        other => other,
    }
}

/// Whether a server refused a CBOR sync body for its encoding: nothing of
/// the round was applied, so it can go again in JSON.
fn refuses_cbor(e: &TransportError) -> bool {
    match e {
        TransportError::Refused { status: 415, .. } => true,
        // What servers before CBOR answer, having parsed the body as JSON.
        TransportError::Refused {
            status: 400,
            message,
            ..
        } => message.starts_with("the message is not valid sync JSON"),
        _ => false,
    }
}

/// The server applies a sync request at most once and answers a repeated
/// one as if new, so when a duplicate of ours got there first, the same
/// request signed afresh gets our answer. A server that says it is busy
/// is asked again a few times, waiting longer each time.
fn sync_round_as(
    t: &impl Transport,
    request: &SyncRequest,
    encoding: WireEncoding,
) -> Result<SyncResponse, TransportError> {
    let body = request.encode(encoding);
    let mut tries = 1;
    let answer = loop {
        let answer = match post_as(t, "/v1/sync", &body, encoding) {
            Err(TransportError::Replayed { .. }) => post_as(t, "/v1/sync", &body, encoding),
            other => other,
        };
        match answer {
            Err(e) if e.is_busy() && tries < BUSY_TRIES => {
                std::thread::sleep(Duration::from_millis(500 << (tries - 1)));
                tries += 1;
            }
            Err(TransportError::Refused {
                status: 503,
                message,
                ..
            }) => return Err(TransportError::Busy { tries, message }),
            other => break other?,
        }
    };
    let answered_in = WireEncoding::from_content_type(answer.header("content-type"));
    SyncResponse::decode(&answer.bytes()?, answered_in).map_err(bad)
}

/// The case, with its import salt (coordinators only).
pub fn case_info(t: &impl Transport) -> Result<CaseInfo, TransportError> {
    get(t, "/v1/case")
}

/// The case's devices (coordinators only).
pub fn roster(t: &impl Transport) -> Result<Vec<RosterEntry>, TransportError> {
    get(t, "/v1/devices")
}

/// The case's published public keys.
pub fn case_keys(t: &impl Transport) -> Result<Vec<PublishedCaseKey>, TransportError> {
    Ok(get::<CaseKeysResponse>(t, "/v1/case-keys")?.case_keys)
}

/// Publishes a case public key this (coordinator's) device signed; `true`
/// if the server did not have it yet.
pub fn publish_case_key(
    t: &impl Transport,
    published: &PublishedCaseKey,
) -> Result<bool, TransportError> {
    let body = serde_json::to_vec(published).map_err(bad)?;
    let answer: PublishResponse =
        serde_json::from_slice(&post(t, "/v1/case-keys", &body)?).map_err(bad)?;
    Ok(answer.stored)
}

/// A one-time enrollment token for this (coordinator's) device's case.
pub fn invite(
    t: &impl Transport,
    request: &InviteRequest,
) -> Result<InviteResponse, TransportError> {
    let body = serde_json::to_vec(request).map_err(bad)?;
    serde_json::from_slice(&post(t, "/v1/invites", &body)?).map_err(bad)
}
