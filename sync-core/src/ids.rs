//! Identifiers that travel between devices and the server.
//!
//! Each is a newtype so a device id cannot be passed where a report id is
//! expected, and each is validated once, where it enters from outside.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Why an identifier from outside was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("{kind} must be {len} lowercase hexadecimal characters, got {got:?}")]
    Malformed {
        kind: &'static str,
        len: usize,
        got: String,
    },
    #[error("the system random number generator failed; the device cannot make new ids")]
    Random,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if s.len() == $len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::Malformed {
                        kind: $kind,
                        len: $len,
                        got: s.chars().take(80).collect(),
                    })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Hash and Eq are the inner string's, so a map keyed by an id can be
        // looked up with a `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        // Comparing with text, as `String` does: a view read from a
        // document checked against an id that arrived as text.
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

hex_id!(
    /// A report's id: 128 random bits, so that nobody can guess another
    /// report's id from one they hold.
    ReportId,
    32,
    "a report id"
);
hex_id!(
    /// A device's id: the first 128 bits of the SHA-256 of its public key.
    DeviceId,
    32,
    "a device id"
);
hex_id!(
    /// A case's id, assigned by the server when an operator creates the case.
    CaseId,
    32,
    "a case id"
);
hex_id!(
    /// An attachment blob's id: the SHA-256 of its ciphertext, so the server
    /// can check what it stores without being able to read it.
    BlobId,
    64,
    "a blob id (SHA-256 of the ciphertext)"
);

impl BlobId {
    /// The id of these bytes.
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            bytes,
        )))
    }

    /// The id of a SHA-256 digest computed as the bytes streamed.
    pub fn of_digest(digest: &ring::digest::Digest) -> BlobId {
        BlobId(hex::encode(digest.as_ref()))
    }

    /// The id of a SHA-256 digest computed elsewhere (a file hashed as it
    /// streams).
    pub fn from_sha256(digest: &[u8; 32]) -> BlobId {
        BlobId(hex::encode(digest))
    }
}

impl ReportId {
    /// A fresh random report id.
    pub fn random() -> Result<Self, IdError> {
        Ok(Self(random_hex()?))
    }

    /// A report id derived from content (for idempotent imports): the same
    /// input gives the same id, so importing twice does not duplicate.
    pub fn derived_from(parts: &[&[u8]]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"fieldsync report id v1");
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        Self(hex::encode(&ctx.finish().as_ref()[..16]))
    }
}

impl CaseId {
    /// A fresh random case id.
    pub fn random() -> Result<Self, IdError> {
        Ok(Self(random_hex()?))
    }
}

impl DeviceId {
    pub(crate) fn from_public_key(key: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, key);
        Self(hex::encode(&digest.as_ref()[..16]))
    }
}

fn random_hex() -> Result<String, IdError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IdError::Random)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_outside_are_validated() {
        assert!("0123456789abcdef0123456789abcdef"
            .parse::<ReportId>()
            .is_ok());
        for bad in [
            "",
            "xyz",
            "0123456789ABCDEF0123456789ABCDEF",
            "../../etc/passwd",
        ] {
            let err = bad.parse::<ReportId>().unwrap_err();
            assert!(err.to_string().contains("a report id"), "{err}");
        }
    }

    #[test]
    fn blob_ids_are_the_sha256_of_the_bytes() {
        let id = BlobId::of(b"");
        assert_eq!(
            id.as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(id.as_str().parse::<BlobId>(), Ok(id));
        let err = "0123456789abcdef0123456789abcdef"
            .parse::<BlobId>()
            .unwrap_err();
        assert!(err.to_string().contains("64 lowercase"), "{err}");
    }

    #[test]
    fn random_ids_differ_and_derived_ids_repeat() {
        assert_ne!(ReportId::random().unwrap(), ReportId::random().unwrap());
        let a = ReportId::derived_from(&[b"file", b"row 1"]);
        assert_eq!(a, ReportId::derived_from(&[b"file", b"row 1"]));
        assert_ne!(a, ReportId::derived_from(&[b"filer", b"ow 1"]));
    }
}
