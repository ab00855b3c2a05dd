//! Device identity: an Ed25519 key pair made on the device, and the
//! signatures it puts on changes and requests.
//!
//! The public key doubles as the device's Automerge actor id, so every change
//! names its author, and the signature beside the change proves it.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use crate::ids::DeviceId;

/// Length of an Ed25519 public key, and so of every fieldsync actor id.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("could not generate a device key: the system random number generator failed")]
    KeyGeneration,
    #[error("the stored device key is not a valid Ed25519 PKCS#8 key; the device home is damaged")]
    BadPrivateKey,
    #[error("a public key must be {PUBLIC_KEY_LEN} bytes, got {0}")]
    BadPublicKeyLength(usize),
    #[error("a signature must be {SIGNATURE_LEN} bytes, got {0}")]
    BadSignatureLength(usize),
    #[error("the signature does not verify against the author's public key")]
    BadSignature,
}

/// A device's private key. Never leaves the device.
pub struct DeviceKey {
    pkcs8: Vec<u8>,
    pair: Ed25519KeyPair,
}

impl DeviceKey {
    /// Makes a new key pair from the system's secure random source.
    pub fn generate() -> Result<Self, IdentityError> {
        let rng = SystemRandom::new();
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| IdentityError::KeyGeneration)?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| IdentityError::BadPrivateKey)?;
        Ok(Self {
            pkcs8: pkcs8.to_vec(),
            pair,
        })
    }

    /// The PKCS#8 document, for storing in the device replica.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_key(&self) -> PublicKey {
        let mut key = [0u8; PUBLIC_KEY_LEN];
        key.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(key)
    }

    pub fn device_id(&self) -> DeviceId {
        self.public_key().device_id()
    }

    /// Signs `message` under a domain tag, so a signature made for one
    /// purpose (a change) can never be replayed as another (a request).
    pub fn sign(&self, domain: Domain, message: &[u8]) -> Signature {
        let sig = self.pair.sign(&domain.framed(message));
        let mut bytes = [0u8; SIGNATURE_LEN];
        bytes.copy_from_slice(sig.as_ref());
        Signature(bytes)
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey({})", self.device_id())
    }
}

/// What a signature is for. Part of the signed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// An Automerge change, signed over its hash.
    Change,
    /// An HTTP request to the server.
    Request,
    /// A bundle carried by hand.
    Bundle,
    /// A one-time web login link.
    WebLogin,
    /// A case public key a coordinator's device publishes.
    CaseKey,
}

impl Domain {
    pub fn tag(self) -> &'static [u8] {
        match self {
            Domain::Change => b"fieldsync change v1\0",
            Domain::Request => b"fieldsync request v1\0",
            Domain::Bundle => b"fieldsync bundle v1\0",
            Domain::WebLogin => b"fieldsync web-login v1\0",
            Domain::CaseKey => b"fieldsync case-key v2\0",
        }
    }

    pub(crate) fn framed(self, message: &[u8]) -> Vec<u8> {
        let mut framed = Vec::with_capacity(self.tag().len() + message.len());
        framed.extend_from_slice(self.tag());
        framed.extend_from_slice(message);
        framed
    }
}

/// A device's public key: its Automerge actor id and the root of its id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let key: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::BadPublicKeyLength(bytes.len()))?;
        Ok(Self(key))
    }

    pub fn from_array(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(&self.0)
    }

    pub fn actor_id(&self) -> automerge::ActorId {
        automerge::ActorId::from(&self.0[..])
    }

    pub fn verify(
        &self,
        domain: Domain,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), IdentityError> {
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(&domain.framed(message), &signature.0)
            .map_err(|_| IdentityError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let sig: [u8; SIGNATURE_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::BadSignatureLength(bytes.len()))?;
        Ok(Self(sig))
    }

    pub fn from_array(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_domain_message_and_key() {
        let key = DeviceKey::generate().unwrap();
        let other = DeviceKey::generate().unwrap();
        let sig = key.sign(Domain::Change, b"hash");
        let public = key.public_key();
        assert_eq!(public.verify(Domain::Change, b"hash", &sig), Ok(()));
        assert_eq!(
            public.verify(Domain::Request, b"hash", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            public.verify(Domain::Change, b"hasH", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            other.public_key().verify(Domain::Change, b"hash", &sig),
            Err(IdentityError::BadSignature)
        );
    }

    #[test]
    fn a_key_survives_its_pkcs8_round_trip() {
        let key = DeviceKey::generate().unwrap();
        let again = DeviceKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(key.device_id(), again.device_id());
        assert_eq!(
            DeviceKey::from_pkcs8(b"not a key").unwrap_err(),
            IdentityError::BadPrivateKey
        );
    }
}
