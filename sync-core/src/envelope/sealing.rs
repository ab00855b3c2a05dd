//! The two passes of [`super::seal`] over a file, each overlapped.
//!
//! The header comes first in the blob and records the plaintext's SHA-256,
//! and the blob id is the SHA-256 of the whole blob from its first byte:
//! the plaintext must be hashed before the blob hash can begin, so the file
//! is read twice whatever the order (writing the header last would change
//! the format that existing blobs and the JavaScript decoders read). Each
//! pass is a pipeline of bounded blocks instead: the first reads and
//! hashes the plaintext; the second reads, encrypts, hashes the blob and
//! writes it, each on its own thread, and hashes the plaintext again to
//! notice a file that changed between the passes.

use std::io::{Read, Write};

use ring::aead::{Aad, LessSafeKey};
use ring::digest::{Context, SHA256};

use super::chunks::{aead_key, chunk_nonce, read_full, CHUNK, TAG};
use super::error::EnvelopeError;
use super::pipeline::{self, Stage, BLOCKS, CHUNKS_PER_BLOCK};

/// 1 MiB of plaintext in the first pass.
struct Plain {
    buf: Vec<u8>,
    len: usize,
}

/// The first pass: length and hex SHA-256 of `input`, read and hashed on
/// two threads.
pub(super) fn hash_plaintext<R: Read + Send>(
    input: &mut R,
) -> Result<(u64, String), EnvelopeError> {
    let blocks = (0..BLOCKS)
        .map(|_| Plain {
            buf: vec![0; CHUNKS_PER_BLOCK * CHUNK],
            len: 0,
        })
        .collect();
    let mut hash = Context::new(&SHA256);
    let mut size = 0u64;
    let hashing: Stage<'_, Plain, EnvelopeError> = Box::new(|block: &mut Plain| {
        hash.update(&block.buf[..block.len]);
        Ok(())
    });
    pipeline::run(
        blocks,
        |block: &mut Plain| {
            block.len = read_full(input, &mut block.buf)?;
            size += block.len as u64;
            Ok(block.len > 0)
        },
        vec![hashing],
    )?;
    Ok((size, hex::encode(hash.finish())))
}

/// 16 chunks of the second pass, each read to its place in the sealed
/// layout (`CHUNK + TAG` apart) and encrypted there.
struct Sealing {
    buf: Vec<u8>,
    /// Plaintext bytes of each chunk in this block.
    lens: Vec<usize>,
    first_index: u32,
}

impl Sealing {
    fn plain(&self) -> impl Iterator<Item = &[u8]> {
        self.lens
            .iter()
            .enumerate()
            .map(|(i, &len)| &self.buf[i * (CHUNK + TAG)..i * (CHUNK + TAG) + len])
    }

    /// The sealed bytes: the chunks with their tags, end to end.
    fn sealed(&self) -> &[u8] {
        let full = self.lens.len().saturating_sub(1);
        let tail = self.lens.last().map_or(0, |len| len + TAG);
        &self.buf[..full * (CHUNK + TAG) + tail]
    }
}

/// What the first pass found and the second must find again.
pub(super) struct Plaintext<'a> {
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: &'a str,
}

/// The second pass: reads `input` again, expecting `plain.size` bytes;
/// encrypts them with `content_key` and `prefix`, hashes `head` and the
/// chunks for the blob id, and writes both; checks that the plaintext
/// still hashes to `plain.sha256` ([`EnvelopeError::Changed`] if not).
/// Returns the blob's digest and length.
pub(super) fn seal_chunks<R: Read + Send, W: Write + Send>(
    (content_key, prefix): (&[u8; 32], [u8; 7]),
    plain: Plaintext<'_>,
    head: &[u8],
    input: &mut R,
    output: &mut W,
) -> Result<(ring::digest::Digest, u64), EnvelopeError> {
    let key: LessSafeKey = aead_key(content_key);
    // An empty file is one empty chunk, marked last.
    let chunks = plain.size.div_ceil(CHUNK as u64).max(1);
    let last_index = u32::try_from(chunks - 1).map_err(|_| EnvelopeError::Chunk(chunks - 1))?;
    let blocks = (0..BLOCKS)
        .map(|_| Sealing {
            buf: vec![0; CHUNKS_PER_BLOCK * (CHUNK + TAG)],
            lens: Vec::with_capacity(CHUNKS_PER_BLOCK),
            first_index: 0,
        })
        .collect();

    output.write_all(head)?;
    let mut blob_hash = Context::new(&SHA256);
    blob_hash.update(head);
    let mut blob_len = head.len() as u64;
    let mut plain_hash = Context::new(&SHA256);
    let mut next_index: u64 = 0;
    let mut left = plain.size;

    let rehash: Stage<'_, Sealing, EnvelopeError> = Box::new(|block: &mut Sealing| {
        for chunk in block.plain() {
            plain_hash.update(chunk);
        }
        Ok(())
    });
    let encrypt: Stage<'_, Sealing, EnvelopeError> = Box::new(|block: &mut Sealing| {
        for (i, &len) in block.lens.iter().enumerate() {
            let index = block.first_index + i as u32;
            let at = i * (CHUNK + TAG);
            let (data, tag_space) = block.buf[at..at + len + TAG].split_at_mut(len);
            let tag = key
                .seal_in_place_separate_tag(
                    chunk_nonce(&prefix, index, index == last_index),
                    Aad::empty(),
                    data,
                )
                .map_err(|_| EnvelopeError::Chunk(u64::from(index)))?;
            tag_space.copy_from_slice(tag.as_ref());
        }
        Ok(())
    });
    let hash_blob: Stage<'_, Sealing, EnvelopeError> = Box::new(|block: &mut Sealing| {
        blob_hash.update(block.sealed());
        Ok(())
    });
    let write: Stage<'_, Sealing, EnvelopeError> = Box::new(|block: &mut Sealing| {
        output.write_all(block.sealed())?;
        blob_len += block.sealed().len() as u64;
        Ok(())
    });
    let mut done = false;
    pipeline::run(
        blocks,
        |block: &mut Sealing| {
            if done {
                return Ok(false);
            }
            block.lens.clear();
            block.first_index = u32::try_from(next_index).map_err(|_| EnvelopeError::Changed)?;
            while block.lens.len() < CHUNKS_PER_BLOCK && next_index < chunks {
                let len = left.min(CHUNK as u64) as usize;
                let at = block.lens.len() * (CHUNK + TAG);
                if read_full(input, &mut block.buf[at..at + len])? < len {
                    // Shorter than the first pass found.
                    return Err(EnvelopeError::Changed);
                }
                block.lens.push(len);
                left -= len as u64;
                next_index += 1;
            }
            if next_index == chunks {
                // Longer than the first pass found.
                if read_full(input, &mut [0u8; 1])? != 0 {
                    return Err(EnvelopeError::Changed);
                }
                done = true;
            }
            Ok(true)
        },
        vec![rehash, encrypt, hash_blob, write],
    )?;
    output.flush()?;
    if hex::encode(plain_hash.finish()) != plain.sha256 {
        return Err(EnvelopeError::Changed);
    }
    Ok((blob_hash.finish(), blob_len))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::super::{open, seal_random, seal_with, SealRandom, SealingKey, CHUNK};
    use super::{BLOCKS, CHUNKS_PER_BLOCK};
    use crate::case_key::{CaseKey, CasePrivateKey, CaseSecret};

    /// The pipelined passes write exactly what the one-thread reference
    /// writes, at every block and chunk boundary, for both versions.
    #[test]
    fn the_pipeline_seals_byte_for_byte_as_the_reference_does() {
        let random = SealRandom {
            content_key: [1; 32],
            nonce_prefix: [2; 7],
            header_nonce: [3; 12],
            ephemeral_seed: [4; 32],
        };
        let private = CasePrivateKey::generate(5).unwrap();
        let symmetric = CaseKey::generate(5).unwrap();
        let keys = [
            (
                SealingKey::Public(private.public()),
                CaseSecret::Private(private.clone()),
            ),
            (
                SealingKey::Symmetric(symmetric.clone()),
                CaseSecret::Symmetric(symmetric),
            ),
        ];
        let block = CHUNKS_PER_BLOCK * CHUNK;
        for (key, secret) in &keys {
            for len in [
                0,
                1,
                CHUNK,
                CHUNK + 1,
                block - 1,
                block,
                block + 1,
                BLOCKS * block,
                (BLOCKS + 1) * block + 17,
            ] {
                let plain: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
                let mut piped = Vec::new();
                let sealed = seal_random(
                    key,
                    &random,
                    "v.mp4",
                    "video/mp4",
                    None,
                    &mut Cursor::new(&plain),
                    &mut piped,
                )
                .unwrap();
                let mut reference = Vec::new();
                let expected = seal_with(
                    key,
                    &random,
                    sealed.meta.clone(),
                    &mut Cursor::new(&plain),
                    &mut reference,
                )
                .unwrap();
                assert_eq!(sealed, expected, "{len} bytes");
                assert!(piped == reference, "{len} bytes: the blobs differ");
                let secret = secret.clone();
                let mut opened = Vec::new();
                open(
                    &move |_| Some(secret.clone()),
                    &mut Cursor::new(&piped),
                    &mut opened,
                )
                .unwrap();
                assert!(opened == plain, "{len} bytes: opened differently");
            }
        }
    }
}
