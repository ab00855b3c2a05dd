//! How a case public key travels from a coordinator's device to reporters'
//! devices through a server they need not trust.
//!
//! A coordinator's device publishes each epoch's public key signed by its
//! device key ([`PublishedCaseKey`], signature domain
//! `"fieldsync case-key v2\0"` over `case id (32 ASCII hex) ‖ epoch (4,
//! BE) ‖ public key (32)`). The server hands the case's published keys to
//! devices at enrollment and on sync. A reporter's device decides which
//! to take with [`decide`]:
//!
//! - Its first key is the one whose fingerprint the invite carried (given
//!   to the reporter in person; `device enroll --case-key-fingerprint`). No
//!   key with that fingerprint: nothing is taken. Without a fingerprint the
//!   device takes what the server offers *on trust*, and says so.
//! - Later epochs (rotation) are taken only if signed by a device that
//!   signed a key it already trusts. A different key for an epoch it holds
//!   is refused as a substitution.
//!
//! The signature binds the key to its case and epoch; it cannot say that
//! the signer is a coordinator, since the server decides who is one. The
//! fingerprint is what makes the first key the coordinator's.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::case_key::CasePublicKey;
use crate::identity::{DeviceKey, Domain, PublicKey, Signature};
use crate::ids::CaseId;

/// A case public key as published: what the server stores and serves.
/// Byte strings in lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedCaseKey {
    pub epoch: u32,
    /// The X25519 public key, 64 hex characters.
    pub public_key: String,
    /// The Ed25519 key of the device that signed it, 64 hex characters.
    pub signer: String,
    /// Ed25519 signature, 128 hex characters (see the module doc).
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishedKeyError {
    #[error("the published case key of epoch {0} is not well-formed hex of the right lengths")]
    Malformed(u32),
    #[error("the signature on the case key of epoch {0} does not verify")]
    BadSignature(u32),
}

/// A published key whose signature verified for its case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCaseKey {
    pub key: CasePublicKey,
    pub signer: PublicKey,
    pub signature: Signature,
}

impl VerifiedCaseKey {
    pub fn published(&self) -> PublishedCaseKey {
        PublishedCaseKey {
            epoch: self.key.epoch,
            public_key: hex::encode(self.key.bytes()),
            signer: hex::encode(self.signer.as_bytes()),
            signature: hex::encode(self.signature.as_bytes()),
        }
    }
}

/// The bytes a case key signature covers (after the domain tag).
fn signed_message(case: &CaseId, key: &CasePublicKey) -> Vec<u8> {
    let mut message = Vec::with_capacity(32 + 4 + 32);
    message.extend_from_slice(case.as_str().as_bytes());
    message.extend_from_slice(&key.epoch.to_be_bytes());
    message.extend_from_slice(key.bytes());
    message
}

impl PublishedCaseKey {
    /// Signs `key` of `case` with this device's key.
    pub fn sign(device: &DeviceKey, case: &CaseId, key: &CasePublicKey) -> Self {
        let signature = device.sign(Domain::CaseKey, &signed_message(case, key));
        VerifiedCaseKey {
            key: *key,
            signer: device.public_key(),
            signature,
        }
        .published()
    }

    /// Checks the signature for `case`.
    pub fn verify(&self, case: &CaseId) -> Result<VerifiedCaseKey, PublishedKeyError> {
        let malformed = || PublishedKeyError::Malformed(self.epoch);
        let public: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(malformed)?;
        let signer = hex::decode(&self.signer)
            .ok()
            .and_then(|b| PublicKey::from_bytes(&b).ok())
            .ok_or_else(malformed)?;
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_bytes(&b).ok())
            .ok_or_else(malformed)?;
        let key = CasePublicKey::from_bytes(self.epoch, public);
        signer
            .verify(Domain::CaseKey, &signed_message(case, &key), &signature)
            .map_err(|_| PublishedKeyError::BadSignature(self.epoch))?;
        Ok(VerifiedCaseKey {
            key,
            signer,
            signature,
        })
    }
}

/// Why a device did not take an offered key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRefusal {
    /// The signature does not verify (or the record is malformed).
    BadSignature,
    /// The device waits for the key its invite's fingerprint names, and
    /// this is not it.
    NotTheFingerprint,
    /// Signed by a device that signed no key this device trusts.
    UntrustedSigner,
    /// A different key for an epoch this device already trusts.
    Substituted,
}

/// An offered key that was not taken, for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefusedCaseKey {
    pub epoch: u32,
    /// The fingerprint of the offered key (empty if malformed).
    pub fingerprint: String,
    pub reason: KeyRefusal,
}

impl RefusedCaseKey {
    /// What the user is told.
    pub fn message(&self) -> String {
        let what = format!(
            "case key epoch {} (fingerprint {})",
            self.epoch, self.fingerprint
        );
        match self.reason {
            KeyRefusal::BadSignature => format!("refused {what}: its signature does not verify; the server or the network altered it"),
            KeyRefusal::NotTheFingerprint => format!("refused {what}: it is not the key whose fingerprint your invite gives. The server may be substituting its own key; do not attach anything until your coordinator confirms the fingerprint"),
            KeyRefusal::UntrustedSigner => format!("refused {what}: it is signed by a device that signed no key this device trusts. The server may be substituting its own key; ask your coordinator whether they rotated the key and from which device"),
            KeyRefusal::Substituted => format!("refused {what}: this device already trusts a different key for that epoch. The server is substituting a key; tell your coordinator"),
        }
    }
}

/// What [`decide`] concluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustDecision {
    /// Keys to add to the trusted set.
    pub accepted: Vec<VerifiedCaseKey>,
    pub refused: Vec<RefusedCaseKey>,
    /// The accepted keys were taken without a fingerprint to check them.
    pub on_trust: bool,
}

/// Decides which of the `offered` keys of `case` a device that trusts
/// `trusted` (and, while it trusts none, waits for the key with
/// fingerprint `pin`) takes. See the module doc for the rules.
pub fn decide(
    case: &CaseId,
    trusted: &[VerifiedCaseKey],
    pin: Option<&str>,
    offered: &[PublishedCaseKey],
) -> TrustDecision {
    let mut decision = TrustDecision::default();
    let mut verified = Vec::new();
    for key in offered {
        match key.verify(case) {
            Ok(v) => verified.push(v),
            Err(_) => decision.refused.push(RefusedCaseKey {
                epoch: key.epoch,
                fingerprint: fingerprint_of(key),
                reason: KeyRefusal::BadSignature,
            }),
        }
    }
    verified.sort_by_key(|v| v.key.epoch);
    verified.dedup_by(|a, b| a == b);

    let mut held: Vec<VerifiedCaseKey> = trusted.to_vec();
    if held.is_empty() {
        match pin {
            Some(pin) => match verified.iter().find(|v| v.key.fingerprint() == pin.trim()) {
                Some(root) => {
                    held.push(root.clone());
                    decision.accepted.push(root.clone());
                }
                None => {
                    for v in verified {
                        decision.refused.push(RefusedCaseKey {
                            epoch: v.key.epoch,
                            fingerprint: v.key.fingerprint(),
                            reason: KeyRefusal::NotTheFingerprint,
                        });
                    }
                    return decision;
                }
            },
            None => {
                // Nothing to check against: the server's word, said as such.
                decision.on_trust = !verified.is_empty();
                let mut by_epoch: Vec<VerifiedCaseKey> = Vec::new();
                for v in verified {
                    if by_epoch.iter().any(|h| h.key.epoch == v.key.epoch) {
                        decision.refused.push(RefusedCaseKey {
                            epoch: v.key.epoch,
                            fingerprint: v.key.fingerprint(),
                            reason: KeyRefusal::Substituted,
                        });
                    } else {
                        by_epoch.push(v);
                    }
                }
                decision.accepted = by_epoch;
                return decision;
            }
        }
    }
    let signers: BTreeSet<PublicKey> = held.iter().map(|h| h.signer).collect();
    for v in verified {
        if let Some(h) = held.iter().find(|h| h.key.epoch == v.key.epoch) {
            if h.key != v.key {
                decision.refused.push(RefusedCaseKey {
                    epoch: v.key.epoch,
                    fingerprint: v.key.fingerprint(),
                    reason: KeyRefusal::Substituted,
                });
            }
            continue;
        }
        if signers.contains(&v.signer) {
            held.push(v.clone());
            decision.accepted.push(v);
        } else {
            decision.refused.push(RefusedCaseKey {
                epoch: v.key.epoch,
                fingerprint: v.key.fingerprint(),
                reason: KeyRefusal::UntrustedSigner,
            });
        }
    }
    decision
}

fn fingerprint_of(key: &PublishedCaseKey) -> String {
    hex::decode(&key.public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|b| CasePublicKey::from_bytes(key.epoch, b).fingerprint())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case_key::CasePrivateKey;

    fn case() -> CaseId {
        "00112233445566778899aabbccddeeff".parse().unwrap()
    }

    fn publish(device: &DeviceKey, epoch: u32) -> PublishedCaseKey {
        let key = CasePrivateKey::generate(epoch).unwrap().public();
        PublishedCaseKey::sign(device, &case(), &key)
    }

    fn fingerprint(p: &PublishedCaseKey) -> String {
        p.verify(&case()).unwrap().key.fingerprint()
    }

    #[test]
    fn a_signature_binds_the_key_to_its_case_and_epoch() {
        let coordinator = DeviceKey::generate().unwrap();
        let published = publish(&coordinator, 1);
        assert!(published.verify(&case()).is_ok());
        let other_case: CaseId = "ffeeddccbbaa99887766554433221100".parse().unwrap();
        assert_eq!(
            published.verify(&other_case).unwrap_err(),
            PublishedKeyError::BadSignature(1)
        );
        let mut other_epoch = published.clone();
        other_epoch.epoch = 2;
        assert!(other_epoch.verify(&case()).is_err());
        let mut garbage = published;
        garbage.public_key = "zz".into();
        assert_eq!(
            garbage.verify(&case()).unwrap_err(),
            PublishedKeyError::Malformed(1)
        );
    }

    #[test]
    fn the_invites_fingerprint_picks_the_first_key_and_a_substitute_is_refused() {
        let coordinator = DeviceKey::generate().unwrap();
        let server = DeviceKey::generate().unwrap();
        let real = publish(&coordinator, 1);
        let fake = publish(&server, 1);
        // The server offers only its own key: nothing taken.
        let d = decide(
            &case(),
            &[],
            Some(&fingerprint(&real)),
            std::slice::from_ref(&fake),
        );
        assert!(d.accepted.is_empty());
        assert_eq!(d.refused[0].reason, KeyRefusal::NotTheFingerprint);
        // The real one among others: only it.
        let d = decide(
            &case(),
            &[],
            Some(&fingerprint(&real)),
            &[fake, real.clone()],
        );
        assert_eq!(d.accepted.len(), 1);
        assert_eq!(d.accepted[0].published(), real);
        assert!(!d.on_trust);
    }

    #[test]
    fn a_rotation_is_taken_only_from_a_signer_already_trusted() {
        let coordinator = DeviceKey::generate().unwrap();
        let server = DeviceKey::generate().unwrap();
        let first = publish(&coordinator, 1).verify(&case()).unwrap();
        let rotated = publish(&coordinator, 2);
        let forged = publish(&server, 3);
        let substitute = publish(&server, 1);
        let d = decide(
            &case(),
            std::slice::from_ref(&first),
            None,
            &[first.published(), rotated.clone(), forged, substitute],
        );
        assert_eq!(
            d.accepted
                .iter()
                .map(VerifiedCaseKey::published)
                .collect::<Vec<_>>(),
            vec![rotated]
        );
        let reasons: Vec<_> = d.refused.iter().map(|r| (r.epoch, &r.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (1, &KeyRefusal::Substituted),
                (3, &KeyRefusal::UntrustedSigner)
            ]
        );
    }

    #[test]
    fn without_a_fingerprint_the_first_keys_are_taken_on_trust_and_said_so() {
        let coordinator = DeviceKey::generate().unwrap();
        let d = decide(&case(), &[], None, &[publish(&coordinator, 1)]);
        assert_eq!(d.accepted.len(), 1);
        assert!(d.on_trust);
        let mut bad = publish(&coordinator, 2);
        bad.signature = hex::encode([0u8; 64]);
        let d = decide(&case(), &[], None, &[bad]);
        assert!(d.accepted.is_empty());
        assert!(!d.on_trust);
        assert_eq!(d.refused[0].reason, KeyRefusal::BadSignature);
    }
}
