//! Case keys held on this device, by case name and epoch. They live only
//! here: no request the device sends is built from the secret ones, and
//! the server has no place for them.
//!
//! Two tables:
//! - `case_keys`: secrets, each with its share code `version`: 1, the old
//!   symmetric key; 2, an X25519 private key (coordinators only). The
//!   `key` bytes are written by [`insert`] and read by [`read_secrets`]
//!   only, so how they are kept at rest is decided in one place.
//! - `case_public_keys`: the case public keys this device trusts, with
//!   the device key that signed each (see `case_key_trust`). New
//!   attachments are sealed to the newest one.
//!
//! A reporter's device never holds a version 2 secret, and once it trusts
//! a public key it deletes its version 1 keys (`secure_delete` is on for
//! the replica, and the write-ahead log is truncated after), so a seized
//! phone opens no attachment, not even its own once sealed.

use rusqlite::{params, Connection, TransactionBehavior};

use zeroize::Zeroizing;

pub use super::error::CaseKeyStoreError;
use super::error::ReplicaError;
use super::store::{now, Replica};
use super::vault::{Vault, Wrapped};
use crate::case_key::{CasePrivateKey, CasePublicKey, CaseSecret};
use crate::case_key_trust::{decide, PublishedCaseKey, TrustDecision, VerifiedCaseKey};
use crate::envelope::SealingKey;
use crate::identity::{PublicKey, Signature};
use crate::ids::CaseId;

/// What adding a share code did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAdded {
    Added,
    AlreadyPresent,
}

/// What taking the server's published keys did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeysTaken {
    pub decision: TrustDecision,
    /// Symmetric (version 1) keys deleted because a public key now seals.
    pub removed_symmetric: usize,
}

impl Replica {
    /// Makes the first key pair of a case (epoch 1) on a coordinator's
    /// device. Refuses if the device already has a key: replacing it would
    /// strand attachments sealed with it.
    pub fn new_case_key(&mut self, case: &str) -> Result<CasePrivateKey, ReplicaError> {
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
        let key = CasePrivateKey::generate(1).map_err(CaseKeyStoreError::from)?;
        insert(&tx, &self.vault, case, &CaseSecret::Private(key.clone()))?;
        trust_own(&tx, &self.vault, case, &key)?;
        tx.commit()?;
        Ok(key)
    }

    /// Makes the key pair of the next epoch. New attachments are sealed to
    /// it; older keys stay to open older attachments.
    pub fn rotate_case_key(&mut self, case: &str) -> Result<CasePrivateKey, ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let newest =
            newest_epoch(&tx, case)?.ok_or_else(|| CaseKeyStoreError::NoKey(case.to_owned()))?;
        let epoch = newest.checked_add(1).ok_or(CaseKeyStoreError::Malformed {
            case: case.to_owned(),
            epoch: newest,
        })?;
        let key = CasePrivateKey::generate(epoch).map_err(CaseKeyStoreError::from)?;
        insert(&tx, &self.vault, case, &CaseSecret::Private(key.clone()))?;
        trust_own(&tx, &self.vault, case, &key)?;
        tx.commit()?;
        Ok(key)
    }

    /// Stores a key received as a share code. The same code twice is a
    /// no-op; a different key under an epoch already held is refused. A
    /// reporter's device refuses a private key, and a symmetric one once it
    /// seals to a public key.
    pub fn add_case_key(&mut self, case: &str, key: &CaseSecret) -> Result<KeyAdded, ReplicaError> {
        let reporter = self.meta("role")?.as_deref() == Some("reporter");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if reporter {
            match key {
                CaseSecret::Private(_) => {
                    return Err(CaseKeyStoreError::PrivateKeyOnReporter.into());
                }
                CaseSecret::Symmetric(_) => {
                    if let Some(public) = newest_public(&tx, case)? {
                        return Err(
                            CaseKeyStoreError::SymmetricAfterPublic(public.key.epoch).into()
                        );
                    }
                }
            }
        }
        let existing = read_secrets(&tx, &self.vault, case)?
            .into_iter()
            .find(|k| k.epoch() == key.epoch());
        let outcome = match existing {
            Some(held) if &held == key => KeyAdded::AlreadyPresent,
            Some(_) => {
                return Err(CaseKeyStoreError::EpochClash {
                    case: case.to_owned(),
                    epoch: key.epoch(),
                }
                .into())
            }
            None => {
                if let Some(public) = public_keys(&tx, case)?
                    .into_iter()
                    .find(|p| p.key.epoch == key.epoch())
                {
                    let same = matches!(key, CaseSecret::Private(k) if k.public() == public.key);
                    if !same {
                        return Err(CaseKeyStoreError::EpochClash {
                            case: case.to_owned(),
                            epoch: key.epoch(),
                        }
                        .into());
                    }
                }
                insert(&tx, &self.vault, case, key)?;
                if let CaseSecret::Private(private) = key {
                    trust_own(&tx, &self.vault, case, private)?;
                }
                KeyAdded::Added
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Every secret key of a case (either version), oldest epoch first: what
    /// opens attachments.
    pub fn case_keys(&self, case: &str) -> Result<Vec<CaseSecret>, ReplicaError> {
        read_secrets(&self.conn, &self.vault, case)
    }

    /// The case public keys this device trusts, oldest epoch first.
    pub fn case_public_keys(&self, case: &str) -> Result<Vec<VerifiedCaseKey>, ReplicaError> {
        public_keys(&self.conn, case)
    }

    /// What new attachments of a case are sealed to: the newest trusted
    /// public key; on a device of a case with none yet, the newest
    /// symmetric key.
    pub fn sealing_key(&self, case: &str) -> Result<SealingKey, ReplicaError> {
        if let Some(public) = newest_public(&self.conn, case)? {
            return Ok(SealingKey::Public(public.key));
        }
        read_secrets(&self.conn, &self.vault, case)?
            .into_iter()
            .rev()
            .find_map(|k| match k {
                CaseSecret::Symmetric(key) => Some(SealingKey::Symmetric(key)),
                CaseSecret::Private(_) => None,
            })
            .ok_or_else(|| CaseKeyStoreError::NoKey(case.to_owned()).into())
    }

    /// This device's own key pairs' public keys, signed by its device key,
    /// for the server to publish.
    pub fn case_key_publications(
        &self,
        case: &str,
        case_id: &CaseId,
    ) -> Result<Vec<PublishedCaseKey>, ReplicaError> {
        let device = self.device_key()?.ok_or(ReplicaError::NoIdentity)?;
        Ok(read_secrets(&self.conn, &self.vault, case)?
            .into_iter()
            .filter_map(|k| match k {
                CaseSecret::Private(private) => {
                    Some(PublishedCaseKey::sign(&device, case_id, &private.public()))
                }
                CaseSecret::Symmetric(_) => None,
            })
            .collect())
    }

    /// Takes what it trusts of the keys the server publishes for `case`
    /// (see `case_key_trust::decide`): while the device trusts none, the
    /// one with fingerprint `pin`, or, with no pin, all on trust. On a
    /// reporter's device, trusting a public key deletes its symmetric keys.
    pub fn take_published_keys(
        &mut self,
        case: &str,
        case_id: &CaseId,
        pin: Option<&str>,
        offered: &[PublishedCaseKey],
    ) -> Result<KeysTaken, ReplicaError> {
        let reporter = self.meta("role")?.as_deref() == Some("reporter");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let trusted = public_keys(&tx, case)?;
        let decision = decide(case_id, &trusted, pin, offered);
        for key in &decision.accepted {
            insert_public(&tx, case, key)?;
        }
        let mut removed_symmetric = 0;
        if reporter && newest_public(&tx, case)?.is_some() {
            removed_symmetric = tx.execute(
                "DELETE FROM case_keys WHERE case_name = ?1 AND version = 1",
                [case],
            )?;
        }
        tx.commit()?;
        if removed_symmetric > 0 {
            // secure_delete zeroed the rows in the pages; the log still
            // holds the pages as they were until it is truncated.
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(KeysTaken {
            decision,
            removed_symmetric,
        })
    }
}

fn newest_epoch(conn: &Connection, case: &str) -> Result<Option<u32>, ReplicaError> {
    Ok(conn.query_row(
        "SELECT MAX(epoch) FROM (SELECT epoch FROM case_keys WHERE case_name = ?1
                                 UNION ALL
                                 SELECT epoch FROM case_public_keys WHERE case_name = ?1)",
        [case],
        |r| r.get(0),
    )?)
}

/// The one writer of the `key` bytes: wrapped under the home's passphrase
/// when it has one (`secrets`), labelled with the case and epoch.
fn insert(
    conn: &Connection,
    vault: &Vault,
    case: &str,
    key: &CaseSecret,
) -> Result<(), ReplicaError> {
    let what = Wrapped::CaseKey {
        case,
        epoch: key.epoch(),
    };
    let stored = vault.sealer(conn)?.wrap(&what, &key.bytes()[..])?;
    conn.execute(
        "INSERT INTO case_keys (case_name, epoch, key, version, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![case, key.epoch(), stored, key.version(), now().to_rfc3339()],
    )?;
    Ok(())
}

/// The one reader of the `key` bytes: every secret of `case`, oldest first,
/// unwrapped if the home has a passphrase.
fn read_secrets(
    conn: &Connection,
    vault: &Vault,
    case: &str,
) -> Result<Vec<CaseSecret>, ReplicaError> {
    let mut stmt = conn
        .prepare("SELECT epoch, version, key FROM case_keys WHERE case_name = ?1 ORDER BY epoch")?;
    let rows = stmt
        .query_map([case], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u8>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let sealer = vault.sealer(conn)?;
    rows.into_iter()
        .map(|(epoch, version, stored)| {
            let malformed = || CaseKeyStoreError::Malformed {
                case: case.to_owned(),
                epoch,
            };
            let bytes: Zeroizing<Vec<u8>> =
                sealer.unwrap(&Wrapped::CaseKey { case, epoch }, &stored)?;
            let key: [u8; 32] = bytes[..].try_into().map_err(|_| malformed())?;
            Ok(CaseSecret::from_parts(version, epoch, key).map_err(|_| malformed())?)
        })
        .collect()
}

/// A key pair made or added on this device is trusted as its own, signed by
/// this device's key (which a coordinator's device has from `device init`).
fn trust_own(
    conn: &Connection,
    vault: &Vault,
    case: &str,
    key: &CasePrivateKey,
) -> Result<(), ReplicaError> {
    let device = super::store::load_key(conn, vault)?.ok_or(ReplicaError::NoIdentity)?;
    // The signature names no case id here: trust_own's rows are this
    // device's own and never verified again; only the signer matters.
    let signature = device.sign(crate::identity::Domain::CaseKey, key.public().bytes());
    insert_public(
        conn,
        case,
        &VerifiedCaseKey {
            key: key.public(),
            signer: device.public_key(),
            signature,
        },
    )
}

fn insert_public(conn: &Connection, case: &str, key: &VerifiedCaseKey) -> Result<(), ReplicaError> {
    conn.execute(
        "INSERT OR IGNORE INTO case_public_keys
             (case_name, epoch, public_key, signer, signature, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            case,
            key.key.epoch,
            &key.key.bytes()[..],
            &key.signer.as_bytes()[..],
            &key.signature.as_bytes()[..],
            now().to_rfc3339()
        ],
    )?;
    Ok(())
}

fn public_keys(conn: &Connection, case: &str) -> Result<Vec<VerifiedCaseKey>, ReplicaError> {
    let mut stmt = conn.prepare(
        "SELECT epoch, public_key, signer, signature FROM case_public_keys
         WHERE case_name = ?1 ORDER BY epoch",
    )?;
    let rows = stmt
        .query_map([case], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(epoch, public, signer, signature)| {
            let malformed = || CaseKeyStoreError::Malformed {
                case: case.to_owned(),
                epoch,
            };
            let public: [u8; 32] = public.try_into().map_err(|_| malformed())?;
            Ok(VerifiedCaseKey {
                key: CasePublicKey::from_bytes(epoch, public),
                signer: PublicKey::from_bytes(&signer).map_err(|_| malformed())?,
                signature: Signature::from_bytes(&signature).map_err(|_| malformed())?,
            })
        })
        .collect()
}

fn newest_public(conn: &Connection, case: &str) -> Result<Option<VerifiedCaseKey>, ReplicaError> {
    Ok(public_keys(conn, case)?.pop())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case_key::CaseKey;

    fn coordinator() -> Replica {
        let mut replica = Replica::open_in_memory().unwrap();
        replica.init_identity().unwrap();
        replica.set_meta("role", "coordinator").unwrap();
        replica
    }

    fn reporter() -> Replica {
        let mut replica = Replica::open_in_memory().unwrap();
        replica.init_identity().unwrap();
        replica.set_meta("role", "reporter").unwrap();
        replica
    }

    fn case_id() -> CaseId {
        "00112233445566778899aabbccddeeff".parse().unwrap()
    }

    #[test]
    fn rotation_keeps_old_keys_and_seals_to_the_newest() {
        let mut replica = coordinator();
        assert!(matches!(
            replica.sealing_key("almaty"),
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
        assert_eq!(
            replica.sealing_key("almaty").unwrap(),
            SealingKey::Public(second.public())
        );
        assert_eq!(
            replica.case_keys("almaty").unwrap(),
            vec![CaseSecret::Private(first), CaseSecret::Private(second)]
        );
        assert!(replica.case_keys("other").unwrap().is_empty());
    }

    #[test]
    fn a_share_code_added_twice_is_kept_once_and_a_clashing_one_refused() {
        let mut first = coordinator();
        let key = first.new_case_key("almaty").unwrap();
        let received = CaseSecret::from_share_code(&key.share_code()).unwrap();
        let mut second = coordinator();
        assert_eq!(
            second.add_case_key("almaty", &received).unwrap(),
            KeyAdded::Added
        );
        assert_eq!(
            second.add_case_key("almaty", &received).unwrap(),
            KeyAdded::AlreadyPresent
        );
        let impostor = CaseSecret::Private(CasePrivateKey::generate(1).unwrap());
        assert!(matches!(
            second.add_case_key("almaty", &impostor),
            Err(ReplicaError::CaseKey(CaseKeyStoreError::EpochClash {
                epoch: 1,
                ..
            }))
        ));
        assert_eq!(second.case_keys("almaty").unwrap(), vec![received]);
        assert_eq!(
            second.sealing_key("almaty").unwrap(),
            SealingKey::Public(key.public())
        );
    }

    #[test]
    fn a_reporter_refuses_a_private_key_and_drops_its_symmetric_keys_once_it_trusts_a_public_one() {
        let mut coordinator = coordinator();
        let mut reporter = reporter();
        let old = CaseSecret::Symmetric(CaseKey::generate(1).unwrap());
        reporter.add_case_key("almaty", &old).unwrap();
        assert_eq!(
            reporter.sealing_key("almaty").unwrap(),
            SealingKey::Symmetric(CaseKey::from_bytes(1, *old.bytes()))
        );
        coordinator.add_case_key("almaty", &old).unwrap();
        let pair = coordinator.rotate_case_key("almaty").unwrap();
        assert!(matches!(
            reporter.add_case_key("almaty", &CaseSecret::Private(pair.clone())),
            Err(ReplicaError::CaseKey(
                CaseKeyStoreError::PrivateKeyOnReporter
            ))
        ));
        let published = coordinator
            .case_key_publications("almaty", &case_id())
            .unwrap();
        let taken = reporter
            .take_published_keys(
                "almaty",
                &case_id(),
                Some(&pair.public().fingerprint()),
                &published,
            )
            .unwrap();
        assert_eq!(taken.decision.accepted.len(), 1);
        assert_eq!(taken.removed_symmetric, 1);
        assert!(reporter.case_keys("almaty").unwrap().is_empty());
        assert_eq!(
            reporter.sealing_key("almaty").unwrap(),
            SealingKey::Public(pair.public())
        );
        assert!(matches!(
            reporter.add_case_key("almaty", &old),
            Err(ReplicaError::CaseKey(
                CaseKeyStoreError::SymmetricAfterPublic(2)
            ))
        ));
    }
}
