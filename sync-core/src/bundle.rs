//! Sync bundles: a device's unacknowledged work in one signed file, carried
//! by USB or SD card when there is no network at all. A coordinator's
//! device imports it and relays it on its next sync; every change keeps its
//! author's own signature, so authorship survives the detour.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! "FSB1"                        4  magic and version
//! manifest_len                  8
//! manifest               manifest_len  JSON: BundleManifest (changes base64)
//! blob 0, blob 1, …                 the sealed attachments, in manifest
//!                                    order, each exactly `size` bytes
//! signature                    64  Ed25519 by the exporting device, domain
//!                                    "fieldsync bundle v1\0", over the
//!                                    SHA-256 of every byte before it
//! ```
//!
//! Nothing in a bundle is readable without the case key where it is
//! encrypted: attachments travel as the same ciphertext the server would
//! store. Report contents (like a sync request) are signed, not encrypted.

use std::io::{Read, Write};

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::hashing::Hashing;
use crate::identity::{DeviceKey, Domain, PublicKey, Signature, SIGNATURE_LEN};
use crate::ids::{CaseId, DeviceId, ReportId};
use crate::signed_change::SignedChange;

pub const MAGIC: &[u8; 4] = b"FSB1";
/// A manifest over this is hostile (or needs a newer format).
const MAX_MANIFEST: u64 = 512 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub version: u32,
    pub device: DeviceId,
    /// Hex Ed25519 public key of the exporting device.
    pub public_key: String,
    pub case_id: CaseId,
    pub case_name: String,
    pub created_at: String,
    pub docs: Vec<BundleDoc>,
    pub attachments: Vec<BundleAttachment>,
}

/// A report's changes: all of them, so the bundle applies on a device that
/// never saw the report, whatever the server acknowledged before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleDoc {
    pub id: ReportId,
    pub changes: Vec<SignedChange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleAttachment {
    pub blob: String,
    pub report: ReportId,
    pub attachment_id: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("reading or writing the bundle failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("this is not a fieldsync bundle")]
    NotABundle,
    #[error("the bundle is damaged or was cut short: {0}")]
    Damaged(String),
    #[error("the bundle's signature does not verify: it was altered after the device signed it; do not use it, ask for a new one")]
    BadSignature,
    #[error("attachment {blob} in the bundle does not match its id: the bundle was altered")]
    BlobMismatch { blob: String },
}

/// Writes a bundle: `manifest`, then each attachment's bytes read from
/// `blob` (in manifest order), then the signature.
pub fn write<W: Write>(
    key: &DeviceKey,
    manifest: &BundleManifest,
    blob: &mut dyn FnMut(&BundleAttachment) -> std::io::Result<Box<dyn Read>>,
    out: &mut W,
) -> Result<(), BundleError> {
    let mut out = Hashing::new(out);
    let json = serde_json::to_vec(manifest).map_err(|e| BundleError::Damaged(e.to_string()))?;
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u64).to_be_bytes())?;
    out.write_all(&json)?;
    for attachment in &manifest.attachments {
        let mut source = blob(attachment)?.take(attachment.size);
        let copied = std::io::copy(&mut source, &mut out)?;
        if copied != attachment.size {
            return Err(BundleError::Damaged(format!(
                "attachment {} has {copied} bytes on this device, {} expected",
                attachment.blob, attachment.size
            )));
        }
    }
    let digest = out.digest();
    let signature = key.sign(Domain::Bundle, digest.as_ref());
    out.inner.write_all(signature.as_bytes())?;
    out.inner.flush()?;
    Ok(())
}

/// Checks a whole bundle of `len` bytes: structure, the signature against
/// the public key it names, and every attachment against its blob id.
/// Reads it once, holding only the manifest in memory. The caller must
/// still check that the key belongs to an enrolled, unrevoked device.
pub fn verify<R: Read>(input: &mut R, len: u64) -> Result<BundleManifest, BundleError> {
    let mut reader = BundleReader::open(input, len)?;
    let mut sink = std::io::sink();
    for i in 0..reader.manifest.attachments.len() {
        reader.copy_attachment(i, &mut sink)?;
    }
    reader.finish()
}

/// Reads a bundle front to back: the manifest, then each attachment into a
/// writer of the caller's choosing, then the signature.
pub struct BundleReader<'a, R: Read> {
    input: Hashing<&'a mut R>,
    pub manifest: BundleManifest,
    next: usize,
}

impl<'a, R: Read> BundleReader<'a, R> {
    pub fn open(input: &'a mut R, len: u64) -> Result<Self, BundleError> {
        let mut input = Hashing::new(input);
        let mut fixed = [0u8; 12];
        input
            .read_exact(&mut fixed)
            .map_err(|_| BundleError::NotABundle)?;
        if &fixed[..4] != MAGIC {
            return Err(BundleError::NotABundle);
        }
        let manifest_len = u64::from_be_bytes(fixed[4..12].try_into().expect("8 bytes"));
        if manifest_len > MAX_MANIFEST || 12 + manifest_len + SIGNATURE_LEN as u64 > len {
            return Err(BundleError::Damaged(format!(
                "its manifest claims {manifest_len} bytes of a {len}-byte file"
            )));
        }
        let mut json = vec![0u8; manifest_len as usize];
        input
            .read_exact(&mut json)
            .map_err(|_| BundleError::Damaged("it ends inside the manifest".into()))?;
        let manifest: BundleManifest = serde_json::from_slice(&json)
            .map_err(|e| BundleError::Damaged(format!("its manifest does not parse: {e}")))?;
        // Checked: attachment sizes come from the file, and their sum may
        // pass u64::MAX.
        let accounted = manifest
            .attachments
            .iter()
            .try_fold(12 + manifest_len + SIGNATURE_LEN as u64, |sum, a| {
                sum.checked_add(a.size)
            });
        if accounted != Some(len) {
            return Err(BundleError::Damaged(match accounted {
                Some(n) => format!("it is {len} bytes, its manifest accounts for {n}"),
                None => format!("it is {len} bytes, its manifest's attachment sizes pass 2^64"),
            }));
        }
        Ok(Self {
            input,
            manifest,
            next: 0,
        })
    }

    /// Copies attachment `index` (they come in order) to `out`, checking
    /// it against its blob id. On an error `out` holds unchecked bytes.
    pub fn copy_attachment<W: Write>(
        &mut self,
        index: usize,
        out: &mut W,
    ) -> Result<(), BundleError> {
        if index != self.next {
            return Err(BundleError::Damaged(
                "attachments must be read in order".into(),
            ));
        }
        let attachment = self
            .manifest
            .attachments
            .get(index)
            .cloned()
            .ok_or_else(|| BundleError::Damaged(format!("it has no attachment {index}")))?;
        let mut blob_hash = Context::new(&SHA256);
        let mut left = attachment.size;
        let mut buf = vec![0u8; 256 * 1024];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            self.input
                .read_exact(&mut buf[..n])
                .map_err(|_| BundleError::Damaged("it ends inside an attachment".into()))?;
            blob_hash.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        if hex::encode(blob_hash.finish()) != attachment.blob {
            return Err(BundleError::BlobMismatch {
                blob: attachment.blob,
            });
        }
        self.next += 1;
        Ok(())
    }

    /// Reads the signature and checks it; call after every attachment.
    pub fn finish(self) -> Result<BundleManifest, BundleError> {
        if self.next != self.manifest.attachments.len() {
            return Err(BundleError::Damaged("not every attachment was read".into()));
        }
        let digest = self.input.digest();
        let mut signature = [0u8; SIGNATURE_LEN];
        self.input
            .inner
            .read_exact(&mut signature)
            .map_err(|_| BundleError::Damaged("it ends before its signature".into()))?;
        let key = hex::decode(&self.manifest.public_key)
            .ok()
            .and_then(|k| PublicKey::from_bytes(&k).ok())
            .ok_or_else(|| BundleError::Damaged("its public key is malformed".into()))?;
        if key.device_id() != self.manifest.device {
            return Err(BundleError::BadSignature);
        }
        let signature = Signature::from_bytes(&signature).map_err(|_| BundleError::BadSignature)?;
        key.verify(Domain::Bundle, digest.as_ref(), &signature)
            .map_err(|_| BundleError::BadSignature)?;
        Ok(self.manifest)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn sample(key: &DeviceKey, blobs: &[Vec<u8>]) -> (BundleManifest, Vec<u8>) {
        let manifest = BundleManifest {
            version: 1,
            device: key.device_id(),
            public_key: hex::encode(key.public_key().as_bytes()),
            case_id: CaseId::random().unwrap(),
            case_name: "almaty".into(),
            created_at: "2016-05-22T09:00:00+06:00".into(),
            docs: vec![BundleDoc {
                id: ReportId::random().unwrap(),
                changes: vec![SignedChange {
                    bytes: vec![1, 2, 3],
                    signature: vec![4; 64],
                }],
            }],
            attachments: blobs
                .iter()
                .map(|b| BundleAttachment {
                    blob: hex::encode(ring::digest::digest(&SHA256, b)),
                    report: ReportId::random().unwrap(),
                    attachment_id: "a".into(),
                    size: b.len() as u64,
                })
                .collect(),
        };
        let mut out = Vec::new();
        let owned: Vec<Vec<u8>> = blobs.to_vec();
        let mut i = 0;
        write(
            key,
            &manifest,
            &mut |_| {
                i += 1;
                Ok(Box::new(Cursor::new(owned[i - 1].clone())))
            },
            &mut out,
        )
        .unwrap();
        (manifest, out)
    }

    /// Found by fuzzing: attachment sizes whose sum passes u64::MAX
    /// overflowed the length check.
    #[test]
    fn attachment_sizes_past_u64_max_are_damage_not_an_overflow() {
        let key = DeviceKey::generate().unwrap();
        let (mut manifest, _) = sample(&key, &[vec![1], vec![2]]);
        for attachment in &mut manifest.attachments {
            attachment.size = u64::MAX;
        }
        let json = serde_json::to_vec(&manifest).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(json.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(&[0; SIGNATURE_LEN]);
        let len = bytes.len() as u64;
        let err = verify(&mut Cursor::new(bytes), len).unwrap_err();
        assert!(err.to_string().contains("2^64"), "{err}");
    }

    #[test]
    fn a_bundle_verifies_and_yields_its_attachments_exactly() {
        let key = DeviceKey::generate().unwrap();
        let blobs = vec![vec![7u8; 300_000], b"short".to_vec()];
        let (manifest, bytes) = sample(&key, &blobs);
        let mut input = Cursor::new(&bytes);
        assert_eq!(verify(&mut input, bytes.len() as u64).unwrap(), manifest);
        let mut input = Cursor::new(&bytes);
        let mut reader = BundleReader::open(&mut input, bytes.len() as u64).unwrap();
        for (i, blob) in blobs.iter().enumerate() {
            let mut out = Vec::new();
            reader.copy_attachment(i, &mut out).unwrap();
            assert_eq!(&out, blob);
        }
        reader.finish().unwrap();
    }

    #[test]
    fn any_altered_byte_or_a_cut_bundle_is_refused() {
        let key = DeviceKey::generate().unwrap();
        let (_, bytes) = sample(&key, &[vec![9u8; 1000]]);
        for at in [0, 5, 13, 40, bytes.len() - 500, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            let result = verify(&mut Cursor::new(&bad), bad.len() as u64);
            assert!(result.is_err(), "a flip at byte {at} was accepted");
        }
        let cut = &bytes[..bytes.len() - 10];
        assert!(verify(&mut Cursor::new(cut), cut.len() as u64).is_err());
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"extra");
        assert!(verify(&mut Cursor::new(&longer), longer.len() as u64).is_err());
    }

    #[test]
    fn a_bundle_re_signed_by_another_key_under_the_same_name_is_refused() {
        let key = DeviceKey::generate().unwrap();
        let impostor = DeviceKey::generate().unwrap();
        let (mut manifest, _) = sample(&key, &[]);
        // Claims to be `key`'s device but carries the impostor's key.
        manifest.public_key = hex::encode(impostor.public_key().as_bytes());
        let mut out = Vec::new();
        write(&impostor, &manifest, &mut |_| unreachable!(), &mut out).unwrap();
        assert!(matches!(
            verify(&mut Cursor::new(&out), out.len() as u64),
            Err(BundleError::BadSignature)
        ));
    }
}
