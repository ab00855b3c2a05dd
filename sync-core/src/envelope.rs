//! The attachment envelope: how a photo, video or recording is encrypted on
//! the device before it leaves it. The server stores and serves this blob
//! and can read nothing in it but lengths.
//!
//! Layout, byte for byte (all integers big-endian):
//!
//! ```text
//! "FSA1"                       4  magic and version
//! key_epoch                    4  which case key seals the header
//! header_nonce                12  random
//! header_len                   4  length of the sealed header
//! sealed_header       header_len  AES-256-GCM(case key, header_nonce,
//!                                   aad = the 8 bytes "FSA1" ‖ key_epoch,
//!                                   plaintext = header JSON)
//! chunk 0, chunk 1, …              AES-256-GCM(content key, nonce, aad = empty)
//!                                   of 64 KiB of plaintext each (the last
//!                                   may be shorter, even empty), each
//!                                   followed by its 16-byte tag
//! ```
//!
//! Header JSON: `{"content_key", "nonce_prefix"` (base64), `"name",
//! "media_type", "size", "sha256"` (of the plaintext, hex), `"captured_at"}`.
//!
//! Chunk nonce (12 bytes): `nonce_prefix (7) ‖ chunk index (4) ‖ last (1)`,
//! `last` = 1 on the final chunk and 0 before it: the STREAM construction
//! as in Tink's AES-GCM-HKDF streaming AEAD. Reordered, duplicated,
//! dropped or altered chunks and a truncated blob all fail authentication;
//! a blob that ends without a chunk marked last is an error. WebCrypto
//! decrypts each chunk with `AES-GCM`, `iv` = the nonce, `tagLength` 128.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::case_key::CaseKey;
use crate::hashing::{sha256_stream, Hashing};

pub const MAGIC: &[u8; 4] = b"FSA1";
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
pub const TAG: usize = 16;
/// A sealed header larger than this is hostile.
const MAX_HEADER: usize = 64 * 1024;

/// What the sealed header says about the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub name: String,
    pub media_type: String,
    pub size: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    pub captured_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    content_key: String,
    nonce_prefix: String,
    #[serde(flatten)]
    meta: AttachmentMeta,
}

/// What encrypting produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub meta: AttachmentMeta,
    /// SHA-256 of the whole blob, hex: the blob id.
    pub blob_id: String,
    pub blob_len: u64,
    pub key_epoch: u32,
    /// The blob's first bytes up to the end of the sealed header (magic,
    /// epoch, header nonce, length, sealed header). A report carries them
    /// so a device with the case key can list an attachment's name and
    /// type without fetching the blob; see [`read_meta`].
    pub head: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("reading or writing the file failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("this is not a fieldsync attachment (bad magic)")]
    NotAnAttachment,
    #[error("the attachment is sealed with case key epoch {0}, which this device does not hold; add it with `fieldsync key add`")]
    UnknownEpoch(u32),
    #[error("the attachment header does not open with this case key: wrong key, or the header was altered")]
    Header,
    #[error("chunk {0} does not authenticate: the attachment was altered, reordered or truncated; nothing of it can be trusted")]
    Chunk(u64),
    #[error("the attachment ends without its final chunk: it was truncated")]
    Truncated,
    #[error("the attachment's final chunk does not authenticate: it was truncated or altered; nothing of it can be trusted")]
    Final,
    #[error("the decrypted file does not match the size or SHA-256 its header records")]
    Digest,
    #[error("the system random number generator failed")]
    Random,
    #[error("the file changed while it was being encrypted; attach it again once it is complete")]
    Changed,
}

/// Encrypts `input` for `case_key`, writing the blob to `output`. Reads the
/// input twice (hash first, for the header), holding one chunk at a time.
pub fn seal<R: Read + Seek, W: Write>(
    case_key: &CaseKey,
    name: &str,
    media_type: &str,
    captured_at: Option<String>,
    input: &mut R,
    output: &mut W,
) -> Result<Sealed, EnvelopeError> {
    let rng = SystemRandom::new();
    let mut content_key = [0u8; 32];
    let mut prefix = [0u8; 7];
    let mut header_nonce = [0u8; 12];
    for buf in [&mut content_key[..], &mut prefix[..], &mut header_nonce[..]] {
        rng.fill(buf).map_err(|_| EnvelopeError::Random)?;
    }
    let (size, sha256) = sha256_stream(input)?;
    input.seek(SeekFrom::Start(0))?;
    let meta = AttachmentMeta {
        name: name.to_owned(),
        media_type: media_type.to_owned(),
        size,
        sha256,
        captured_at,
    };
    // The header records the first read; the chunks come from a second.
    // A file still being written (a recording) would make them disagree
    // and the attachment unreadable, so compare.
    let mut second = Hashing::new(input);
    let sealed = seal_with(
        case_key,
        &content_key,
        &prefix,
        &header_nonce,
        meta,
        &mut second,
        output,
    )?;
    if second.len != sealed.meta.size || second.hex() != sealed.meta.sha256 {
        return Err(EnvelopeError::Changed);
    }
    Ok(sealed)
}

/// Whether `id` can be a blob id: 64 lowercase hexadecimal characters.
/// Blob ids arrive in reports from other devices and name files.
pub fn valid_blob_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// [`seal`] with the random parts given: for test vectors only.
pub fn seal_with<R: Read, W: Write>(
    case_key: &CaseKey,
    content_key: &[u8; 32],
    prefix: &[u8; 7],
    header_nonce: &[u8; 12],
    meta: AttachmentMeta,
    input: &mut R,
    output: &mut W,
) -> Result<Sealed, EnvelopeError> {
    let mut out = Hashing::new(output);
    let header = Header {
        content_key: STANDARD.encode(content_key),
        nonce_prefix: STANDARD.encode(prefix),
        meta: meta.clone(),
    };
    let mut sealed_header = serde_json::to_vec(&header).expect("the header always serializes");
    let head_key = aead_key(case_key.bytes());
    head_key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*header_nonce),
            Aad::from(header_aad(case_key.epoch)),
            &mut sealed_header,
        )
        .map_err(|_| EnvelopeError::Header)?;
    let mut head = Vec::with_capacity(FIXED_HEAD + sealed_header.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&case_key.epoch.to_be_bytes());
    head.extend_from_slice(header_nonce);
    head.extend_from_slice(&(sealed_header.len() as u32).to_be_bytes());
    head.extend_from_slice(&sealed_header);
    out.write_all(&head)?;

    let key = aead_key(content_key);
    let mut current = vec![0u8; CHUNK];
    let mut filled = read_full(input, &mut current)?;
    let mut next = vec![0u8; CHUNK];
    let mut index: u32 = 0;
    loop {
        // Look ahead one chunk to know whether this one is the last.
        let next_filled = if filled == CHUNK {
            read_full(input, &mut next)?
        } else {
            0
        };
        let last = next_filled == 0;
        let mut buf = current[..filled].to_vec();
        key.seal_in_place_append_tag(chunk_nonce(prefix, index, last), Aad::empty(), &mut buf)
            .map_err(|_| EnvelopeError::Chunk(u64::from(index)))?;
        out.write_all(&buf)?;
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        filled = next_filled;
        index = index
            .checked_add(1)
            .ok_or(EnvelopeError::Chunk(u64::from(index)))?;
    }
    out.flush()?;
    Ok(Sealed {
        meta,
        blob_id: out.hex(),
        blob_len: out.len,
        key_epoch: case_key.epoch,
        head,
    })
}

/// Decrypts a blob to `output`, chunk by chunk, checking size and SHA-256
/// at the end. On error `output` holds unauthenticated data: discard it
/// ([`open_to_path`] does).
pub fn open<R: Read, W: Write>(
    keys: &dyn Fn(u32) -> Option<CaseKey>,
    input: &mut R,
    output: &mut W,
) -> Result<AttachmentMeta, EnvelopeError> {
    let header = open_header(keys, input)?;
    let content_key: [u8; 32] = STANDARD
        .decode(&header.content_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or(EnvelopeError::Header)?;
    let prefix: [u8; 7] = STANDARD
        .decode(&header.nonce_prefix)
        .ok()
        .and_then(|p| p.try_into().ok())
        .ok_or(EnvelopeError::Header)?;
    let key = aead_key(&content_key);

    let mut hash = Context::new(&SHA256);
    let mut size: u64 = 0;
    // One sealed chunk plus one byte of look-ahead tells whether it is last.
    let mut buf = vec![0u8; CHUNK + TAG + 1];
    let mut filled = read_full(input, &mut buf)?;
    let mut index: u32 = 0;
    loop {
        let last = filled <= CHUNK + TAG;
        if filled < TAG {
            return Err(EnvelopeError::Truncated);
        }
        let take = if last { filled } else { CHUNK + TAG };
        let mut chunk = buf[..take].to_vec();
        let plain = key
            .open_in_place(chunk_nonce(&prefix, index, last), Aad::empty(), &mut chunk)
            .map_err(|_| {
                if last {
                    EnvelopeError::Final
                } else {
                    EnvelopeError::Chunk(u64::from(index))
                }
            })?;
        hash.update(plain);
        size += plain.len() as u64;
        output.write_all(plain)?;
        if last {
            break;
        }
        buf.copy_within(take..filled, 0);
        filled -= take;
        filled += read_full(input, &mut buf[filled..])?;
        index = index
            .checked_add(1)
            .ok_or(EnvelopeError::Chunk(u64::from(index)))?;
    }
    output.flush()?;
    if size != header.meta.size || hex::encode(hash.finish()) != header.meta.sha256 {
        return Err(EnvelopeError::Digest);
    }
    Ok(header.meta)
}

/// Opens only the sealed header at the start of `input` (a whole blob, or
/// just its head as a report carries it) and returns what it says about
/// the file. Reads nothing past the header.
pub fn read_meta<R: Read>(
    keys: &dyn Fn(u32) -> Option<CaseKey>,
    input: &mut R,
) -> Result<AttachmentMeta, EnvelopeError> {
    Ok(open_header(keys, input)?.meta)
}

/// The case key epoch a blob's head names, without any key.
pub fn head_epoch(head: &[u8]) -> Result<u32, EnvelopeError> {
    if head.len() < FIXED_HEAD || &head[..4] != MAGIC {
        return Err(EnvelopeError::NotAnAttachment);
    }
    Ok(u32::from_be_bytes(head[4..8].try_into().expect("4 bytes")))
}

const FIXED_HEAD: usize = 24;

fn open_header<R: Read>(
    keys: &dyn Fn(u32) -> Option<CaseKey>,
    input: &mut R,
) -> Result<Header, EnvelopeError> {
    let mut fixed = [0u8; FIXED_HEAD];
    input
        .read_exact(&mut fixed)
        .map_err(|_| EnvelopeError::NotAnAttachment)?;
    let epoch = head_epoch(&fixed)?;
    let header_nonce: [u8; 12] = fixed[8..20].try_into().expect("12 bytes");
    let header_len = u32::from_be_bytes(fixed[20..24].try_into().expect("4 bytes")) as usize;
    if !(TAG..=MAX_HEADER).contains(&header_len) {
        return Err(EnvelopeError::Header);
    }
    let case_key = keys(epoch).ok_or(EnvelopeError::UnknownEpoch(epoch))?;
    let mut sealed = vec![0u8; header_len];
    input
        .read_exact(&mut sealed)
        .map_err(|_| EnvelopeError::Truncated)?;
    let plain = aead_key(case_key.bytes())
        .open_in_place(
            Nonce::assume_unique_for_key(header_nonce),
            Aad::from(header_aad(epoch)),
            &mut sealed,
        )
        .map_err(|_| EnvelopeError::Header)?;
    serde_json::from_slice(plain).map_err(|_| EnvelopeError::Header)
}

/// Decrypts into `path` through a temporary file beside it, renamed into
/// place only when everything authenticated: a failed decryption leaves no
/// file that looks valid.
pub fn open_to_path<R: Read>(
    keys: &dyn Fn(u32) -> Option<CaseKey>,
    input: &mut R,
    path: &Path,
) -> Result<AttachmentMeta, EnvelopeError> {
    let partial = path.with_extension("fieldsync-partial");
    let result = (|| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&partial)?);
        let meta = open(keys, input, &mut file)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(meta)
    })();
    match result {
        Ok(meta) => match std::fs::rename(&partial, path) {
            Ok(()) => Ok(meta),
            Err(e) => {
                // Never leave a plaintext under a name the user did not give.
                let _ = std::fs::remove_file(&partial);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// The nonce of chunk `index`: prefix ‖ index ‖ last flag.
pub fn chunk_nonce(prefix: &[u8; 7], index: u32, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..7].copy_from_slice(prefix);
    nonce[7..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

pub(crate) fn header_aad(epoch: u32) -> [u8; 8] {
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(MAGIC);
    aad[4..].copy_from_slice(&epoch.to_be_bytes());
    aad
}

pub(crate) fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key"))
}

fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests;
