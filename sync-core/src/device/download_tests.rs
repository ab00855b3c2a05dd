//! A streamed download over a transport that serves one blob, cuts its
//! answers where the test says, and records the ranges asked for.

use std::cell::RefCell;
use std::io::{Cursor, Read};

use super::download::Download;
use super::transfer::TransferError;
use super::transport::{Request, Response, Transport, TransportError};

/// How the server answers one GET.
#[derive(Clone, Copy)]
enum Answer {
    /// From the range asked for, cut after this many bytes (or whole).
    Range(Option<usize>),
    /// The whole blob from its first byte (a range ignored), cut after
    /// this many bytes (or whole).
    Whole(Option<usize>),
    Refuse(u16),
}

struct Server {
    blob: Vec<u8>,
    answers: RefCell<Vec<Answer>>,
    asked: RefCell<Vec<Option<String>>>,
}

impl Server {
    fn new(blob: &[u8], answers: &[Answer]) -> Self {
        Self {
            blob: blob.to_vec(),
            answers: RefCell::new(answers.iter().rev().copied().collect()),
            asked: RefCell::new(Vec::new()),
        }
    }
}

/// Serves `bytes`, then fails as a dropped connection does.
struct CutAfter(Cursor<Vec<u8>>, bool);

impl Read for CutAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 if self.1 => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            )),
            n => Ok(n),
        }
    }
}

impl Transport for Server {
    fn send(&self, request: Request<'_>) -> Result<Response, TransportError> {
        assert_eq!(request.method, "GET");
        let range = request
            .headers
            .iter()
            .find(|(name, _)| *name == "Range")
            .map(|(_, v)| v.clone());
        self.asked.borrow_mut().push(range.clone());
        let answer = self
            .answers
            .borrow_mut()
            .pop()
            .unwrap_or(Answer::Range(None));
        let from: usize = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
            .unwrap_or(0);
        let (status, start, cut) = match answer {
            Answer::Range(cut) => (if from > 0 { 206 } else { 200 }, from, cut),
            Answer::Whole(cut) => (200, 0, cut),
            Answer::Refuse(status) => {
                return Err(TransportError::Refused {
                    status,
                    message: "refused".into(),
                    upload_offset: None,
                })
            }
        };
        let rest = &self.blob[start..];
        let sent = cut.map_or(rest, |n| &rest[..n.min(rest.len())]);
        Ok(Response {
            status,
            headers: vec![],
            body: Box::new(CutAfter(Cursor::new(sent.to_vec()), cut.is_some())),
        })
    }

    fn base(&self) -> &str {
        "http://server.test"
    }
}

fn blob() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Reads the whole stream in uneven pieces, as the decrypting pipeline
/// does (chunk slots and one-byte peeks).
fn read_all(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    read_in(stream, &[1, 65_552])
}

/// Reads the whole stream in pieces of these sizes, in turn.
fn read_in(stream: &mut impl Read, sizes: &[usize]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; sizes.iter().copied().max().unwrap_or(1)];
    for &size in sizes.iter().cycle() {
        let n = stream.read(&mut buf[..size])?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
    unreachable!()
}

#[test]
fn a_cut_download_resumes_from_the_byte_it_reached_and_keeps_every_byte() {
    let blob = blob();
    let server = Server::new(
        &blob,
        &[Answer::Range(Some(100_000)), Answer::Range(Some(70_001))],
    );
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("blob.part");
    let mut stream = Download::start(&server, "b", blob.len() as u64, &partial, &()).unwrap();
    let got = read_all(&mut stream).unwrap();
    assert!(got == blob, "the stream is the blob");
    assert!(stream.failure().is_none());
    assert_eq!(
        *server.asked.borrow(),
        [
            None,
            Some("bytes=100000-".into()),
            Some("bytes=170001-".into())
        ]
    );
    assert!(
        std::fs::read(&partial).unwrap() == blob,
        "the partial file holds the blob"
    );
}

#[test]
fn a_later_run_serves_what_an_earlier_one_kept_and_fetches_only_the_rest() {
    let blob = blob();
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("blob.part");
    std::fs::write(&partial, &blob[..123_457]).unwrap();
    let server = Server::new(&blob, &[]);
    let mut stream = Download::start(&server, "b", blob.len() as u64, &partial, &()).unwrap();
    let got = read_all(&mut stream).unwrap();
    assert!(got == blob);
    assert_eq!(*server.asked.borrow(), [Some("bytes=123457-".into())]);
    assert!(std::fs::read(&partial).unwrap() == blob);

    // A partial file that is already whole is served without asking.
    let mut again = Download::start(&server, "b", blob.len() as u64, &partial, &()).unwrap();
    assert!(read_all(&mut again).unwrap() == blob);
    assert_eq!(server.asked.borrow().len(), 1);
}

#[test]
fn an_answer_from_the_first_byte_to_a_range_is_read_past_the_bytes_served() {
    let blob = blob();
    // Cut at 50,000, then the server ignores the range: its first 50,000
    // bytes are the ones served already, skipped over whole reads (one
    // byte at a time) and within one.
    for sizes in [&[1][..], &[65_552], &[4_000, 65_552]] {
        let server = Server::new(&blob, &[Answer::Range(Some(50_000)), Answer::Whole(None)]);
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("blob.part");
        let mut stream = Download::start(&server, "b", blob.len() as u64, &partial, &()).unwrap();
        assert!(read_in(&mut stream, sizes).unwrap() == blob, "{sizes:?}");
        assert!(std::fs::read(&partial).unwrap() == blob, "{sizes:?}");
    }
}

#[test]
fn a_refusal_ends_the_stream_with_its_reason_and_keeps_what_arrived() {
    let blob = blob();
    let server = Server::new(&blob, &[Answer::Range(Some(80_000)), Answer::Refuse(403)]);
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("blob.part");
    let mut stream = Download::start(&server, "b", blob.len() as u64, &partial, &()).unwrap();
    assert!(read_all(&mut stream).is_err());
    assert!(matches!(
        stream.failure(),
        Some(TransferError::Transport(TransportError::Refused {
            status: 403,
            ..
        }))
    ));
    assert!(
        std::fs::read(&partial).unwrap() == blob[..80_000],
        "kept for a later run"
    );

    // A server whose blob is shorter than the report says: not the blob.
    let short = Server::new(&blob, &[Answer::Refuse(416)]);
    let mut stream = Download::start(&short, "b", blob.len() as u64, &partial, &()).unwrap();
    assert!(read_all(&mut stream).is_err());
    assert!(matches!(stream.failure(), Some(TransferError::Mismatch)));
}

#[test]
fn a_longer_blob_is_served_one_byte_past_its_size_for_the_consumer_to_refuse() {
    let blob = blob();
    let server = Server::new(&blob, &[]);
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("blob.part");
    let size = blob.len() as u64 - 10;
    let mut stream = Download::start(&server, "b", size, &partial, &()).unwrap();
    let got = read_all(&mut stream).unwrap();
    assert_eq!(got.len() as u64, size + 1);
    assert!(got[..] == blob[..got.len()]);
}
