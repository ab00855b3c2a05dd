//! The CBOR encoding of the sync messages (RFC 8949): each message is a
//! definite-length array of its fields in a fixed order, change bytes,
//! signatures and hashes are byte strings. PROTOCOL.md ("Encodings") has the
//! layout field by field.
//!
//! Written by hand over minicbor's `Encoder` and `Decoder` rather than
//! derived, because a body comes from whoever holds a device key and the
//! decoder must refuse, before allocating, what it would otherwise trust:
//! - every count is checked against the bytes left in the body (each item
//!   takes at least one), and vectors grow as items actually arrive;
//! - byte and text strings are slices of the body, checked against its
//!   length by minicbor, never buffers of a declared size;
//! - lengths are definite; tags, maps, floats and unknown fields are
//!   refused, not skipped, so the nesting is the schema's (four arrays
//!   deep at most) whatever the body claims;
//! - bytes after the message are refused.

use automerge::ChangeHash;
use minicbor::decode::{Decoder, Error as DecodeError};
use minicbor::Encoder;
use serde::Deserialize;

use super::messages::{
    DocOffer, DocUpdate, Refusal, RefusedChange, SyncRequest, SyncResponse, PROTOCOL_VERSION,
};
use crate::ids::{IdError, ReportId};
use crate::signed_change::SignedChange;

/// Items a vector is given room for before they arrive; past it, it grows
/// as they do.
const PREALLOCATED_ITEMS: usize = 256;

/// Why a CBOR sync message was refused.
#[derive(Debug, thiserror::Error)]
pub enum CborError {
    #[error("{0}")]
    Syntax(#[from] DecodeError),
    #[error("{what} has an indefinite length; only definite lengths are accepted")]
    Indefinite { what: &'static str },
    #[error(
        "{what} declares {declared} items, more than the {left} bytes left in the message can hold"
    )]
    TooMany {
        what: &'static str,
        declared: u64,
        left: usize,
    },
    #[error("{what} has {got} fields; this version has {expected}")]
    Fields {
        what: &'static str,
        got: u64,
        expected: &'static str,
    },
    #[error("a change hash is 32 bytes, not {0}")]
    HashLength(usize),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("unknown refusal reason {0:?}")]
    Refusal(String),
    #[error("{0} bytes follow the message")]
    Trailing(usize),
    /// The message is of another protocol version, whose layout may differ:
    /// decoding stopped at its version field.
    #[error("protocol version {0}")]
    Version(u32),
}

type Enc = Encoder<Vec<u8>>;

// Writing into a `Vec` cannot fail; the `expect`s below say so once each.
type EncResult = Result<(), minicbor::encode::Error<std::convert::Infallible>>;

pub(super) fn encode_request(request: &SyncRequest) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    write_request(&mut e, request).expect("writing CBOR into a Vec cannot fail");
    e.into_writer()
}

pub(super) fn encode_response(response: &SyncResponse) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    write_response(&mut e, response).expect("writing CBOR into a Vec cannot fail");
    e.into_writer()
}

fn write_request(e: &mut Enc, r: &SyncRequest) -> EncResult {
    e.array(3)?.u32(r.version)?.u64(r.cursor)?;
    e.array(r.docs.len() as u64)?;
    for doc in &r.docs {
        e.array(3)?.str(doc.id.as_str())?;
        write_hashes(e, &doc.base_heads)?;
        write_changes(e, &doc.changes)?;
    }
    Ok(())
}

fn write_response(e: &mut Enc, r: &SyncResponse) -> EncResult {
    // The time zone, the one optional field, is left out when absent.
    let fields = if r.case_timezone.is_some() { 5 } else { 4 };
    e.array(fields)?.u32(r.version)?;
    e.array(r.docs.len() as u64)?;
    for doc in &r.docs {
        e.array(5)?.str(doc.id.as_str())?;
        write_changes(e, &doc.changes)?;
        write_hashes(e, &doc.heads)?;
        e.bool(doc.complete)?;
        e.array(doc.refused.len() as u64)?;
        for refused in &doc.refused {
            e.array(3)?
                .bytes(&refused.hash.0)?
                .str(refusal_name(refused.reason))?
                .str(&refused.message)?;
        }
    }
    e.u64(r.cursor)?.bool(r.more)?;
    if let Some(zone) = &r.case_timezone {
        e.str(zone)?;
    }
    Ok(())
}

fn write_hashes(e: &mut Enc, hashes: &[ChangeHash]) -> EncResult {
    e.array(hashes.len() as u64)?;
    for h in hashes {
        e.bytes(&h.0)?;
    }
    Ok(())
}

fn write_changes(e: &mut Enc, changes: &[SignedChange]) -> EncResult {
    e.array(changes.len() as u64)?;
    for c in changes {
        e.array(2)?.bytes(&c.bytes)?.bytes(&c.signature)?;
    }
    Ok(())
}

/// The snake_case name JSON uses, so both encodings name reasons alike.
fn refusal_name(reason: Refusal) -> &'static str {
    match reason {
        Refusal::BadSignature => "bad_signature",
        Refusal::UnknownAuthor => "unknown_author",
        Refusal::RevokedAuthor => "revoked_author",
        Refusal::NotYourReport => "not_your_report",
        Refusal::ReviewIsForCoordinators => "review_is_for_coordinators",
        Refusal::ImmutableField => "immutable_field",
        Refusal::BadCreation => "bad_creation",
        Refusal::MissingDependency => "missing_dependency",
        Refusal::InvalidReport => "invalid_report",
        Refusal::SessionNotLive => "session_not_live",
    }
}

pub(super) fn decode_request(bytes: &[u8]) -> Result<SyncRequest, CborError> {
    let mut d = Decoder::new(bytes);
    let fields = header(&mut d, "the request")?;
    let version = version(&mut d)?;
    expect_fields("the request", fields, 3, 3, "3")?;
    let cursor = d.u64()?;
    let count = items(&mut d, "the request's documents", 1)?;
    let mut docs = Vec::with_capacity(count.min(PREALLOCATED_ITEMS));
    for _ in 0..count {
        let fields = header(&mut d, "a document offer")?;
        expect_fields("a document offer", fields, 3, 3, "3")?;
        docs.push(DocOffer {
            id: report_id(&mut d)?,
            base_heads: hashes(&mut d, "an offer's base heads")?,
            changes: changes(&mut d)?,
        });
    }
    end(&d)?;
    Ok(SyncRequest {
        version,
        cursor,
        docs,
    })
}

pub(super) fn decode_response(bytes: &[u8]) -> Result<SyncResponse, CborError> {
    let mut d = Decoder::new(bytes);
    let fields = header(&mut d, "the response")?;
    let version = version(&mut d)?;
    expect_fields("the response", fields, 4, 5, "4 or 5")?;
    let count = items(&mut d, "the response's documents", 1)?;
    let mut docs = Vec::with_capacity(count.min(PREALLOCATED_ITEMS));
    for _ in 0..count {
        let fields = header(&mut d, "a document update")?;
        expect_fields("a document update", fields, 5, 5, "5")?;
        let id = report_id(&mut d)?;
        let changes = changes(&mut d)?;
        let heads = hashes(&mut d, "an update's heads")?;
        let complete = d.bool()?;
        let count = items(&mut d, "an update's refusals", 1)?;
        let mut refused = Vec::with_capacity(count.min(PREALLOCATED_ITEMS));
        for _ in 0..count {
            let fields = header(&mut d, "a refused change")?;
            expect_fields("a refused change", fields, 3, 3, "3")?;
            refused.push(RefusedChange {
                hash: hash(&mut d)?,
                reason: refusal(&mut d)?,
                message: d.str()?.to_owned(),
            });
        }
        docs.push(DocUpdate {
            id,
            changes,
            heads,
            complete,
            refused,
        });
    }
    let cursor = d.u64()?;
    let more = d.bool()?;
    let case_timezone = if fields == 5 {
        Some(d.str()?.to_owned())
    } else {
        None
    };
    end(&d)?;
    Ok(SyncResponse {
        version,
        docs,
        cursor,
        more,
        case_timezone,
    })
}

/// A message's outer array: its field count.
fn header(d: &mut Decoder<'_>, what: &'static str) -> Result<u64, CborError> {
    d.array()?.ok_or(CborError::Indefinite { what })
}

/// The version field, checked before anything else is read: a message of
/// another version is refused for its version, not for its layout.
fn version(d: &mut Decoder<'_>) -> Result<u32, CborError> {
    let got = d.u64()?;
    if got == u64::from(PROTOCOL_VERSION) {
        Ok(PROTOCOL_VERSION)
    } else {
        Err(CborError::Version(u32::try_from(got).unwrap_or(u32::MAX)))
    }
}

fn expect_fields(
    what: &'static str,
    got: u64,
    min: u64,
    max: u64,
    expected: &'static str,
) -> Result<(), CborError> {
    if (min..=max).contains(&got) {
        Ok(())
    } else {
        Err(CborError::Fields {
            what,
            got,
            expected,
        })
    }
}

/// An array's item count, refused when indefinite or when the bytes left
/// cannot hold that many items of at least `min_item_len` bytes each.
fn items(d: &mut Decoder<'_>, what: &'static str, min_item_len: usize) -> Result<usize, CborError> {
    let declared = d.array()?.ok_or(CborError::Indefinite { what })?;
    let left = d.input().len() - d.position();
    match usize::try_from(declared) {
        Ok(n) if n <= left / min_item_len => Ok(n),
        _ => Err(CborError::TooMany {
            what,
            declared,
            left,
        }),
    }
}

fn report_id(d: &mut Decoder<'_>) -> Result<ReportId, CborError> {
    Ok(d.str()?.parse()?)
}

fn hash(d: &mut Decoder<'_>) -> Result<ChangeHash, CborError> {
    let bytes = d.bytes()?;
    ChangeHash::try_from(bytes).map_err(|_| CborError::HashLength(bytes.len()))
}

fn hashes(d: &mut Decoder<'_>, what: &'static str) -> Result<Vec<ChangeHash>, CborError> {
    // A hash is a 2-byte head and 32 bytes.
    let count = items(d, what, 34)?;
    let mut out = Vec::with_capacity(count.min(PREALLOCATED_ITEMS));
    for _ in 0..count {
        out.push(hash(d)?);
    }
    Ok(out)
}

fn changes(d: &mut Decoder<'_>) -> Result<Vec<SignedChange>, CborError> {
    // The smallest change is an array head and two empty byte strings.
    let count = items(d, "a document's changes", 3)?;
    let mut out = Vec::with_capacity(count.min(PREALLOCATED_ITEMS));
    for _ in 0..count {
        let fields = header(d, "a signed change")?;
        expect_fields("a signed change", fields, 2, 2, "2")?;
        out.push(SignedChange {
            bytes: d.bytes()?.to_vec(),
            signature: d.bytes()?.to_vec(),
        });
    }
    Ok(out)
}

fn refusal(d: &mut Decoder<'_>) -> Result<Refusal, CborError> {
    let name = d.str()?;
    let by_name = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(name);
    Refusal::deserialize(by_name).map_err(|_| CborError::Refusal(name.chars().take(80).collect()))
}

fn end(d: &Decoder<'_>) -> Result<(), CborError> {
    match d.input().len() - d.position() {
        0 => Ok(()),
        extra => Err(CborError::Trailing(extra)),
    }
}
