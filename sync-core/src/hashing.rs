//! SHA-256 over bytes as they stream past: a reader or writer that hashes
//! and counts what goes through it, and the digest of a whole stream.
//! Blob ids, plaintext digests and bundle signatures all come from here.

use std::io::{Read, Write};

use ring::digest::{Context, SHA256};

/// Wraps a reader or a writer; every byte read or written through it is
/// hashed and counted.
pub(crate) struct Hashing<T> {
    pub inner: T,
    hash: Context,
    pub len: u64,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hash: Context::new(&SHA256),
            len: 0,
        }
    }

    /// The digest of everything so far (the wrapper stays usable).
    pub fn digest(&self) -> ring::digest::Digest {
        self.hash.clone().finish()
    }

    /// The wrapped reader or writer and the hash of what went through.
    pub fn into_parts(self) -> (T, Context) {
        (self.inner, self.hash)
    }

    /// The digest so far, hex.
    pub fn hex(&self) -> String {
        hex::encode(self.digest())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Length and hex SHA-256 of everything `input` yields.
pub fn sha256_stream<R: Read>(input: &mut R) -> std::io::Result<(u64, String)> {
    let mut hashing = Hashing::new(input);
    std::io::copy(&mut hashing, &mut std::io::sink())?;
    Ok((hashing.len, hashing.hex()))
}

/// Length and hex SHA-256 of a file.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    sha256_stream(&mut std::io::BufReader::with_capacity(
        256 * 1024,
        std::fs::File::open(path)?,
    ))
}
