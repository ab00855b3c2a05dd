//! A blob download as a stream of its bytes, for a consumer that checks
//! them as it reads (decrypting: `envelope::open_to_path_as` hashes them
//! against the blob id in its own pass). Nothing waits for the whole blob
//! to be on disk first: fetching, hashing, decrypting and writing the
//! plaintext overlap.
//!
//! It still survives a bad network and a killed process as a download to
//! a file did: the bytes an earlier run kept in the partial file are
//! served first, the rest is fetched by HTTP ranges, resumed after each
//! cut, and every byte that arrives is appended to the partial file, so a
//! later run resumes from it. The caller deletes the partial file when
//! nothing in it is worth resuming from: after the download, after bytes
//! that are not the blob, after [`TransferError::Mismatch`]; a network
//! that failed for good leaves it for the next run.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::transfer::{
    backoff, retryable, unreachable, Progress, TransferError, MAX_FAILURES_WITHOUT_PROGRESS,
};
use super::transport::{Body, Request, Transport, TransportError};

/// Bytes gathered before they are appended to the partial file.
const TEE_BUFFER: usize = 1024 * 1024;

/// Reads blob `blob` of `size` bytes from the server (see the module's
/// documentation). A transfer that fails for good makes `read` return an
/// error; [`Download::failure`] then says why, as a [`TransferError`].
pub struct Download<'a, T: Transport> {
    t: &'a T,
    blob: String,
    size: u64,
    partial: PathBuf,
    /// The partial file, appended to in large writes: written a read at a
    /// time (often a few KiB from the socket), it cost more CPU than
    /// receiving, hashing or decrypting the same bytes. Flushed when
    /// dropped too, so a stream its consumer stopped reading still leaves
    /// what arrived for a later run.
    file: BufWriter<File>,
    /// What an earlier run kept, served before anything is fetched.
    kept: Option<std::io::Take<File>>,
    /// Bytes served so far.
    at: u64,
    /// The answer being read, limited to the bytes the blob may still have
    /// (plus one, so that a longer blob is noticed by the consumer).
    body: Option<std::io::Take<Box<dyn Read + Send>>>,
    /// Bytes at the start of `body` already served: a server that ignored
    /// the range sends the blob from its first byte.
    skip: u64,
    /// Attempts in a row that gained nothing, and where the last began.
    failures: u32,
    attempt_at: u64,
    progress: &'a dyn Progress,
    failure: Option<TransferError>,
}

impl<'a, T: Transport> Download<'a, T> {
    /// Opens (or creates) `partial` and serves its bytes first.
    pub fn start(
        t: &'a T,
        blob: &str,
        size: u64,
        partial: &Path,
        progress: &'a dyn Progress,
    ) -> Result<Self, TransferError> {
        let io = |source| TransferError::Io {
            what: format!("cannot open {}", partial.display()),
            source,
        };
        let file = crate::private_fs::open_options()
            .create(true)
            .append(true)
            .open(partial)
            .map_err(io)?;
        let have = file.metadata().map_err(io)?.len();
        let kept = if have > 0 {
            // Never more than the blob and one byte, like the network.
            Some(
                File::open(partial)
                    .map_err(io)?
                    .take(size.saturating_add(1)),
            )
        } else {
            None
        };
        progress.set_position(have.min(size));
        Ok(Self {
            t,
            blob: blob.to_owned(),
            size,
            partial: partial.to_owned(),
            file: BufWriter::with_capacity(TEE_BUFFER, file),
            kept,
            at: 0,
            body: None,
            skip: 0,
            failures: 0,
            attempt_at: 0,
            progress,
            failure: None,
        })
    }

    /// Why the transfer failed, when `read` returned an error for it.
    /// After [`TransferError::Mismatch`] (the server's blob is shorter
    /// than its size) the partial file is worth nothing: delete it.
    pub fn failure(&mut self) -> Option<TransferError> {
        self.failure.take()
    }

    fn io(&self, source: std::io::Error) -> TransferError {
        TransferError::Io {
            what: format!("cannot write {}", self.partial.display()),
            source,
        }
    }

    /// An answer that stopped before the blob did: retried like a server
    /// that could not be reached.
    fn cut(&self, reason: String) -> TransferError {
        TransferError::Transport(TransportError::Unreachable {
            url: self.t.base().to_owned(),
            reason,
        })
    }

    /// Asks for the bytes from `at` on.
    fn request(&mut self) -> Result<(), TransferError> {
        let mut headers = Vec::new();
        if self.at > 0 {
            headers.push(("Range", format!("bytes={}-", self.at)));
        }
        let response = self.t.send(Request {
            method: "GET",
            path: format!("/v1/blobs/{}", self.blob),
            headers,
            body: Body::Empty,
        })?;
        let from = if response.status == 206 { self.at } else { 0 };
        self.skip = self.at - from;
        let left = (self.size + 1).saturating_sub(from);
        self.body = Some(response.body.take(left));
        Ok(())
    }

    /// After an attempt that ended before the blob did: counts it, gives up
    /// after too many in a row that gained nothing, else waits to retry.
    fn interrupted(&mut self, e: TransferError) -> Result<(), TransferError> {
        self.body = None;
        if let TransferError::Transport(TransportError::Refused { status: 416, .. }) = e {
            // The server's blob is shorter than the report says it is.
            return Err(TransferError::Mismatch);
        }
        if !retryable(&e) {
            return Err(e);
        }
        // What arrived is kept for a later run: make it survive a crash. A
        // complete blob is checked against its id by the consumer, and a
        // partial file a crash damaged fails that check.
        self.file.flush().map_err(|source| self.io(source))?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(|source| self.io(source))?;
        self.failures = if self.at > self.attempt_at {
            0
        } else {
            self.failures + 1
        };
        if self.failures >= MAX_FAILURES_WITHOUT_PROGRESS {
            return Err(TransferError::GaveUp {
                attempts: self.failures,
                unreachable: unreachable(&e),
                last: e.to_string(),
            });
        }
        self.progress
            .note(&format!("  interrupted ({e}); resuming"));
        std::thread::sleep(backoff(self.failures.max(1)));
        Ok(())
    }

    /// The end of the blob: every byte that arrived is in the partial file
    /// (the caller may read it back).
    fn ended(&mut self) -> Result<usize, TransferError> {
        self.file.flush().map_err(|source| self.io(source))?;
        Ok(0)
    }

    /// The next bytes into `buf`: kept ones, then fetched ones.
    fn next(&mut self, buf: &mut [u8]) -> Result<usize, TransferError> {
        if let Some(kept) = &mut self.kept {
            let n = kept.read(buf).map_err(|source| TransferError::Io {
                what: format!("cannot read {}", self.partial.display()),
                source,
            })?;
            if n > 0 {
                self.at += n as u64;
                return Ok(n);
            }
            self.kept = None;
        }
        loop {
            if self.body.is_none() {
                if self.at >= self.size {
                    return self.ended();
                }
                self.attempt_at = self.at;
                if let Err(e) = self.request() {
                    self.interrupted(e)?;
                    continue;
                }
            }
            let Some(body) = &mut self.body else { continue };
            match body.read(buf) {
                Ok(0) => {
                    self.body = None;
                    if self.at >= self.size {
                        return self.ended();
                    }
                    let reason =
                        format!("the answer ended after byte {} of {}", self.at, self.size);
                    self.interrupted(self.cut(reason))?;
                }
                Ok(n) if (n as u64) <= self.skip => self.skip -= n as u64,
                Ok(n) => {
                    // Past the bytes served already, when the server
                    // ignored the range.
                    let from = std::mem::take(&mut self.skip) as usize;
                    buf.copy_within(from..n, 0);
                    let n = n - from;
                    self.file
                        .write_all(&buf[..n])
                        .map_err(|source| self.io(source))?;
                    self.at += n as u64;
                    self.progress.inc(n as u64);
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.interrupted(self.cut(e.to_string()))?;
                }
            }
        }
    }
}

impl<T: Transport> Read for Download<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.next(buf).map_err(|e| {
            let message = e.to_string();
            self.failure = Some(e);
            std::io::Error::other(message)
        })
    }
}
