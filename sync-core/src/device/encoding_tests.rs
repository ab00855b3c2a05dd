//! The device's sync rounds go in CBOR, and fall back to JSON for the rest
//! of a sync when the server is from before CBOR.

use std::cell::RefCell;
use std::io::Cursor;

use automerge::ChangeHash;

use super::calls::sync_round;
use super::transport::{Body, Request, Response, Transport, TransportError};
use crate::ids::ReportId;
use crate::protocol::{DocOffer, SyncRequest, SyncResponse, WireEncoding, PROTOCOL_VERSION};
use crate::signed_change::SignedChange;

/// How a scripted server treats a CBOR body.
#[derive(Clone, Copy)]
enum Server {
    /// Reads it and answers in CBOR.
    SpeaksCbor,
    /// Reads every body as JSON, as servers before CBOR did.
    ReadsJsonOnly,
    /// Refuses it as an unsupported media type.
    Refuses415,
    /// Refuses it as a new server refuses a malformed CBOR body.
    RefusesMalformed,
}

struct Scripted {
    server: Server,
    /// The `Content-Type` of each sync request.
    sent: RefCell<Vec<String>>,
}

impl Scripted {
    fn new(server: Server) -> Self {
        Self {
            server,
            sent: RefCell::new(Vec::new()),
        }
    }
}

fn refused(status: u16, message: &str) -> TransportError {
    TransportError::Refused {
        status,
        message: message.to_owned(),
        upload_offset: None,
    }
}

impl Transport for Scripted {
    fn send(&self, request: Request<'_>) -> Result<Response, TransportError> {
        assert_eq!(request.path, "/v1/sync");
        let content_type = request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .expect("a sync request says its content type");
        self.sent.borrow_mut().push(content_type.clone());
        let Body::Message(body) = request.body else {
            panic!("a sync request has a message body");
        };
        let sent_in = WireEncoding::from_content_type(Some(&content_type));
        let answer_in = match (self.server, sent_in) {
            (_, WireEncoding::Json) => WireEncoding::Json,
            (Server::SpeaksCbor, WireEncoding::Cbor) => WireEncoding::Cbor,
            (Server::ReadsJsonOnly, WireEncoding::Cbor) => {
                let err = SyncRequest::from_json(body).unwrap_err();
                return Err(refused(400, &err.to_string()));
            }
            (Server::Refuses415, WireEncoding::Cbor) => {
                return Err(refused(415, "unsupported media type"));
            }
            (Server::RefusesMalformed, WireEncoding::Cbor) => {
                return Err(refused(
                    400,
                    "the message is not valid sync CBOR: end of input bytes",
                ));
            }
        };
        let request = SyncRequest::decode(body, sent_in).expect("the device sent a valid body");
        let response = SyncResponse {
            version: PROTOCOL_VERSION,
            docs: vec![],
            cursor: request.cursor + 1,
            more: false,
            case_timezone: None,
        };
        Ok(Response {
            status: 200,
            headers: vec![("Content-Type".into(), answer_in.content_type().into())],
            body: Box::new(Cursor::new(response.encode(answer_in))),
        })
    }

    fn base(&self) -> &str {
        "http://server.test"
    }
}

fn request() -> SyncRequest {
    SyncRequest {
        version: PROTOCOL_VERSION,
        cursor: 41,
        docs: vec![DocOffer {
            id: ReportId::derived_from(&[b"r"]),
            base_heads: vec![ChangeHash([3; 32])],
            changes: vec![SignedChange {
                bytes: vec![1; 175],
                signature: vec![2; 64],
            }],
        }],
    }
}

const CBOR: &str = "application/cbor";
const JSON: &str = "application/json";

#[test]
fn a_server_that_speaks_cbor_gets_and_answers_cbor() {
    let t = Scripted::new(Server::SpeaksCbor);
    let mut encoding = WireEncoding::Cbor;
    for _ in 0..2 {
        let answer = sync_round(&t, &request(), &mut encoding).unwrap();
        assert_eq!(answer.cursor, 42);
    }
    assert_eq!(encoding, WireEncoding::Cbor);
    assert_eq!(*t.sent.borrow(), [CBOR, CBOR]);
}

#[test]
fn a_server_from_before_cbor_gets_json_for_the_rest_of_the_sync() {
    for server in [Server::ReadsJsonOnly, Server::Refuses415] {
        let t = Scripted::new(server);
        let mut encoding = WireEncoding::Cbor;
        for _ in 0..2 {
            let answer = sync_round(&t, &request(), &mut encoding).unwrap();
            assert_eq!(answer.cursor, 42);
        }
        assert_eq!(encoding, WireEncoding::Json);
        // One CBOR try, then JSON only.
        assert_eq!(*t.sent.borrow(), [CBOR, JSON, JSON]);
    }
}

#[test]
fn a_cbor_body_refused_for_its_content_is_not_sent_again_as_json() {
    let t = Scripted::new(Server::RefusesMalformed);
    let mut encoding = WireEncoding::Cbor;
    let err = sync_round(&t, &request(), &mut encoding).unwrap_err();
    assert!(err.to_string().contains("not valid sync CBOR"), "{err}");
    assert_eq!(encoding, WireEncoding::Cbor);
    assert_eq!(*t.sent.borrow(), [CBOR]);
}
