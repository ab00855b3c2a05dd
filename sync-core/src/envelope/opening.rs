//! [`super::open`]'s chunks, as a pipeline: reading, decrypting, hashing
//! the plaintext and writing it each run on their own thread over a few
//! bounded blocks, so opening takes about as long as its slowest stage.
//! Only chunks that authenticated move on to be hashed and written.

use std::io::{Read, Write};

use ring::aead::{Aad, LessSafeKey};
use ring::digest::{Context, SHA256};

use super::chunks::{chunk_nonce, read_full, CHUNK, TAG};
use super::error::EnvelopeError;
use super::pipeline::{self, Stage, BLOCKS, CHUNKS_PER_BLOCK};

/// Up to 16 sealed chunks, each read to its own `CHUNK + TAG` slot.
struct Opening {
    buf: Vec<u8>,
    /// Sealed bytes in each slot.
    lens: Vec<usize>,
    first_index: u32,
    /// The last slot holds the blob's final chunk.
    ends: bool,
    /// The blob ended after the last slot with too few bytes for a chunk;
    /// reported once the chunks before it authenticated.
    truncated: bool,
}

/// Decrypts the chunks that follow the header in `input` with `key` and
/// `prefix` into `output`; returns the plaintext's length and SHA-256.
/// With `blob`, the hash of the blob so far (its head), also hashes every
/// sealed byte read, before it is decrypted, on a thread of its own.
pub(super) fn open_chunks<R: Read, W: Write + Send>(
    key: &LessSafeKey,
    prefix: &[u8; 7],
    input: &mut R,
    output: &mut W,
    blob: Option<&mut Context>,
) -> Result<(u64, ring::digest::Digest), EnvelopeError> {
    let blocks = (0..BLOCKS)
        .map(|_| Opening {
            buf: vec![0; CHUNKS_PER_BLOCK * (CHUNK + TAG)],
            lens: Vec::with_capacity(CHUNKS_PER_BLOCK),
            first_index: 0,
            ends: false,
            truncated: false,
        })
        .collect();
    let mut hash = Context::new(&SHA256);
    let mut size = 0u64;
    let mut stages: Vec<Stage<'_, Opening, EnvelopeError>> = Vec::with_capacity(4);
    if let Some(blob) = blob {
        stages.push(Box::new(|block: &mut Opening| {
            // The slots before the last are full: the sealed bytes are
            // contiguous.
            let full = block.lens.len().saturating_sub(1) * (CHUNK + TAG);
            blob.update(&block.buf[..full + block.lens.last().copied().unwrap_or(0)]);
            Ok(())
        }));
    }
    let decrypt: Stage<'_, Opening, EnvelopeError> = Box::new(|block: &mut Opening| {
        let count = block.lens.len();
        for (i, &len) in block.lens.iter().enumerate() {
            let index = block.first_index + i as u32;
            let last = block.ends && i + 1 == count;
            let at = i * (CHUNK + TAG);
            key.open_in_place(
                chunk_nonce(prefix, index, last),
                Aad::empty(),
                &mut block.buf[at..at + len],
            )
            .map_err(|_| {
                if last {
                    EnvelopeError::Final
                } else {
                    EnvelopeError::Chunk(u64::from(index))
                }
            })?;
        }
        if block.truncated {
            return Err(EnvelopeError::Truncated);
        }
        Ok(())
    });
    let hashing: Stage<'_, Opening, EnvelopeError> = Box::new(|block: &mut Opening| {
        for (i, &len) in block.lens.iter().enumerate() {
            let at = i * (CHUNK + TAG);
            hash.update(&block.buf[at..at + len - TAG]);
        }
        Ok(())
    });
    let write: Stage<'_, Opening, EnvelopeError> = Box::new(|block: &mut Opening| {
        for (i, &len) in block.lens.iter().enumerate() {
            let at = i * (CHUNK + TAG);
            output.write_all(&block.buf[at..at + len - TAG])?;
            size += (len - TAG) as u64;
        }
        Ok(())
    });

    stages.extend([decrypt, hashing, write]);

    // One byte read past a full chunk tells whether another follows.
    let mut carried: Option<u8> = None;
    let mut next_index: u64 = 0;
    let mut done = false;
    pipeline::run(
        blocks,
        |block: &mut Opening| {
            if done {
                return Ok(false);
            }
            block.lens.clear();
            block.first_index =
                u32::try_from(next_index).map_err(|_| EnvelopeError::Chunk(next_index))?;
            block.ends = false;
            block.truncated = false;
            while block.lens.len() < CHUNKS_PER_BLOCK {
                let at = block.lens.len() * (CHUNK + TAG);
                let slot = &mut block.buf[at..at + CHUNK + TAG];
                let mut filled = 0;
                if let Some(byte) = carried.take() {
                    slot[0] = byte;
                    filled = 1;
                }
                filled += read_full(input, &mut slot[filled..])?;
                if filled < TAG {
                    // Too short for a chunk: whatever came before was not
                    // marked last either, or it would have ended here.
                    block.truncated = true;
                    done = true;
                    break;
                }
                if u32::try_from(next_index).is_err() {
                    return Err(EnvelopeError::Chunk(next_index));
                }
                block.lens.push(filled);
                next_index += 1;
                let mut peek = [0u8; 1];
                if filled < CHUNK + TAG || read_full(input, &mut peek)? == 0 {
                    block.ends = true;
                    done = true;
                    break;
                }
                carried = Some(peek[0]);
            }
            Ok(true)
        },
        stages,
    )?;
    output.flush()?;
    Ok((size, hash.finish()))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::super::{open_to_path_as, seal, EnvelopeError, SealingKey};
    use crate::case_key::{CasePrivateKey, CaseSecret};
    use crate::ids::BlobId;

    /// The blob id is checked in the decrypting pass, and a blob that
    /// decrypts but is not the one named leaves no file behind.
    #[test]
    fn opening_as_a_blob_id_checks_the_id_before_the_file_appears() {
        let private = CasePrivateKey::generate(1).unwrap();
        let plain: Vec<u8> = (0..3 * 1024 * 1024 + 5).map(|i| (i % 249) as u8).collect();
        let mut blob = Vec::new();
        let sealed = seal(
            &SealingKey::Public(private.public()),
            "a.wav",
            "audio/wav",
            None,
            &mut Cursor::new(&plain),
            &mut blob,
        )
        .unwrap();
        let keys = move |_| Some(CaseSecret::Private(private.clone()));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.wav");

        let other: BlobId = "ab".repeat(32).parse().unwrap();
        let err = open_to_path_as(&keys, &mut Cursor::new(&blob), &out, &other).unwrap_err();
        assert!(matches!(err, EnvelopeError::NotItsId), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        open_to_path_as(&keys, &mut Cursor::new(&blob), &out, &sealed.blob_id).unwrap();
        assert!(std::fs::read(&out).unwrap() == plain);
    }
}
