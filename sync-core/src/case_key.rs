//! Case keys: 256-bit keys a coordinator's device makes and shares with
//! reporters in person, as a share code. The server never sees one.
//!
//! Share code: base64url (no padding) of
//! `version (1 byte, = 1) ‖ epoch (4 bytes, big-endian) ‖ key (32) ‖ check (4)`,
//! where `check` is the first 4 bytes of SHA-256 of everything before it,
//! so a mistyped code is refused instead of silently making a wrong key.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

const CODE_VERSION: u8 = 1;
const CODE_LEN: usize = 1 + 4 + 32 + 4;

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
    #[error("the system random number generator failed")]
    Random,
}

/// A case key with its epoch. Rotation makes a new epoch; old epochs are
/// kept to read old attachments.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseKey {
    pub epoch: u32,
    key: [u8; 32],
}

impl CaseKey {
    /// A fresh random key for `epoch`.
    pub fn generate(epoch: u32) -> Result<Self, CaseKeyError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| CaseKeyError::Random)?;
        Ok(Self { epoch, key })
    }

    pub fn from_bytes(epoch: u32, key: [u8; 32]) -> Self {
        Self { epoch, key }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    pub fn share_code(&self) -> String {
        let mut raw = Vec::with_capacity(CODE_LEN);
        raw.push(CODE_VERSION);
        raw.extend_from_slice(&self.epoch.to_be_bytes());
        raw.extend_from_slice(&self.key);
        let check = ring::digest::digest(&ring::digest::SHA256, &raw);
        raw.extend_from_slice(&check.as_ref()[..4]);
        URL_SAFE_NO_PAD.encode(raw)
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
        if raw[0] != CODE_VERSION {
            return Err(CaseKeyError::Version(raw[0]));
        }
        let mut epoch = [0u8; 4];
        epoch.copy_from_slice(&raw[1..5]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[5..37]);
        Ok(Self {
            epoch: u32::from_be_bytes(epoch),
            key,
        })
    }
}

impl fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaseKey(epoch {}, …)", self.epoch)
    }
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
}
