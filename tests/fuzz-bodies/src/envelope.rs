use std::io::Cursor;

use ring::aead::{Aad, Nonce};

use fieldsync_core::bundle::{self, BundleManifest, BundleReader};
use fieldsync_core::case_key::{CaseKey, CasePrivateKey, CaseSecret};
use fieldsync_core::envelope::{self, AttachmentMeta};
use fieldsync_core::identity::Domain;
use fieldsync_core::web_login::LoginCertificate;

use crate::world::key;

/// The case key the envelope target seals and opens with (epoch 1).
pub(crate) fn case_key() -> CaseKey {
    CaseKey::from_bytes(1, [7; 32])
}

/// The case private key of envelope version 2 (epoch 2).
pub(crate) fn case_private_key() -> CasePrivateKey {
    CasePrivateKey::from_bytes(2, [0x48; 32])
}

pub(crate) fn keys(epoch: u32) -> Option<CaseSecret> {
    match epoch {
        1 => Some(CaseSecret::Symmetric(case_key())),
        2 => Some(CaseSecret::Private(case_private_key())),
        _ => None,
    }
}

/// Seals `plain` with fixed keys, as a device would with random ones:
/// to the case public key (version 2) if `v2`, else with the symmetric key.
pub(crate) fn seal_fixed(plain: &[u8], v2: bool) -> Vec<u8> {
    let meta = AttachmentMeta {
        name: "photo.jpg".into(),
        media_type: "image/jpeg".into(),
        size: plain.len() as u64,
        sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, plain)),
        captured_at: Some("2016-05-21T10:40:00+06:00".into()),
    };
    let mut blob = Vec::new();
    let key = if v2 {
        envelope::SealingKey::Public(case_private_key().public())
    } else {
        envelope::SealingKey::Symmetric(case_key())
    };
    let random = envelope::SealRandom {
        content_key: [9; 32],
        nonce_prefix: [3; 7],
        header_nonce: [5; 12],
        ephemeral_seed: [6; 32],
    };
    envelope::seal_with(&key, &random, meta, &mut Cursor::new(plain), &mut blob)
        .expect("sealing into memory succeeds");
    blob
}

/// The attachment envelope. `data[0] % 3` picks the mode:
/// 0. the rest is a blob, opened with the fuzzing case key;
/// 1. the rest (`data[1]` times, at most 256 KiB) is a plaintext, sealed
///    (to the case public key when `data[1]` is odd, else with the
///    symmetric key), opened, and opened again with one byte altered;
/// 2. the rest is header JSON, sealed as a header and followed by the bytes
///    after its first NUL, then opened.
///
/// Invariants: an opened blob's plaintext has the size and SHA-256 its
/// header records and [`envelope::read_meta`] reads the same metadata;
/// sealing then opening gives the plaintext back; an altered blob never
/// opens.
pub fn envelope(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => open_checked(rest),
        1 => {
            let Some((&times, unit)) = rest.split_first() else {
                return;
            };
            let mut plain = Vec::new();
            for _ in 0..=times {
                if plain.len() + unit.len() > 256 * 1024 {
                    break;
                }
                plain.extend_from_slice(unit);
            }
            let mut blob = seal_fixed(&plain, times % 2 == 1);
            let mut out = Vec::new();
            envelope::open(&keys, &mut Cursor::new(&blob), &mut out).expect("a sealed blob opens");
            assert_eq!(out, plain, "sealing then opening changed the file");
            let at = usize::from(times) * 7919 % blob.len();
            blob[at] ^= 1 << (times % 8);
            assert!(
                envelope::open(&keys, &mut Cursor::new(&blob), &mut Vec::new()).is_err(),
                "a blob with byte {at} altered opened"
            );
        }
        _ => {
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let mut header = rest[..split].to_vec();
            let chunks = rest.get(split + 1..).unwrap_or_default();
            let nonce = [5u8; 12];
            envelope::aead_key(case_key().bytes())
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(envelope::header_aad(1)),
                    &mut header,
                )
                .expect("sealing a header succeeds");
            let mut blob = envelope::MAGIC.to_vec();
            blob.extend_from_slice(&1u32.to_be_bytes());
            blob.extend_from_slice(&nonce);
            blob.extend_from_slice(&(header.len() as u32).to_be_bytes());
            blob.extend_from_slice(&header);
            blob.extend_from_slice(chunks);
            open_checked(&blob);
        }
    }
}

pub(crate) fn open_checked(blob: &[u8]) {
    let _ = envelope::head_epoch(blob);
    let meta = envelope::read_meta(&keys, &mut Cursor::new(blob));
    let mut out = Vec::new();
    if let Ok(opened) = envelope::open(&keys, &mut Cursor::new(blob), &mut out) {
        assert_eq!(out.len() as u64, opened.size);
        assert_eq!(
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &out)),
            opened.sha256
        );
        assert_eq!(meta.ok(), Some(opened), "read_meta and open disagree");
    }
}

/// Sync bundles. `data` is a bundle whose last 64 bytes are replaced by
/// key 0's signature (so a mutated bundle by key 0 still verifies), then
/// verified.
///
/// Invariants: a bundle that verifies names key 0 as its signer; writing
/// its manifest and attachments again makes a bundle that verifies to the
/// same manifest.
pub fn bundle(data: &[u8]) {
    let mut bytes = data.to_vec();
    if bytes.len() >= 64 {
        let at = bytes.len() - 64;
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes[..at]);
        let signature = key(0).sign(Domain::Bundle, digest.as_ref());
        bytes[at..].copy_from_slice(signature.as_bytes());
    }
    let len = bytes.len() as u64;
    let mut input = Cursor::new(&bytes);
    let Ok(mut reader) = BundleReader::open(&mut input, len) else {
        return;
    };
    let mut blobs = Vec::new();
    for i in 0..reader.manifest.attachments.len() {
        let mut blob = Vec::new();
        if reader.copy_attachment(i, &mut blob).is_err() {
            return;
        }
        blobs.push(blob);
    }
    let Ok(manifest) = reader.finish() else {
        return;
    };
    assert_eq!(manifest.device, key(0).device_id());
    let again = write_bundle(&manifest, &blobs);
    let reread = bundle::verify(&mut Cursor::new(&again), again.len() as u64)
        .expect("a rewritten bundle verifies");
    assert_eq!(reread, manifest, "the manifest does not survive rewriting");
}

pub(crate) fn write_bundle(manifest: &BundleManifest, blobs: &[Vec<u8>]) -> Vec<u8> {
    let mut next = blobs.iter();
    let mut out = Vec::new();
    bundle::write(
        key(0),
        manifest,
        &mut |_| {
            let blob = next.next().cloned().unwrap_or_default();
            Ok(Box::new(Cursor::new(blob)))
        },
        &mut out,
    )
    .expect("writing a bundle into memory succeeds");
    out
}

/// Share codes: a case key's share code and a web login link's token, each
/// decoded from `data` as text.
///
/// Invariants: a share code that decodes is the code of the key it
/// decodes to (whitespace aside); a token that decodes re-encodes to the
/// same certificate.
pub fn codes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = CaseSecret::from_share_code(text) {
        let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(key.share_code(), cleaned, "a share code decodes two ways");
    }
    if let Ok(cert) = LoginCertificate::from_token(text) {
        let again = LoginCertificate::from_token(&cert.to_token()).expect("a token re-encodes");
        assert_eq!(again, cert);
    }
}
