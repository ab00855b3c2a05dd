//! Both encodings of the sync messages: they round-trip, they agree, the
//! request bound holds for CBOR too, and hostile CBOR is refused with a
//! typed error and no panic.

use automerge::ChangeHash;
use proptest::prelude::*;

use super::*;
use crate::ids::ReportId;
use crate::signed_change::SignedChange;
use crate::sync::device::{PendingDoc, RequestBuilder};

const ALL_REFUSALS: [Refusal; 10] = [
    Refusal::BadSignature,
    Refusal::UnknownAuthor,
    Refusal::RevokedAuthor,
    Refusal::NotYourReport,
    Refusal::ReviewIsForCoordinators,
    Refusal::ImmutableField,
    Refusal::BadCreation,
    Refusal::MissingDependency,
    Refusal::InvalidReport,
    Refusal::SessionNotLive,
];

fn report_id() -> impl Strategy<Value = ReportId> {
    "[0-9a-f]{32}".prop_map(|s| s.parse().unwrap())
}

fn change_hash() -> impl Strategy<Value = ChangeHash> {
    any::<[u8; 32]>().prop_map(ChangeHash)
}

fn signed_change() -> impl Strategy<Value = SignedChange> {
    (
        prop::collection::vec(any::<u8>(), 0..400),
        prop::collection::vec(any::<u8>(), 0..130),
    )
        .prop_map(|(bytes, signature)| SignedChange { bytes, signature })
}

fn offer() -> impl Strategy<Value = DocOffer> {
    (
        report_id(),
        prop::collection::vec(change_hash(), 0..3),
        prop::collection::vec(signed_change(), 0..6),
    )
        .prop_map(|(id, base_heads, changes)| DocOffer {
            id,
            base_heads,
            changes,
        })
}

fn request() -> impl Strategy<Value = SyncRequest> {
    (any::<u64>(), prop::collection::vec(offer(), 0..5)).prop_map(|(cursor, mut docs)| {
        let mut seen = std::collections::HashSet::new();
        docs.retain(|d| seen.insert(d.id.clone()));
        SyncRequest {
            version: PROTOCOL_VERSION,
            cursor,
            docs,
        }
    })
}

fn refused() -> impl Strategy<Value = RefusedChange> {
    (
        change_hash(),
        prop::sample::select(&ALL_REFUSALS[..]),
        ".{0,40}",
    )
        .prop_map(|(hash, reason, message)| RefusedChange {
            hash,
            reason,
            message,
        })
}

fn update() -> impl Strategy<Value = DocUpdate> {
    (
        report_id(),
        prop::collection::vec(signed_change(), 0..5),
        prop::collection::vec(change_hash(), 0..3),
        any::<bool>(),
        prop::collection::vec(refused(), 0..3),
    )
        .prop_map(|(id, changes, heads, complete, refused)| DocUpdate {
            id,
            changes,
            heads,
            complete,
            refused,
        })
}

fn response() -> impl Strategy<Value = SyncResponse> {
    (
        prop::collection::vec(update(), 0..4),
        any::<u64>(),
        any::<bool>(),
        prop::option::of("[A-Za-z/_+:0-9]{1,30}"),
    )
        .prop_map(|(docs, cursor, more, case_timezone)| SyncResponse {
            version: PROTOCOL_VERSION,
            docs,
            cursor,
            more,
            case_timezone,
        })
}

proptest! {
    #[test]
    fn requests_round_trip_and_both_encodings_agree(request in request()) {
        for encoding in WireEncoding::ALL {
            let decoded = SyncRequest::decode(&request.encode(encoding), encoding).unwrap();
            prop_assert_eq!(&decoded, &request);
        }
        prop_assert_eq!(
            SyncRequest::from_json(&request.to_json()).unwrap(),
            SyncRequest::from_cbor(&request.to_cbor()).unwrap()
        );
        prop_assert!(request.to_cbor().len() <= request.to_json().len());
    }

    #[test]
    fn responses_round_trip_and_both_encodings_agree(response in response()) {
        for encoding in WireEncoding::ALL {
            let decoded = SyncResponse::decode(&response.encode(encoding), encoding).unwrap();
            prop_assert_eq!(&decoded, &response);
        }
        prop_assert_eq!(
            SyncResponse::from_json(&response.to_json()).unwrap(),
            SyncResponse::from_cbor(&response.to_cbor()).unwrap()
        );
    }

    /// The request builder bounds requests with JSON sizes; a request it
    /// builds must fit the bound in either encoding, or a device would send
    /// the server more than it accepts.
    #[test]
    fn built_requests_fit_the_bound_in_both_encodings(
        docs in prop::collection::vec(offer(), 1..8),
        max in 200usize..6000,
        cursor in any::<u64>(),
    ) {
        let mut builder = RequestBuilder::new(cursor, max);
        for doc in docs {
            let pending = PendingDoc { id: doc.id, base_heads: doc.base_heads, changes: doc.changes };
            if !builder.offer(pending) {
                break;
            }
        }
        let request = builder.finish().request;
        let changes: usize = request.docs.iter().map(|d| d.changes.len()).sum();
        // The first change always goes, so that every round progresses.
        if changes > 1 {
            for encoding in WireEncoding::ALL {
                let len = request.encode(encoding).len();
                prop_assert!(len <= max, "{encoding:?}: {len} bytes over a bound of {max}");
            }
        }
    }
}

/// The bound in the worst case for CBOR's overhead: many empty changes,
/// where headers weigh the most.
#[test]
fn cbor_requests_fit_the_json_estimate() {
    for max in [700, 1_000, 10_000, 1 << 20] {
        let mut builder = RequestBuilder::new(u64::MAX, max);
        let mut n = 0u8;
        loop {
            n = n.wrapping_add(1);
            let pending = PendingDoc {
                id: ReportId::derived_from(&[&[n]]),
                base_heads: vec![ChangeHash([n; 32]); 3],
                changes: vec![
                    SignedChange {
                        bytes: Vec::new(),
                        signature: Vec::new(),
                    };
                    50
                ],
            };
            if !builder.offer(pending) || n == 255 {
                break;
            }
        }
        let request = builder.finish().request;
        let changes: usize = request.docs.iter().map(|d| d.changes.len()).sum();
        assert!(changes > 1, "the bound {max} is too small for the test");
        assert!(request.to_cbor().len() <= max, "CBOR over {max}");
        assert!(request.to_json().len() <= max, "JSON over {max}");
    }
}

#[test]
fn refusal_names_are_the_json_names() {
    for reason in ALL_REFUSALS {
        let response = SyncResponse {
            version: PROTOCOL_VERSION,
            docs: vec![DocUpdate {
                id: ReportId::derived_from(&[b"r"]),
                changes: vec![],
                heads: vec![],
                complete: false,
                refused: vec![RefusedChange {
                    hash: ChangeHash([1; 32]),
                    reason,
                    message: "m".into(),
                }],
            }],
            cursor: 1,
            more: false,
            case_timezone: None,
        };
        let json = serde_json::to_value(reason).unwrap();
        let name = json.as_str().unwrap();
        let cbor = response.to_cbor();
        assert!(
            cbor.windows(name.len()).any(|w| w == name.as_bytes()),
            "{reason:?} is not written as {name:?}"
        );
        assert_eq!(SyncResponse::from_cbor(&cbor).unwrap(), response);
    }
}

#[test]
fn content_types_choose_the_encoding() {
    use WireEncoding::*;
    for (header, expected) in [
        (Some("application/cbor"), Cbor),
        (Some("Application/CBOR; charset=binary"), Cbor),
        (Some(" application/cbor "), Cbor),
        (Some("application/json"), Json),
        (Some("application/json; charset=utf-8"), Json),
        (Some("text/plain"), Json),
        (Some("application/cbor-seq"), Json),
        (None, Json),
    ] {
        assert_eq!(
            WireEncoding::from_content_type(header),
            expected,
            "{header:?}"
        );
    }
}

fn one_doc_request() -> SyncRequest {
    SyncRequest {
        version: PROTOCOL_VERSION,
        cursor: 7,
        docs: vec![DocOffer {
            id: ReportId::derived_from(&[b"a"]),
            base_heads: vec![ChangeHash([2; 32])],
            changes: vec![SignedChange {
                bytes: vec![1, 2, 3],
                signature: vec![9; 64],
            }],
        }],
    }
}

/// Decodes `body` as a CBOR request, expecting a refusal whose message
/// says `says`.
#[track_caller]
fn refused_request(body: &[u8], says: &str) {
    let err = SyncRequest::from_cbor(body).expect_err("hostile body accepted");
    let message = err.to_string();
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

/// CBOR head of major type `major` with a 64-bit argument.
fn head64(major: u8, n: u64) -> Vec<u8> {
    let mut out = vec![(major << 5) | 27];
    out.extend_from_slice(&n.to_be_bytes());
    out
}

#[test]
fn hostile_cbor_requests_are_refused_before_allocating() {
    let prefix = [0x83, 0x01, 0x07]; // [1, 7, …
                                     // A document array that claims 2^60 offers.
    let mut body = prefix.to_vec();
    body.extend(head64(4, 1 << 60));
    refused_request(&body, "declares 1152921504606846976 items");

    // A change array that claims 2^60 changes.
    let id = ReportId::derived_from(&[b"a"]);
    let mut body = prefix.to_vec();
    body.extend([0x81, 0x83, 0x78, 0x20]);
    body.extend(id.as_str().as_bytes());
    body.push(0x80);
    body.extend(head64(4, 1 << 60));
    refused_request(&body, "a document's changes declares");

    // Change bytes that claim 2^60 bytes.
    let mut body = prefix.to_vec();
    body.extend([0x81, 0x83, 0x78, 0x20]);
    body.extend(id.as_str().as_bytes());
    body.extend([0x80, 0x81, 0x82]);
    body.extend(head64(2, 1 << 60));
    refused_request(&body, "end of input");

    // Indefinite-length arrays.
    let mut body = prefix.to_vec();
    body.extend([0x9f, 0xff]);
    refused_request(&body, "indefinite length");

    // Deep nesting where the documents go: refused at the second level,
    // without recursion.
    let mut body = prefix.to_vec();
    body.extend(std::iter::repeat_n(0x81, 1_000_000));
    body.push(0x00);
    refused_request(&body, "a document offer has 1 fields");
    let mut body = vec![0x83, 0x01, 0x07];
    body.extend(std::iter::repeat_n(0x9f, 1_000_000));
    refused_request(&body, "indefinite length");
}

#[test]
fn cbor_of_the_wrong_shape_is_refused() {
    let good = one_doc_request().to_cbor();
    assert_eq!(SyncRequest::from_cbor(&good).unwrap(), one_doc_request());

    // Bytes after the message.
    let mut body = good.clone();
    body.push(0x00);
    refused_request(&body, "1 bytes follow the message");

    // Cut anywhere.
    for cut in 0..good.len() {
        assert!(
            SyncRequest::from_cbor(&good[..cut]).is_err(),
            "accepted a body cut at {cut}"
        );
    }

    // A map where the request's array goes; text where bytes go.
    refused_request(&[0xa1, 0x01, 0x01], "expected array");
    let mut body = good.clone();
    let sig_head = body.len() - 66;
    assert_eq!(body[sig_head..sig_head + 2], [0x58, 64]);
    body[sig_head] = 0x78; // the signature as text
    refused_request(&body, "expected bytes");

    // A tag around the request.
    let mut body = vec![0xd8, 0x18];
    body.extend(&good);
    refused_request(&body, "expected array");

    // A field too many, and one too few.
    let mut body = good.clone();
    body[0] = 0x84;
    body.push(0x00);
    refused_request(&body, "the request has 4 fields");
    refused_request(&[0x82, 0x01, 0x07], "the request has 2 fields");

    // A hash of 31 bytes.
    let mut request = one_doc_request();
    request.docs[0].changes.clear();
    let mut body = request.to_cbor();
    let at = body.windows(2).position(|w| w == [0x58, 0x20]).unwrap();
    body[at + 1] = 31;
    body.remove(at + 2);
    refused_request(&body, "a change hash is 32 bytes, not 31");

    // A report id that is not one.
    let mut body = good.clone();
    let at = body.windows(2).position(|w| w == [0x78, 0x20]).unwrap();
    body[at + 2] = b'G';
    refused_request(&body, "a report id");
}

#[test]
fn cbor_versions_and_duplicates_are_refused_as_in_json() {
    let mut body = one_doc_request().to_cbor();
    body[1] = 0x02;
    let err = SyncRequest::from_cbor(&body).unwrap_err();
    assert!(matches!(err, ProtocolError::Version { got: 2 }), "{err}");

    // Another version is refused for its version whatever follows.
    let err = SyncRequest::from_cbor(&[0x81, 0x18, 0x63]).unwrap_err();
    assert!(matches!(err, ProtocolError::Version { got: 99 }), "{err}");

    let mut request = one_doc_request();
    request.docs.push(request.docs[0].clone());
    for encoding in WireEncoding::ALL {
        let err = SyncRequest::decode(&request.encode(encoding), encoding).unwrap_err();
        assert!(
            matches!(err, ProtocolError::DuplicateDocument(_)),
            "{encoding:?}: {err}"
        );
    }
}

#[test]
fn hostile_cbor_responses_are_refused() {
    // [1, [2^60 updates …
    let mut body = vec![0x84, 0x01];
    body.extend(head64(4, 1 << 60));
    let err = SyncResponse::from_cbor(&body).unwrap_err();
    assert!(err.to_string().contains("declares"), "{err}");

    let response = SyncResponse {
        version: PROTOCOL_VERSION,
        docs: vec![],
        cursor: 3,
        more: true,
        case_timezone: Some("Asia/Almaty".into()),
    };
    let mut body = response.to_cbor();
    body.extend([0x00, 0x00]);
    let err = SyncResponse::from_cbor(&body).unwrap_err();
    assert!(err.to_string().contains("2 bytes follow"), "{err}");
}

/// The point of CBOR: a change of 175 bytes with its 64-byte signature
/// costs barely more than those 239 bytes.
#[test]
fn a_change_costs_its_bytes_and_signature_plus_a_few_in_cbor() {
    let change = SignedChange {
        bytes: vec![7; 175],
        signature: vec![8; 64],
    };
    let mut request = one_doc_request();
    request.docs[0].changes = vec![change.clone()];
    let one = request.to_cbor().len();
    request.docs[0].changes = vec![change; 101];
    let per_change = (request.to_cbor().len() - one) / 100;
    assert!(per_change <= 175 + 64 + 5, "{per_change} bytes per change");
}
