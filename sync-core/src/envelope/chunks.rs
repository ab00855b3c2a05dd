//! The chunk layout every envelope version shares: 64 KiB of plaintext
//! per chunk, a 16-byte tag after each, and the STREAM nonce (see the
//! parent module's documentation).

use std::io::Read;

use ring::aead::{LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
pub const TAG: usize = 16;

/// The nonce of chunk `index`: prefix ‖ index ‖ last flag.
pub fn chunk_nonce(prefix: &[u8; 7], index: u32, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..7].copy_from_slice(prefix);
    nonce[7..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

/// Public for the fuzz bodies, as `header_aad`; not part of the API.
#[doc(hidden)]
pub fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key"))
}

pub(super) fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
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
