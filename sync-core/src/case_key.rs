//! Case keys, made on a coordinator's device and handed to other devices in
//! person as share codes. The server never sees a private or symmetric one.
//!
//! Two kinds, told apart by the share code's version byte:
//! - version 1, [`CaseKey`]: the old 256-bit symmetric key every device of
//!   a case held. Still read, so attachments sealed with it stay readable.
//! - version 2, [`CasePrivateKey`]: an X25519 key pair. Attachments are
//!   sealed to its public key ([`CasePublicKey`], delivered to reporters by
//!   the server and checked against its [fingerprint](CasePublicKey::fingerprint)),
//!   so only coordinators, who hold the private key, can open them.
//!
//! Share code: base64url (no padding) of
//! `version (1 byte) ‖ epoch (4 bytes, big-endian) ‖ key (32) ‖ check (4)`,
//! where `check` is the first 4 bytes of SHA-256 of everything before it,
//! so a mistyped code is refused instead of silently making a wrong key.
//! `key` is the symmetric key (version 1) or the X25519 private key as RFC
//! 7748 encodes it (version 2).
//!
//! Fingerprint of a case public key: base64url (no padding) of the first 16
//! bytes of SHA-256(`"fieldsync case key v2\0" ‖ epoch (4, BE) ‖ public key`):
//! 22 characters, short enough to read out or print on an invite.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hpke::{Deserializable, Kem as _, Serializable};
use ring::rand::{SecureRandom, SystemRandom};

/// The HPKE KEM of envelope v2 and of case key pairs.
pub(crate) type CaseKem = hpke::kem::X25519HkdfSha256;

const V1: u8 = 1;
const V2: u8 = 2;
const CODE_LEN: usize = 1 + 4 + 32 + 4;
const FINGERPRINT_DOMAIN: &[u8] = b"fieldsync case key v2\0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CaseKeyError {
    #[error("the share code is not valid base64url; check for a mistyped character")]
    Encoding,
    #[error("the share code has {0} bytes instead of {CODE_LEN}; part of it is missing or extra")]
    Length(usize),
    #[error("the share code's checksum does not match: it was mistyped; ask for it again")]
    Checksum,
    #[error("the share code is of version {0}, which this build does not know; update fieldsync")]
    Version(u8),
    #[error("the share code is of version {found}, not the version {expected} expected here")]
    Kind { found: u8, expected: u8 },
    #[error("the system random number generator failed")]
    Random,
}

/// A version 1 (symmetric) case key with its epoch. Rotation makes a new
/// epoch; old epochs are kept to read old attachments.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseKey {
    pub epoch: u32,
    key: [u8; 32],
}

impl CaseKey {
    /// A fresh random key for `epoch`.
    pub fn generate(epoch: u32) -> Result<Self, CaseKeyError> {
        Ok(Self {
            epoch,
            key: random_32()?,
        })
    }

    pub fn from_bytes(epoch: u32, key: [u8; 32]) -> Self {
        Self { epoch, key }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    pub fn share_code(&self) -> String {
        encode_code(V1, self.epoch, &self.key)
    }

    /// Reads a version 1 code; a version 2 code is [`CaseKeyError::Kind`].
    pub fn from_share_code(code: &str) -> Result<Self, CaseKeyError> {
        match CaseSecret::from_share_code(code)? {
            CaseSecret::Symmetric(key) => Ok(key),
            CaseSecret::Private(_) => Err(CaseKeyError::Kind {
                found: V2,
                expected: V1,
            }),
        }
    }
}

impl fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaseKey(epoch {}, …)", self.epoch)
    }
}

/// A case's X25519 private key of one epoch (version 2). Only coordinators'
/// devices hold one.
#[derive(Clone, PartialEq, Eq)]
pub struct CasePrivateKey {
    pub epoch: u32,
    secret: [u8; 32],
}

impl CasePrivateKey {
    /// A fresh key pair for `epoch`. The scalar is stored clamped (RFC 7748
    /// `decodeScalar25519`), so every encoding of it is the same bytes.
    pub fn generate(epoch: u32) -> Result<Self, CaseKeyError> {
        let mut secret = random_32()?;
        secret[0] &= 248;
        secret[31] &= 127;
        secret[31] |= 64;
        Ok(Self { epoch, secret })
    }

    pub fn from_bytes(epoch: u32, secret: [u8; 32]) -> Self {
        Self { epoch, secret }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    pub fn public(&self) -> CasePublicKey {
        let public = CaseKem::sk_to_pk(&self.hpke());
        CasePublicKey {
            epoch: self.epoch,
            key: public.to_bytes().into(),
        }
    }

    pub fn share_code(&self) -> String {
        encode_code(V2, self.epoch, &self.secret)
    }

    pub(crate) fn hpke(&self) -> <CaseKem as hpke::Kem>::PrivateKey {
        <CaseKem as hpke::Kem>::PrivateKey::from_bytes(&self.secret)
            .expect("every 32 bytes are an X25519 private key")
    }
}

impl fmt::Debug for CasePrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CasePrivateKey(epoch {}, …)", self.epoch)
    }
}

/// A case's X25519 public key of one epoch: what reporters seal to.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CasePublicKey {
    pub epoch: u32,
    key: [u8; 32],
}

impl CasePublicKey {
    pub fn from_bytes(epoch: u32, key: [u8; 32]) -> Self {
        Self { epoch, key }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// What an invite carries so a reporter can check the key the server
    /// hands it (see the module doc).
    pub fn fingerprint(&self) -> String {
        let mut input = Vec::with_capacity(FINGERPRINT_DOMAIN.len() + 36);
        input.extend_from_slice(FINGERPRINT_DOMAIN);
        input.extend_from_slice(&self.epoch.to_be_bytes());
        input.extend_from_slice(&self.key);
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
    }

    pub(crate) fn hpke(&self) -> <CaseKem as hpke::Kem>::PublicKey {
        <CaseKem as hpke::Kem>::PublicKey::from_bytes(&self.key)
            .expect("every 32 bytes are an X25519 public key")
    }
}

impl fmt::Debug for CasePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CasePublicKey(epoch {}, {})",
            self.epoch,
            self.fingerprint()
        )
    }
}

/// Whatever opens a case's attachments of one epoch: a version 1 symmetric
/// key or a version 2 private key. A share code holds one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CaseSecret {
    Symmetric(CaseKey),
    Private(CasePrivateKey),
}

impl CaseSecret {
    pub fn epoch(&self) -> u32 {
        match self {
            CaseSecret::Symmetric(key) => key.epoch,
            CaseSecret::Private(key) => key.epoch,
        }
    }

    /// The share code's version: 1 symmetric, 2 private.
    pub fn version(&self) -> u8 {
        match self {
            CaseSecret::Symmetric(_) => V1,
            CaseSecret::Private(_) => V2,
        }
    }

    /// The key bytes, as the device stores them beside [`Self::version`].
    pub fn bytes(&self) -> &[u8; 32] {
        match self {
            CaseSecret::Symmetric(key) => key.bytes(),
            CaseSecret::Private(key) => key.bytes(),
        }
    }

    /// Rebuilds a stored key from its version, epoch and bytes.
    pub fn from_parts(version: u8, epoch: u32, bytes: [u8; 32]) -> Result<Self, CaseKeyError> {
        match version {
            V1 => Ok(CaseSecret::Symmetric(CaseKey::from_bytes(epoch, bytes))),
            V2 => Ok(CaseSecret::Private(CasePrivateKey::from_bytes(
                epoch, bytes,
            ))),
            other => Err(CaseKeyError::Version(other)),
        }
    }

    pub fn share_code(&self) -> String {
        encode_code(self.version(), self.epoch(), self.bytes())
    }

    pub fn from_share_code(code: &str) -> Result<Self, CaseKeyError> {
        let cleaned: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let raw = URL_SAFE_NO_PAD
            .decode(cleaned.as_bytes())
            .map_err(|_| CaseKeyError::Encoding)?;
        if raw.len() != CODE_LEN {
            return Err(CaseKeyError::Length(raw.len()));
        }
        let check = ring::digest::digest(&ring::digest::SHA256, &raw[..CODE_LEN - 4]);
        if check.as_ref()[..4] != raw[CODE_LEN - 4..] {
            return Err(CaseKeyError::Checksum);
        }
        let epoch = u32::from_be_bytes(raw[1..5].try_into().expect("4 bytes"));
        let key: [u8; 32] = raw[5..37].try_into().expect("32 bytes");
        Self::from_parts(raw[0], epoch, key)
    }
}

fn encode_code(version: u8, epoch: u32, key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(CODE_LEN);
    raw.push(version);
    raw.extend_from_slice(&epoch.to_be_bytes());
    raw.extend_from_slice(key);
    let check = ring::digest::digest(&ring::digest::SHA256, &raw);
    raw.extend_from_slice(&check.as_ref()[..4]);
    URL_SAFE_NO_PAD.encode(raw)
}

fn random_32() -> Result<[u8; 32], CaseKeyError> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| CaseKeyError::Random)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_code_round_trips_and_a_typo_is_refused() {
        let key = CaseKey::generate(3).unwrap();
        let code = key.share_code();
        assert_eq!(CaseKey::from_share_code(&code).unwrap(), key);
        // Spaces people add when reading a code aloud are fine.
        let spaced: String = code
            .chars()
            .enumerate()
            .flat_map(|(i, c)| if i % 6 == 5 { vec![c, ' '] } else { vec![c] })
            .collect();
        assert_eq!(CaseKey::from_share_code(&spaced).unwrap(), key);
        // Every single-character substitution is caught.
        for i in 0..code.len() {
            let mut typo: Vec<char> = code.chars().collect();
            typo[i] = if typo[i] == 'A' { 'B' } else { 'A' };
            let typo: String = typo.into_iter().collect();
            assert!(
                CaseKey::from_share_code(&typo).is_err(),
                "typo at {i} accepted"
            );
        }
        assert_eq!(
            CaseKey::from_share_code(&code[..20]).unwrap_err(),
            CaseKeyError::Length(15)
        );
        assert_eq!(
            CaseKey::from_share_code("not a code!").unwrap_err(),
            CaseKeyError::Encoding
        );
    }

    #[test]
    fn a_v2_code_carries_the_private_key_and_its_version_says_which_kind() {
        let private = CasePrivateKey::generate(4).unwrap();
        let code = private.share_code();
        assert_eq!(code.len(), CaseKey::generate(1).unwrap().share_code().len());
        assert_eq!(
            CaseSecret::from_share_code(&code).unwrap(),
            CaseSecret::Private(private.clone())
        );
        assert_eq!(
            CaseKey::from_share_code(&code).unwrap_err(),
            CaseKeyError::Kind {
                found: 2,
                expected: 1
            }
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&code).unwrap();
        raw[0] = 3;
        let check = ring::digest::digest(&ring::digest::SHA256, &raw[..37]);
        raw[37..].copy_from_slice(&check.as_ref()[..4]);
        assert_eq!(
            CaseSecret::from_share_code(&URL_SAFE_NO_PAD.encode(raw)).unwrap_err(),
            CaseKeyError::Version(3)
        );
    }

    #[test]
    fn the_public_key_and_fingerprint_follow_rfc_7748_and_the_documented_layout() {
        // RFC 7748 section 6.1, Alice's key pair.
        let secret: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        let public = CasePrivateKey::from_bytes(7, secret).public();
        assert_eq!(
            hex::encode(public.bytes()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        let mut input = b"fieldsync case key v2\0".to_vec();
        input.extend_from_slice(&[0, 0, 0, 7]);
        input.extend_from_slice(public.bytes());
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        assert_eq!(
            public.fingerprint(),
            URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
        );
        assert_eq!(public.fingerprint().len(), 22);
        let other_epoch = CasePublicKey::from_bytes(8, *public.bytes());
        assert_ne!(other_epoch.fingerprint(), public.fingerprint());
    }
}
