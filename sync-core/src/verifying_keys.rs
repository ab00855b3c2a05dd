//! Public keys made ready to check many signatures: a sync round checks
//! every change it carries, nearly all of them under one or two keys.
//!
//! ring decodes the key's point again for every signature. ed25519-dalek
//! decodes it once and checks at about 1.5 times ring's rate on the
//! machines this was measured on (BENCHMARKS.md). Both check the same
//! cofactorless equation, `[S]B = R + [k]A` with `k = SHA-512(R ‖ A ‖ M)`:
//! S is refused unless it is below the group order, and R is compared, as
//! bytes, with the encoding of the point computed.
//!
//! So for a key whose 32 bytes are the canonical encoding of its point the
//! two accept exactly the same signatures. For any other key (a y of p or
//! more, an x of zero with its sign bit set) their decoders could differ,
//! and such a key is checked by ring, as every device checks it. A server
//! that accepted a signature the devices refuse would store a change that
//! every device then refuses on absorb, so the tests below hold the two to
//! the same answers on the edge cases that separate Ed25519 verifiers:
//! small-order and mixed-order keys and nonces, non-canonical encodings,
//! scalars at and past the group order.
//!
//! This module knows nothing of changes or requests: it checks a signature
//! over bytes under a key.

use std::collections::HashMap;

use ed25519_dalek::Verifier;

use crate::identity::{Domain, IdentityError, PublicKey, Signature};

/// Keys prepared beyond which further keys are checked without being kept:
/// an honest request names a device and perhaps a few web sessions; a
/// hostile one naming thousands must not grow this without bound.
const MAX_PREPARED: usize = 64;

/// The keys one caller has checked signatures under, each decoded once.
/// Not shared between threads: each verifying thread keeps its own.
#[derive(Default)]
pub struct VerifyingKeys {
    prepared: HashMap<PublicKey, Option<ed25519_dalek::VerifyingKey>>,
}

impl VerifyingKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `signature` over `message` in `domain` under `key`: the same
    /// answer as [`PublicKey::verify`].
    pub fn verify(
        &mut self,
        key: &PublicKey,
        domain: Domain,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), IdentityError> {
        if self.check(key, &domain.framed(message), signature.as_bytes()) {
            Ok(())
        } else {
            Err(IdentityError::BadSignature)
        }
    }

    fn check(&mut self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        let fast = match self.prepared.get(key) {
            Some(prepared) => *prepared,
            None => {
                let prepared = prepare(key);
                if self.prepared.len() < MAX_PREPARED {
                    self.prepared.insert(*key, prepared);
                }
                prepared
            }
        };
        match fast {
            Some(vk) => vk
                .verify(message, &ed25519_dalek::Signature::from_bytes(signature))
                .is_ok(),
            None => {
                ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.as_bytes())
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

/// The key decoded for ed25519-dalek, if its bytes are the canonical
/// encoding of a point on the curve; `None` leaves it to ring.
fn prepare(key: &PublicKey) -> Option<ed25519_dalek::VerifyingKey> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes()).ok()?;
    (vk.to_edwards().compress().as_bytes() == key.as_bytes()).then_some(vk)
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::Scalar;
    use ring::digest::{digest, SHA512};

    use super::*;
    use crate::identity::DeviceKey;

    /// The group order L, little-endian.
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    fn ring_accepts(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(message, signature)
            .is_ok()
    }

    /// Both verifiers on one case; panics, naming the case, if they differ.
    /// Returns whether they accept.
    fn agree(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        let by_ring = ring_accepts(key, message, signature);
        let mut keys = VerifyingKeys::new();
        let public = PublicKey::from_array(*key);
        let by_prepared = keys.check(&public, message, signature);
        assert_eq!(
            by_ring,
            by_prepared,
            "ring and the prepared key disagree on key {}, R {}, S {}",
            hex::encode(key),
            hex::encode(&signature[..32]),
            hex::encode(&signature[32..]),
        );
        // A second check under the key as kept answers the same.
        assert_eq!(keys.check(&public, message, signature), by_prepared);
        by_ring
    }

    /// Deterministic bytes for case `n`, so a failure names a case that
    /// comes back on the next run.
    fn bytes32(label: &str, n: u64) -> [u8; 32] {
        let mut input = label.as_bytes().to_vec();
        input.extend_from_slice(&n.to_le_bytes());
        digest(&SHA512, &input).as_ref()[..32].try_into().unwrap()
    }

    fn scalar(label: &str, n: u64) -> Scalar {
        Scalar::from_bytes_mod_order(bytes32(label, n))
    }

    /// `k = SHA-512(R ‖ A ‖ M) mod L`, as both verifiers compute it.
    fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
        let mut input = Vec::with_capacity(64 + message.len());
        input.extend_from_slice(r);
        input.extend_from_slice(a);
        input.extend_from_slice(message);
        let wide: [u8; 64] = digest(&SHA512, &input).as_ref().try_into().unwrap();
        Scalar::from_bytes_mod_order_wide(&wide)
    }

    fn signature(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(r);
        sig[32..].copy_from_slice(s);
        sig
    }

    /// `bytes` plus `add`, little-endian, wrapping at 2^256.
    fn add_le(bytes: &[u8; 32], add: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = bytes[i] as u16 + add[i] as u16 + carry;
            out[i] = sum as u8;
            carry = sum >> 8;
        }
        out
    }

    /// Encodings of y with the sign bit `sign`, for y and y + p where y + p
    /// still fits in 255 bits: the non-canonical twins of the small y's.
    fn small_y_encodings() -> Vec<[u8; 32]> {
        // p = 2^255 - 19
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut out = Vec::new();
        for y in 0u8..19 {
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            let twin = add_le(&canonical, &p);
            for mut encoding in [canonical, twin] {
                out.push(encoding);
                encoding[31] |= 0x80;
                out.push(encoding);
            }
        }
        // y = p - 1 (that is, -1), whose x is zero, with the sign bit set.
        let mut minus_one = p;
        minus_one[0] -= 1;
        out.push(minus_one);
        minus_one[31] |= 0x80;
        out.push(minus_one);
        out
    }

    #[test]
    fn honest_signatures_verify_and_altered_ones_do_not_under_either() {
        let key = DeviceKey::generate().unwrap();
        let public = *key.public_key().as_bytes();
        for n in 0..32u64 {
            let message = bytes32("message", n);
            let sig = *key.sign(Domain::Change, &message).as_bytes();
            let framed = Domain::Change.framed(&message);
            assert!(agree(&public, &framed, &sig));
            let mut flipped = sig;
            flipped[(n as usize * 7) % 64] ^= 1 << (n % 8);
            assert!(!agree(&public, &framed, &flipped));
            assert!(!agree(&public, &Domain::Request.framed(&message), &sig));
            // S + L: the same S modulo L, not canonical; both refuse it.
            let s: [u8; 32] = sig[32..].try_into().unwrap();
            let stretched = signature(sig[..32].try_into().unwrap(), &add_le(&s, &ORDER));
            assert!(!agree(&public, &framed, &stretched));
        }
    }

    #[test]
    fn verify_answers_as_the_public_key_does() {
        let key = DeviceKey::generate().unwrap();
        let sig = key.sign(Domain::Change, b"hash");
        let mut keys = VerifyingKeys::new();
        let public = key.public_key();
        for (domain, message) in [
            (Domain::Change, &b"hash"[..]),
            (Domain::Request, b"hash"),
            (Domain::Change, b"hasH"),
        ] {
            assert_eq!(
                keys.verify(&public, domain, message, &sig),
                public.verify(domain, message, &sig)
            );
        }
    }

    /// Small-order keys and nonces, where cofactorless and cofactored
    /// verifiers part: a signature with S = 0 under a small-order key
    /// verifies exactly when R is the encoding of -[k]A, which happens for
    /// about one message in eight. Both verifiers must take the same ones.
    #[test]
    fn small_order_keys_and_nonces_get_the_same_answers() {
        let mut accepted = 0;
        let nonces: Vec<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|t| t.compress().to_bytes())
            .chain(small_y_encodings())
            .collect();
        let keys: Vec<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|t| t.compress().to_bytes())
            .chain(small_y_encodings())
            .collect();
        let zero = [0u8; 32];
        let mut one = [0u8; 32];
        one[0] = 1;
        for (i, key) in keys.iter().enumerate() {
            for (j, r) in nonces.iter().enumerate() {
                for m in 0..2u64 {
                    let message = bytes32("small order", (i * 1000 + j * 10) as u64 + m);
                    for s in [zero, one, ORDER] {
                        if agree(key, &message, &signature(r, &s)) {
                            accepted += 1;
                        }
                    }
                }
            }
        }
        assert!(
            accepted > 0,
            "no case verified, so the cases test refusals only"
        );
    }

    /// Keys that are an honest point plus a small-order one: a signature
    /// made with the honest part verifies cofactorless only when [k]T is
    /// the identity. Both verifiers must take the same ones.
    #[test]
    fn mixed_order_keys_get_the_same_answers() {
        let mut accepted = 0;
        let mut refused = 0;
        for n in 0..64u64 {
            let a = scalar("secret", n);
            let torsion = EIGHT_TORSION[(n % 8) as usize];
            let point: EdwardsPoint = a * ED25519_BASEPOINT_POINT + torsion;
            let key = point.compress().to_bytes();
            let nonce = scalar("nonce", n);
            let r = (nonce * ED25519_BASEPOINT_POINT).compress().to_bytes();
            let message = bytes32("mixed", n);
            let k = challenge(&r, &key, &message);
            let s = (nonce + k * a).to_bytes();
            if agree(&key, &message, &signature(&r, &s)) {
                accepted += 1;
            } else {
                refused += 1;
            }
            // The nonce shifted by the same torsion: verifies when [k-1]T is
            // the identity instead.
            let shifted = (nonce * ED25519_BASEPOINT_POINT + torsion)
                .compress()
                .to_bytes();
            let k = challenge(&shifted, &key, &message);
            let s = (nonce + k * a).to_bytes();
            agree(&key, &message, &signature(&shifted, &s));
        }
        assert!(
            accepted > 0 && refused > 0,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn random_keys_nonces_and_scalars_get_the_same_answers() {
        let honest = DeviceKey::generate().unwrap();
        let honest_sig = *honest.sign(Domain::Change, b"m").as_bytes();
        for n in 0..300u64 {
            let key = if n % 3 == 0 {
                *honest.public_key().as_bytes()
            } else {
                bytes32("key", n)
            };
            let r = if n % 5 == 0 {
                honest_sig[..32].try_into().unwrap()
            } else {
                bytes32("r", n)
            };
            let mut s = bytes32("s", n);
            if n % 2 == 0 {
                s[31] &= 0x0f; // below L, so the equation itself decides
            }
            agree(&key, b"m", &signature(&r, &s));
        }
    }

    #[test]
    fn only_canonical_encodings_are_prepared() {
        for t in EIGHT_TORSION {
            let canonical = PublicKey::from_array(t.compress().to_bytes());
            assert!(prepare(&canonical).is_some());
        }
        let mut non_canonical = 0;
        for encoding in small_y_encodings() {
            let decoded = CompressedEdwardsY(encoding).decompress();
            let canonical = decoded.is_some_and(|p| p.compress().to_bytes() == encoding);
            assert_eq!(
                prepare(&PublicKey::from_array(encoding)).is_some(),
                canonical,
                "{}",
                hex::encode(encoding)
            );
            if decoded.is_some() && !canonical {
                non_canonical += 1;
            }
        }
        assert!(non_canonical > 0, "no non-canonical encoding decoded");
    }

    #[test]
    fn a_request_naming_many_keys_keeps_a_bounded_number() {
        let mut keys = VerifyingKeys::new();
        for n in 0..200u64 {
            let key = DeviceKey::generate().unwrap();
            let message = bytes32("many", n);
            let sig = key.sign(Domain::Change, &message);
            assert_eq!(
                keys.verify(&key.public_key(), Domain::Change, &message, &sig),
                Ok(())
            );
        }
        assert_eq!(keys.prepared.len(), MAX_PREPARED);
    }
}
