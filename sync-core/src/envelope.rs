//! The attachment envelope: how a photo, video or recording is encrypted on
//! the device before it leaves it. The server stores and serves this blob
//! and can read nothing in it but lengths.
//!
//! Two versions share everything after the sealed header. Version 2
//! ("FSA2", what devices seal today) seals the header to the case's X25519
//! *public* key, so a reporter's device, which holds only that, cannot
//! open what it sent; version 1 ("FSA1") sealed it with the symmetric case
//! key every device held, and stays readable.
//!
//! Version 2, byte for byte (all integers big-endian):
//!
//! ```text
//! "FSA2"                       4  magic and version
//! key_epoch                    4  which case key pair the header is sealed to
//! enc                         32  HPKE encapsulated key (the sender's
//!                                   ephemeral X25519 public key)
//! header_len                   4  length of the sealed header
//! sealed_header       header_len  HPKE base mode single-shot seal (RFC 9180):
//!                                   DHKEM(X25519, HKDF-SHA256) 0x0020,
//!                                   HKDF-SHA256 0x0001, AES-256-GCM 0x0002,
//!                                   info = "fieldsync attachment v2" (23 bytes),
//!                                   aad = the 8 bytes "FSA2" ‖ key_epoch,
//!                                   plaintext = header JSON
//! chunk 0, chunk 1, …              as in version 1
//! ```
//!
//! The `hpke` crate does the HPKE part: ring has AES-GCM and HKDF but no
//! X25519 with a static private key, which the recipient side needs.
//! Test vectors: `tests/vectors/envelope-v2.json` (see [`tests`]).
//!
//! Version 1, byte for byte:
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
use ring::aead::{Aad, Nonce};
// The tests build chunk keys by hand from what `super::*` brings.
#[cfg(test)]
use ring::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::case_key::{CaseKem, CaseKey, CasePublicKey, CaseSecret};
use crate::hashing::Hashing;

/// Version 1's magic: a header sealed with a symmetric case key.
pub const MAGIC: &[u8; 4] = b"FSA1";
/// Version 2's magic: a header sealed to a case public key with HPKE.
pub const MAGIC_V2: &[u8; 4] = b"FSA2";
/// HPKE `info` of version 2.
pub const HPKE_INFO: &[u8] = b"fieldsync attachment v2";
type HpkeAead = hpke::aead::AesGcm256;
type HpkeKdf = hpke::kdf::HkdfSha256;
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
    /// SHA-256 of the whole blob: the blob id.
    pub blob_id: crate::ids::BlobId,
    pub blob_len: u64,
    pub key_epoch: u32,
    /// The blob's first bytes up to the end of the sealed header (magic,
    /// epoch, header nonce, length, sealed header). A report carries them
    /// so a device with the case key can list an attachment's name and
    /// type without fetching the blob; see [`read_meta`].
    pub head: Vec<u8>,
}

/// What a new attachment is sealed to: a case public key (version 2), or,
/// on a device of a case that has no key pair yet, its newest symmetric
/// key (version 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealingKey {
    Public(CasePublicKey),
    Symmetric(CaseKey),
}

impl SealingKey {
    pub fn epoch(&self) -> u32 {
        match self {
            SealingKey::Public(key) => key.epoch,
            SealingKey::Symmetric(key) => key.epoch,
        }
    }
}

/// The random parts of one sealing. [`seal`] draws them fresh; test
/// vectors give them.
pub struct SealRandom {
    pub content_key: [u8; 32],
    pub nonce_prefix: [u8; 7],
    /// Version 1 only: the header's AES-GCM nonce.
    pub header_nonce: [u8; 12],
    /// Version 2 only: the seed the HPKE ephemeral key pair is derived
    /// from (RFC 9180 `DeriveKeyPair`, by the `hpke` crate).
    pub ephemeral_seed: [u8; 32],
}

impl SealRandom {
    pub fn fresh() -> Result<Self, EnvelopeError> {
        let rng = SystemRandom::new();
        let mut random = SealRandom {
            content_key: [0; 32],
            nonce_prefix: [0; 7],
            header_nonce: [0; 12],
            ephemeral_seed: [0; 32],
        };
        for buf in [
            &mut random.content_key[..],
            &mut random.nonce_prefix[..],
            &mut random.header_nonce[..],
            &mut random.ephemeral_seed[..],
        ] {
            rng.fill(buf).map_err(|_| EnvelopeError::Random)?;
        }
        Ok(random)
    }
}

/// Encrypts `input` for `key`, writing the blob to `output`. Reads the
/// input twice (hash first, for the header), each time through a few
/// bounded blocks that reading, hashing, encrypting and writing pass
/// between threads (see [`sealing`]).
pub fn seal<R: Read + Seek + Send, W: Write + Send>(
    key: &SealingKey,
    name: &str,
    media_type: &str,
    captured_at: Option<String>,
    input: &mut R,
    output: &mut W,
) -> Result<Sealed, EnvelopeError> {
    let random = SealRandom::fresh()?;
    seal_random(key, &random, name, media_type, captured_at, input, output)
}

/// [`seal`] with the random parts given.
fn seal_random<R: Read + Seek + Send, W: Write + Send>(
    key: &SealingKey,
    random: &SealRandom,
    name: &str,
    media_type: &str,
    captured_at: Option<String>,
    input: &mut R,
    output: &mut W,
) -> Result<Sealed, EnvelopeError> {
    let (size, sha256) = sealing::hash_plaintext(input)?;
    input.seek(SeekFrom::Start(0))?;
    let meta = AttachmentMeta {
        name: name.to_owned(),
        media_type: media_type.to_owned(),
        size,
        sha256,
        captured_at,
    };
    let head = seal_head(key, random, &meta)?;
    // The header records the first read; the chunks come from a second.
    // A file still being written (a recording) would make them disagree
    // and the attachment unreadable, so the second read is hashed too.
    let plain = sealing::Plaintext {
        size,
        sha256: &meta.sha256,
    };
    let (digest, blob_len) = sealing::seal_chunks(
        (&random.content_key, random.nonce_prefix),
        plain,
        &head,
        input,
        output,
    )?;
    Ok(Sealed {
        meta,
        blob_id: crate::ids::BlobId::of_digest(&digest),
        blob_len,
        key_epoch: key.epoch(),
        head,
    })
}

/// Whether `id` can be a blob id: 64 lowercase hexadecimal characters.
/// Blob ids arrive in reports from other devices and name files.
pub fn valid_blob_id(id: &str) -> bool {
    id.parse::<crate::ids::BlobId>().is_ok()
}

/// The blob's head: magic, epoch, header nonce or encapsulated key, and
/// the sealed header that records `meta` and the content key.
fn seal_head(
    key: &SealingKey,
    random: &SealRandom,
    meta: &AttachmentMeta,
) -> Result<Vec<u8>, EnvelopeError> {
    let header = Header {
        content_key: STANDARD.encode(random.content_key),
        nonce_prefix: STANDARD.encode(random.nonce_prefix),
        meta: meta.clone(),
    };
    let header_json = serde_json::to_vec(&header).expect("the header always serializes");
    match key {
        SealingKey::Symmetric(case_key) => {
            seal_header_v1(case_key, &random.header_nonce, header_json)
        }
        SealingKey::Public(public) => seal_header_v2(public, &random.ephemeral_seed, &header_json),
    }
}

/// [`seal`] with the random parts given, in one thread: for test vectors,
/// and the reference the pipelined [`seal`] is tested against.
pub fn seal_with<R: Read, W: Write>(
    key: &SealingKey,
    random: &SealRandom,
    meta: AttachmentMeta,
    input: &mut R,
    output: &mut W,
) -> Result<Sealed, EnvelopeError> {
    let mut out = Hashing::new(output);
    let head = seal_head(key, random, &meta)?;
    out.write_all(&head)?;
    let prefix = &random.nonce_prefix;
    let epoch = key.epoch();

    let key = aead_key(&random.content_key);
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
        blob_id: crate::ids::BlobId::of_digest(&out.digest()),
        blob_len: out.len,
        key_epoch: epoch,
        head,
    })
}

fn seal_header_v1(
    case_key: &CaseKey,
    header_nonce: &[u8; 12],
    mut sealed_header: Vec<u8>,
) -> Result<Vec<u8>, EnvelopeError> {
    aead_key(case_key.bytes())
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
    Ok(head)
}

fn seal_header_v2(
    public: &CasePublicKey,
    ephemeral_seed: &[u8; 32],
    header_json: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let (enc, sealed_header) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, CaseKem>(
        &hpke::OpModeS::Base,
        &public.hpke(),
        HPKE_INFO,
        header_json,
        &header_aad_v2(public.epoch),
        &mut SeededRng::new(ephemeral_seed),
    )
    // Only a public key of small order (all-zero shared secret) fails.
    .map_err(|_| EnvelopeError::Header)?;
    let mut head = Vec::with_capacity(FIXED_HEAD_V2 + sealed_header.len());
    head.extend_from_slice(MAGIC_V2);
    head.extend_from_slice(&public.epoch.to_be_bytes());
    head.extend_from_slice(&hpke::Serializable::to_bytes(&enc));
    head.extend_from_slice(&(sealed_header.len() as u32).to_be_bytes());
    head.extend_from_slice(&sealed_header);
    Ok(head)
}

/// The randomness HPKE draws for its ephemeral key: SHA-256(seed ‖ block
/// counter) blocks, so the caller draws the seed from ring's
/// `SystemRandom` (and a failure is an error, not a panic) and test
/// vectors are reproducible. HPKE asks for 32 bytes once.
struct SeededRng {
    seed: [u8; 32],
    block: u32,
    buf: [u8; 32],
    used: usize,
}

impl SeededRng {
    fn new(seed: &[u8; 32]) -> Self {
        Self {
            seed: *seed,
            block: 0,
            buf: [0; 32],
            used: 32,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if self.used == 32 {
            let mut ctx = Context::new(&SHA256);
            ctx.update(&self.seed);
            ctx.update(&self.block.to_be_bytes());
            self.buf.copy_from_slice(ctx.finish().as_ref());
            self.block = self.block.wrapping_add(1);
            self.used = 0;
        }
        self.used += 1;
        self.buf[self.used - 1]
    }
}

impl hpke::rand_core::TryRng for SeededRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            *byte = self.next_byte();
        }
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for SeededRng {}

/// Decrypts a blob to `output`, chunk by chunk (reading, decrypting,
/// hashing and writing overlapped, see [`opening`]), checking size and
/// SHA-256 at the end. On error `output` holds unauthenticated data: discard it
/// ([`open_to_path`] does).
pub fn open<R: Read, W: Write + Send>(
    keys: &dyn Fn(u32) -> Option<CaseSecret>,
    input: &mut R,
    output: &mut W,
) -> Result<AttachmentMeta, EnvelopeError> {
    open_checked(keys, input, output, None)
}

/// [`open`], and with `blob` also checks that the whole of `input` hashes
/// to that blob id, in the same pass.
fn open_checked<R: Read, W: Write + Send>(
    keys: &dyn Fn(u32) -> Option<CaseSecret>,
    input: &mut R,
    output: &mut W,
    blob: Option<&crate::ids::BlobId>,
) -> Result<AttachmentMeta, EnvelopeError> {
    let mut head = Hashing::new(&mut *input);
    let header = open_header(keys, &mut head)?;
    let (_, mut blob_hash) = head.into_parts();
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
    let (size, hash) = opening::open_chunks(
        &key,
        &prefix,
        input,
        output,
        blob.is_some().then_some(&mut blob_hash),
    )?;
    if blob.is_some_and(|blob| *blob != crate::ids::BlobId::of_digest(&blob_hash.finish())) {
        return Err(EnvelopeError::NotItsId);
    }
    if size != header.meta.size || hex::encode(hash) != header.meta.sha256 {
        return Err(EnvelopeError::Digest);
    }
    Ok(header.meta)
}

/// Opens only the sealed header at the start of `input` (a whole blob, or
/// just its head as a report carries it) and returns what it says about
/// the file. Reads nothing past the header.
pub fn read_meta<R: Read>(
    keys: &dyn Fn(u32) -> Option<CaseSecret>,
    input: &mut R,
) -> Result<AttachmentMeta, EnvelopeError> {
    Ok(open_header(keys, input)?.meta)
}

/// The case key epoch a blob's head names, without any key.
pub fn head_epoch(head: &[u8]) -> Result<u32, EnvelopeError> {
    let fixed = match head.get(..4) {
        Some(m) if m == MAGIC => FIXED_HEAD,
        Some(m) if m == MAGIC_V2 => FIXED_HEAD_V2,
        _ => return Err(EnvelopeError::NotAnAttachment),
    };
    if head.len() < fixed {
        return Err(EnvelopeError::NotAnAttachment);
    }
    Ok(u32::from_be_bytes(head[4..8].try_into().expect("4 bytes")))
}

/// The envelope version a blob's head has: 1 or 2.
pub fn head_version(head: &[u8]) -> Result<u8, EnvelopeError> {
    head_epoch(head)?;
    Ok(if &head[..4] == MAGIC { 1 } else { 2 })
}

const FIXED_HEAD: usize = 24;
const FIXED_HEAD_V2: usize = 44;

fn open_header<R: Read>(
    keys: &dyn Fn(u32) -> Option<CaseSecret>,
    input: &mut R,
) -> Result<Header, EnvelopeError> {
    let mut start = [0u8; 8];
    input
        .read_exact(&mut start)
        .map_err(|_| EnvelopeError::NotAnAttachment)?;
    let version: u8 = match &start[..4] {
        m if m == MAGIC => 1,
        m if m == MAGIC_V2 => 2,
        _ => return Err(EnvelopeError::NotAnAttachment),
    };
    let epoch = u32::from_be_bytes(start[4..8].try_into().expect("4 bytes"));
    // Nonce (v1) or encapsulated key (v2), then the header's length.
    let mut rest = vec![0u8; if version == 1 { 16 } else { 36 }];
    input
        .read_exact(&mut rest)
        .map_err(|_| EnvelopeError::NotAnAttachment)?;
    let header_len =
        u32::from_be_bytes(rest[rest.len() - 4..].try_into().expect("4 bytes")) as usize;
    if !(TAG..=MAX_HEADER).contains(&header_len) {
        return Err(EnvelopeError::Header);
    }
    let secret = keys(epoch).ok_or(EnvelopeError::UnknownEpoch(epoch))?;
    let mut sealed = vec![0u8; header_len];
    input
        .read_exact(&mut sealed)
        .map_err(|_| EnvelopeError::Truncated)?;
    let plain = match (&secret, version) {
        (CaseSecret::Symmetric(case_key), 1) => {
            let header_nonce: [u8; 12] = rest[..12].try_into().expect("12 bytes");
            aead_key(case_key.bytes())
                .open_in_place(
                    Nonce::assume_unique_for_key(header_nonce),
                    Aad::from(header_aad(epoch)),
                    &mut sealed,
                )
                .map_err(|_| EnvelopeError::Header)?
                .to_vec()
        }
        (CaseSecret::Private(private), 2) => {
            let enc = <<CaseKem as hpke::Kem>::EncappedKey as hpke::Deserializable>::from_bytes(
                &rest[..32],
            )
            .map_err(|_| EnvelopeError::Header)?;
            hpke::single_shot_open::<HpkeAead, HpkeKdf, CaseKem>(
                &hpke::OpModeR::Base,
                &private.hpke(),
                &enc,
                HPKE_INFO,
                &sealed,
                &header_aad_v2(epoch),
            )
            .map_err(|_| EnvelopeError::Header)?
        }
        (secret, needs) => {
            return Err(EnvelopeError::WrongKind {
                epoch,
                needs,
                holds: secret.version(),
            })
        }
    };
    serde_json::from_slice(&plain).map_err(|_| EnvelopeError::Header)
}

/// Decrypts into `path` through a temporary file beside it, renamed into
/// place only when everything authenticated: a failed decryption leaves no
/// file that looks valid.
pub fn open_to_path<R: Read>(
    keys: &dyn Fn(u32) -> Option<CaseSecret>,
    input: &mut R,
    path: &Path,
) -> Result<AttachmentMeta, EnvelopeError> {
    open_to_path_checked(keys, input, path, None)
}

/// [`open_to_path`] of a blob that came from elsewhere: in the same pass,
/// also checks that `input` hashes to `blob`, its id, before the file is
/// renamed into place ([`EnvelopeError::NotItsId`] if not).
pub fn open_to_path_as<R: Read>(
    keys: &dyn Fn(u32) -> Option<CaseSecret>,
    input: &mut R,
    path: &Path,
    blob: &crate::ids::BlobId,
) -> Result<AttachmentMeta, EnvelopeError> {
    open_to_path_checked(keys, input, path, Some(blob))
}

fn open_to_path_checked<R: Read>(
    keys: &dyn Fn(u32) -> Option<CaseSecret>,
    input: &mut R,
    path: &Path,
    blob: Option<&crate::ids::BlobId>,
) -> Result<AttachmentMeta, EnvelopeError> {
    let partial = path.with_extension("fieldsync-partial");
    let result = (|| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&partial)?);
        let meta = open_checked(keys, input, &mut file, blob)?;
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

/// Public for the fuzz bodies (`tests/fuzz-bodies`), which seal a version 1
/// envelope by hand; not part of the API.
#[doc(hidden)]
pub fn header_aad(epoch: u32) -> [u8; 8] {
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(MAGIC);
    aad[4..].copy_from_slice(&epoch.to_be_bytes());
    aad
}

pub(crate) fn header_aad_v2(epoch: u32) -> [u8; 8] {
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(MAGIC_V2);
    aad[4..].copy_from_slice(&epoch.to_be_bytes());
    aad
}

mod chunks;
mod error;
mod opening;
mod pipeline;
mod sealing;

use chunks::read_full;
pub use chunks::{aead_key, chunk_nonce, CHUNK, TAG};
pub use error::EnvelopeError;
#[cfg(test)]
mod tests;
