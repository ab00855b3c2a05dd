//! Case keys held on this device, by case name and epoch. They live only
//! here: no request the device sends is built from this table, and the
//! server has no place for them.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use zeroize::Zeroizing;

use super::secrets::{Vault, Wrapped};
use super::{now, Replica, ReplicaError};
use crate::case_key::{CaseKey, CaseKeyError};

#[derive(Debug, thiserror::Error)]
pub enum CaseKeyStoreError {
    #[error("this device already holds a key for case {case:?} (epoch {epoch}); to make a new one use `fieldsync key rotate --case {case}`")]
    AlreadyHasKey { case: String, epoch: u32 },
    #[error("this device holds no key for case {0:?}; make one with `fieldsync key new --case {0}` (coordinator) or add the share code you were given with `fieldsync key add --case {0} CODE`")]
    NoKey(String),
    #[error("this device holds a different key for case {case:?} epoch {epoch}; the share code belongs to another case or was made on another coordinator device. Ask the coordinator for the current code")]
    EpochClash { case: String, epoch: u32 },
    #[error("the key store holds a malformed key for case {case:?} epoch {epoch}")]
    Malformed { case: String, epoch: u32 },
    #[error(transparent)]
    Key(#[from] CaseKeyError),
}

/// What adding a share code did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAdded {
    Added,
    AlreadyPresent,
}

impl Replica {
    /// Makes the first key of a case (epoch 1). Refuses if the device
    /// already has one: replacing it would strand attachments sealed with it.
    pub fn new_case_key(&mut self, case: &str) -> Result<CaseKey, ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(epoch) = newest_epoch(&tx, case)? {
            return Err(CaseKeyStoreError::AlreadyHasKey {
                case: case.to_owned(),
                epoch,
            }
            .into());
        }
        let key = CaseKey::generate(1).map_err(CaseKeyStoreError::from)?;
        insert(&tx, &self.vault, case, &key)?;
        tx.commit()?;
        Ok(key)
    }

    /// Makes the key of the next epoch. New attachments are sealed with it;
    /// older keys stay to open older attachments.
    pub fn rotate_case_key(&mut self, case: &str) -> Result<CaseKey, ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let newest =
            newest_epoch(&tx, case)?.ok_or_else(|| CaseKeyStoreError::NoKey(case.to_owned()))?;
        let epoch = newest.checked_add(1).ok_or(CaseKeyStoreError::Malformed {
            case: case.to_owned(),
            epoch: newest,
        })?;
        let key = CaseKey::generate(epoch).map_err(CaseKeyStoreError::from)?;
        insert(&tx, &self.vault, case, &key)?;
        tx.commit()?;
        Ok(key)
    }

    /// Stores a key received as a share code. The same code twice is a
    /// no-op; a different key under an epoch already held is refused.
    pub fn add_case_key(&mut self, case: &str, key: &CaseKey) -> Result<KeyAdded, ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<Vec<u8>> = tx
            .query_row(
                "SELECT key FROM case_keys WHERE case_name = ?1 AND epoch = ?2",
                params![case, key.epoch],
                |r| r.get(0),
            )
            .optional()?;
        let existing = existing
            .map(|stored| unwrap_key(&tx, &self.vault, case, key.epoch, &stored))
            .transpose()?;
        let outcome = match existing {
            Some(held) if held[..] == key.bytes()[..] => KeyAdded::AlreadyPresent,
            Some(_) => {
                return Err(CaseKeyStoreError::EpochClash {
                    case: case.to_owned(),
                    epoch: key.epoch,
                }
                .into())
            }
            None => {
                insert(&tx, &self.vault, case, key)?;
                KeyAdded::Added
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Every key of a case, oldest epoch first.
    pub fn case_keys(&self, case: &str) -> Result<Vec<CaseKey>, ReplicaError> {
        let mut stmt = self
            .conn
            .prepare("SELECT epoch, key FROM case_keys WHERE case_name = ?1 ORDER BY epoch")?;
        let rows = stmt
            .query_map([case], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(epoch, stored)| {
                let bytes = unwrap_key(&self.conn, &self.vault, case, epoch, &stored)?;
                let key: [u8; 32] =
                    bytes[..]
                        .try_into()
                        .map_err(|_| CaseKeyStoreError::Malformed {
                            case: case.to_owned(),
                            epoch,
                        })?;
                Ok(CaseKey::from_bytes(epoch, key))
            })
            .collect()
    }

    /// The key new attachments of a case are sealed with: the newest epoch.
    pub fn current_case_key(&self, case: &str) -> Result<CaseKey, ReplicaError> {
        self.case_keys(case)?
            .pop()
            .ok_or_else(|| CaseKeyStoreError::NoKey(case.to_owned()).into())
    }
}

fn newest_epoch(conn: &rusqlite::Connection, case: &str) -> Result<Option<u32>, ReplicaError> {
    Ok(conn.query_row(
        "SELECT MAX(epoch) FROM case_keys WHERE case_name = ?1",
        [case],
        |r| r.get(0),
    )?)
}

fn insert(
    conn: &rusqlite::Connection,
    vault: &Vault,
    case: &str,
    key: &CaseKey,
) -> Result<(), ReplicaError> {
    let what = Wrapped::CaseKey {
        case,
        epoch: key.epoch,
    };
    let stored = vault.sealer(conn)?.wrap(&what, &key.bytes()[..])?;
    conn.execute(
        "INSERT INTO case_keys (case_name, epoch, key, added_at) VALUES (?1, ?2, ?3, ?4)",
        params![case, key.epoch, stored, now().to_rfc3339()],
    )?;
    Ok(())
}

/// The plain bytes of a stored key (unwrapped if the home has a passphrase).
fn unwrap_key(
    conn: &rusqlite::Connection,
    vault: &Vault,
    case: &str,
    epoch: u32,
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ReplicaError> {
    Ok(vault
        .sealer(conn)?
        .unwrap(&Wrapped::CaseKey { case, epoch }, stored)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_old_keys_and_seals_with_the_newest() {
        let mut replica = Replica::open_in_memory().unwrap();
        assert!(matches!(
            replica.current_case_key("almaty"),
            Err(ReplicaError::CaseKey(CaseKeyStoreError::NoKey(_)))
        ));
        let first = replica.new_case_key("almaty").unwrap();
        assert_eq!(first.epoch, 1);
        assert!(matches!(
            replica.new_case_key("almaty"),
            Err(ReplicaError::CaseKey(CaseKeyStoreError::AlreadyHasKey {
                epoch: 1,
                ..
            }))
        ));
        let second = replica.rotate_case_key("almaty").unwrap();
        assert_eq!(second.epoch, 2);
        assert_ne!(first.bytes(), second.bytes());
        assert_eq!(replica.current_case_key("almaty").unwrap(), second);
        assert_eq!(replica.case_keys("almaty").unwrap(), vec![first, second]);
        assert!(replica.case_keys("other").unwrap().is_empty());
    }

    #[test]
    fn a_share_code_added_twice_is_kept_once_and_a_clashing_one_refused() {
        let mut coordinator = Replica::open_in_memory().unwrap();
        let key = coordinator.new_case_key("almaty").unwrap();
        let received = CaseKey::from_share_code(&key.share_code()).unwrap();
        let mut reporter = Replica::open_in_memory().unwrap();
        assert_eq!(
            reporter.add_case_key("almaty", &received).unwrap(),
            KeyAdded::Added
        );
        assert_eq!(
            reporter.add_case_key("almaty", &received).unwrap(),
            KeyAdded::AlreadyPresent
        );
        let impostor = CaseKey::generate(1).unwrap();
        assert!(matches!(
            reporter.add_case_key("almaty", &impostor),
            Err(ReplicaError::CaseKey(CaseKeyStoreError::EpochClash {
                epoch: 1,
                ..
            }))
        ));
        assert_eq!(reporter.case_keys("almaty").unwrap(), vec![key]);
    }
}
