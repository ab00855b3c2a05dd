//! Web login: a coordinator's device lends a browser a short-lived key.
//!
//! `fieldsync web-login` makes a fresh Ed25519 *session key* and signs a
//! [`LoginCertificate`] with the device key: "this session key acts for me
//! until `session_until`". The link it prints carries the certificate, the
//! session key's seed and the case keys in its fragment, which browsers
//! never send to a server. The server sees only the certificate.
//!
//! Review edits made in the browser are ordinary Automerge changes whose
//! actor is the session key, never the device key: the device keeps making
//! changes offline, and two writers under one actor id would give Automerge
//! two different changes with the same sequence number. The change's
//! signature is the session key's, prefixed by the certificate
//! ([`delegated_signature`]), so every device and any later reader can check
//! offline that the device authorised the session, and attribute the change
//! to that device.
//!
//! Certificate, byte for byte (integers big-endian, 164 bytes):
//! `"FSW1" ‖ device public key (32) ‖ session public key (32) ‖
//! login_until (8, unix seconds) ‖ session_until (8) ‖ nonce (16) ‖
//! device signature (64)` over [`Domain::WebLogin`] and the 100 bytes before it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::identity::{
    DeviceKey, Domain, IdentityError, PublicKey, Signature, PUBLIC_KEY_LEN, SIGNATURE_LEN,
};

pub const CERT_MAGIC: &[u8; 4] = b"FSW1";
const SIGNED_LEN: usize = 4 + 32 + 32 + 8 + 8 + 16;
/// Length of an encoded certificate.
pub const CERT_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;
/// Length of a change signature made by a web session: certificate, then
/// the session key's signature over the change hash.
pub const DELEGATED_SIGNATURE_LEN: usize = CERT_LEN + SIGNATURE_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebLoginError {
    #[error("the login token is not valid base64url; copy the whole link")]
    Encoding,
    #[error("the login certificate has {0} bytes instead of {CERT_LEN}; the link is cut short")]
    Length(usize),
    #[error("this is not a fieldsync web-login certificate")]
    Magic,
    #[error("the login certificate's signature does not verify against its device")]
    BadSignature,
    #[error("the login certificate ends before it starts")]
    BadWindow,
    #[error("the session key's signature does not verify")]
    BadSessionSignature,
    #[error("could not generate a session key: the system random number generator failed")]
    Random,
}

impl From<IdentityError> for WebLoginError {
    fn from(_: IdentityError) -> Self {
        WebLoginError::BadSignature
    }
}

/// The private half of a web session key. Lives in the browser, handed over
/// in the login link; the device forgets it once the link is printed.
pub struct SessionKey {
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl SessionKey {
    pub fn generate() -> Result<Self, WebLoginError> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| WebLoginError::Random)?;
        Self::from_seed(seed)
    }

    pub fn from_seed(seed: [u8; 32]) -> Result<Self, WebLoginError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| WebLoginError::Random)?;
        Ok(Self { seed, pair })
    }

    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    pub fn public_key(&self) -> PublicKey {
        let mut key = [0u8; PUBLIC_KEY_LEN];
        key.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey::from_array(key)
    }

    /// Signs a change hash as the browser does with WebCrypto.
    pub fn sign_change(&self, hash: &[u8; 32]) -> Signature {
        let sig = self.pair.sign(&Domain::Change.framed(hash));
        let mut bytes = [0u8; SIGNATURE_LEN];
        bytes.copy_from_slice(sig.as_ref());
        Signature::from_array(bytes)
    }
}

/// "Session key `session` acts for device `device` until `session_until`",
/// signed by the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginCertificate {
    pub device: PublicKey,
    pub session: PublicKey,
    /// The link must be opened before this (unix seconds).
    pub login_until: u64,
    /// The session, and every change it signs, ends here (unix seconds).
    pub session_until: u64,
    /// Makes each certificate unique, so the server can refuse a second use.
    pub nonce: [u8; 16],
    signature: Signature,
}

impl LoginCertificate {
    /// Signs a certificate for `session` with the device key.
    pub fn issue(
        device: &DeviceKey,
        session: &PublicKey,
        login_until: u64,
        session_until: u64,
    ) -> Result<Self, WebLoginError> {
        if session_until < login_until {
            return Err(WebLoginError::BadWindow);
        }
        let mut nonce = [0u8; 16];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| WebLoginError::Random)?;
        let mut cert = Self {
            device: device.public_key(),
            session: *session,
            login_until,
            session_until,
            nonce,
            signature: Signature::from_array([0; SIGNATURE_LEN]),
        };
        cert.signature = device.sign(Domain::WebLogin, &cert.signed_bytes());
        Ok(cert)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNED_LEN);
        out.extend_from_slice(CERT_MAGIC);
        out.extend_from_slice(self.device.as_bytes());
        out.extend_from_slice(self.session.as_bytes());
        out.extend_from_slice(&self.login_until.to_be_bytes());
        out.extend_from_slice(&self.session_until.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        out.extend_from_slice(self.signature.as_bytes());
        out
    }

    /// The `t=` part of a login link.
    pub fn to_token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_bytes())
    }

    pub fn from_token(token: &str) -> Result<Self, WebLoginError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim().as_bytes())
            .map_err(|_| WebLoginError::Encoding)?;
        Self::parse(&bytes)
    }

    /// Parses and checks the device's signature. Whether the device is
    /// enrolled, unrevoked and a coordinator is for the caller to check.
    pub fn parse(bytes: &[u8]) -> Result<Self, WebLoginError> {
        if bytes.len() != CERT_LEN {
            return Err(WebLoginError::Length(bytes.len()));
        }
        if &bytes[..4] != CERT_MAGIC {
            return Err(WebLoginError::Magic);
        }
        let device = PublicKey::from_bytes(&bytes[4..36])?;
        let session = PublicKey::from_bytes(&bytes[36..68])?;
        let login_until = be_u64(&bytes[68..76]);
        let session_until = be_u64(&bytes[76..84]);
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&bytes[84..100]);
        let signature = Signature::from_bytes(&bytes[SIGNED_LEN..])?;
        if session_until < login_until {
            return Err(WebLoginError::BadWindow);
        }
        device
            .verify(Domain::WebLogin, &bytes[..SIGNED_LEN], &signature)
            .map_err(|_| WebLoginError::BadSignature)?;
        Ok(Self {
            device,
            session,
            login_until,
            session_until,
            nonce,
            signature,
        })
    }
}

/// The signature a web-session change carries: the certificate, then the
/// session key's signature over the change hash.
pub fn delegated_signature(cert: &LoginCertificate, session_signature: &Signature) -> Vec<u8> {
    let mut out = cert.to_bytes();
    out.extend_from_slice(session_signature.as_bytes());
    out
}

/// Checks a delegated signature of the change `hash` whose actor is
/// `actor`, made at `change_time` (unix seconds, the change's own
/// timestamp). Returns the device the session acted for.
pub fn verify_delegated(
    signature: &[u8],
    actor: &PublicKey,
    hash: &[u8; 32],
    change_time: i64,
) -> Result<LoginCertificate, WebLoginError> {
    if signature.len() != DELEGATED_SIGNATURE_LEN {
        return Err(WebLoginError::Length(signature.len()));
    }
    let cert = LoginCertificate::parse(&signature[..CERT_LEN])?;
    if &cert.session != actor {
        return Err(WebLoginError::BadSessionSignature);
    }
    // A change dated after the session ended was not made by the session
    // the device authorised.
    if change_time < 0 || change_time as u64 > cert.session_until {
        return Err(WebLoginError::BadWindow);
    }
    let session_signature = Signature::from_bytes(&signature[CERT_LEN..])?;
    actor
        .verify(Domain::Change, hash, &session_signature)
        .map_err(|_| WebLoginError::BadSessionSignature)?;
    Ok(cert)
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(device: &DeviceKey, session: &SessionKey) -> LoginCertificate {
        LoginCertificate::issue(device, &session.public_key(), 1_000, 50_000).unwrap()
    }

    #[test]
    fn a_certificate_round_trips_through_its_token() {
        let device = DeviceKey::generate().unwrap();
        let session = SessionKey::generate().unwrap();
        let c = cert(&device, &session);
        let token = c.to_token();
        assert_eq!(LoginCertificate::from_token(&token), Ok(c.clone()));
        assert_eq!(c.to_bytes().len(), CERT_LEN);
    }

    #[test]
    fn a_forged_or_cut_certificate_is_refused() {
        let device = DeviceKey::generate().unwrap();
        let session = SessionKey::generate().unwrap();
        let mut bytes = cert(&device, &session).to_bytes();
        assert_eq!(
            LoginCertificate::parse(&bytes[..100]),
            Err(WebLoginError::Length(100))
        );
        // Lengthen the session: the device never signed that.
        bytes[83] ^= 1;
        assert_eq!(
            LoginCertificate::parse(&bytes),
            Err(WebLoginError::BadSignature)
        );
        bytes[83] ^= 1;
        bytes[0] = b'X';
        assert_eq!(LoginCertificate::parse(&bytes), Err(WebLoginError::Magic));
        assert_eq!(
            LoginCertificate::from_token("not base64 !"),
            Err(WebLoginError::Encoding)
        );
    }

    #[test]
    fn a_delegated_signature_verifies_only_for_its_session_hash_and_window() {
        let device = DeviceKey::generate().unwrap();
        let session = SessionKey::generate().unwrap();
        let c = cert(&device, &session);
        let hash = [7u8; 32];
        let sig = delegated_signature(&c, &session.sign_change(&hash));
        let actor = session.public_key();
        let got = verify_delegated(&sig, &actor, &hash, 2_000).unwrap();
        assert_eq!(got.device, device.public_key());
        assert_eq!(
            verify_delegated(&sig, &actor, &[8u8; 32], 2_000),
            Err(WebLoginError::BadSessionSignature)
        );
        assert_eq!(
            verify_delegated(&sig, &device.public_key(), &hash, 2_000),
            Err(WebLoginError::BadSessionSignature)
        );
        assert_eq!(
            verify_delegated(&sig, &actor, &hash, 50_001),
            Err(WebLoginError::BadWindow)
        );
        // Another session's signature under this certificate.
        let other = SessionKey::generate().unwrap();
        let forged = delegated_signature(&c, &other.sign_change(&hash));
        assert_eq!(
            verify_delegated(&forged, &actor, &hash, 2_000),
            Err(WebLoginError::BadSessionSignature)
        );
    }
}
