//! Keys at rest: the one place where the device key and the case keys are
//! wrapped under the home's passphrase, and unwrapped again.
//!
//! Without a passphrase a key is stored as it is. With one, every stored key
//! is `version (1 byte, = 1) ‖ nonce (12) ‖ AES-256-GCM(key)`, under a key
//! derived from the passphrase with Argon2id. The associated data names what
//! is wrapped (`"fieldsync wrapped key v1\0"` ‖ `device key`, or `case key\0`
//! case name `\0` epoch), so a wrapped key moved to another row does not
//! open. The derivation's parameters and its random salt are kept in the
//! replica's `meta` table under `passphrase`, as JSON, with a wrapped check
//! value that tells a wrong passphrase from a damaged key; they can be raised
//! later by `change_passphrase`, which derives anew with the current defaults.
//!
//! Whether a home has a passphrase is that one `meta` row: setting and
//! removing it rewrite every stored key and the row in one transaction, so
//! the keys are never half wrapped. Afterwards the database is vacuumed and
//! its write-ahead log truncated (with `secure_delete` on for every
//! connection), so no plain copy of a key stays in the replica's files.
//!
//! The passphrase is asked for only when a key is first needed (through the
//! source the caller gave, [`Replica::set_passphrase_source`]), so commands
//! that read reports alone never ask. The derived key is kept, zeroed on drop,
//! for the life of the [`Replica`]; unwrapped keys are handed out and dropped
//! by their users.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::error::ReplicaError;
pub use super::error::{SecretsError, MIN_PASSPHRASE_CHARS};
use super::store::Replica;
#[cfg(test)]
use super::vault::SALT_LEN;
use super::vault::{read_record, Kek, Sealer, Unlocked, Wrapped, META_KEY};
pub use super::vault::{KdfCost, Passphrase, PassphraseRecord};

impl Replica {
    /// Where to get the passphrase when a key is first needed in a home
    /// that has one. Without a source such a home's keys cannot be read.
    pub fn set_passphrase_source(
        &mut self,
        source: impl FnMut() -> Result<Passphrase, String> + Send + 'static,
    ) {
        *self.vault.source.borrow_mut() = Some(Box::new(source));
    }

    /// The derivation's parameters if this home has a passphrase.
    pub fn passphrase(&self) -> Result<Option<PassphraseRecord>, ReplicaError> {
        read_record(&self.conn)?
            .map(|text| PassphraseRecord::parse(&text).map_err(ReplicaError::from))
            .transpose()
    }

    /// Asks for the passphrase now, if the home has one and it was not given
    /// yet: before a write that will need a key, so that no transaction
    /// waits on a person typing.
    pub fn unlock(&self) -> Result<(), ReplicaError> {
        self.vault.sealer(&self.conn).map(drop)
    }

    /// Wraps every key of the home under `new`. Refuses if the home has a
    /// passphrase already.
    pub fn set_passphrase(&mut self, new: &Passphrase, cost: KdfCost) -> Result<(), ReplicaError> {
        if read_record(&self.conn)?.is_some() {
            return Err(SecretsError::AlreadySet.into());
        }
        let (record, kek) = PassphraseRecord::create(new, cost)?;
        self.rewrite(Sealer::Plain, Some((record, kek)))
    }

    /// Rewraps every key under `new`, with a fresh salt and `cost`, after
    /// the current passphrase (from the source) opened them.
    pub fn change_passphrase(
        &mut self,
        new: &Passphrase,
        cost: KdfCost,
    ) -> Result<(), ReplicaError> {
        let current = self.vault.sealer(&self.conn)?;
        if matches!(current, Sealer::Plain) {
            return Err(SecretsError::NotSet.into());
        }
        let (record, kek) = PassphraseRecord::create(new, cost)?;
        self.rewrite(current, Some((record, kek)))
    }

    /// Stores every key plain again, after the current passphrase (from the
    /// source) opened them.
    pub fn remove_passphrase(&mut self) -> Result<(), ReplicaError> {
        let current = self.vault.sealer(&self.conn)?;
        if matches!(current, Sealer::Plain) {
            return Err(SecretsError::NotSet.into());
        }
        self.rewrite(current, None)
    }

    /// Rewrites every stored key from `from` to `to` (plain when `None`) in
    /// one transaction, then scrubs the old copies from the files.
    fn rewrite(
        &mut self,
        from: Sealer,
        to: Option<(PassphraseRecord, Kek)>,
    ) -> Result<(), ReplicaError> {
        let record_text = match &to {
            Some((record, _)) => Some(
                serde_json::to_string(record)
                    .map_err(|e| SecretsError::BadRecord(e.to_string()))?,
            ),
            None => None,
        };
        let to_sealer = match &to {
            Some((_, kek)) => Sealer::Wrapped(kek.clone()),
            None => Sealer::Plain,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have set or changed the passphrase since
        // `from` was found: then `from` does not open the keys; stop.
        let now_stored = read_record(&tx)?;
        let expected = match (&from, &*self.vault.unlocked.borrow()) {
            (Sealer::Plain, _) => None,
            (Sealer::Wrapped(_), Some(unlocked)) => Some(unlocked.record.clone()),
            (Sealer::Wrapped(_), None) => return Err(SecretsError::WrongPassphrase.into()),
        };
        if now_stored != expected {
            return Err(SecretsError::BadRecord(
                "the passphrase was changed by another process meanwhile; try again".into(),
            )
            .into());
        }
        let identity: Option<Vec<u8>> = tx
            .query_row("SELECT pkcs8 FROM identity WHERE only = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(stored) = identity {
            let plain = from.unwrap(&Wrapped::DeviceKey, &stored)?;
            tx.execute(
                "UPDATE identity SET pkcs8 = ?1 WHERE only = 1",
                [to_sealer.wrap(&Wrapped::DeviceKey, &plain)?],
            )?;
        }
        let case_keys: Vec<(String, u32, Vec<u8>)> = tx
            .prepare("SELECT case_name, epoch, key FROM case_keys")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (case, epoch, stored) in case_keys {
            let what = Wrapped::CaseKey { case: &case, epoch };
            let plain = from.unwrap(&what, &stored)?;
            tx.execute(
                "UPDATE case_keys SET key = ?1 WHERE case_name = ?2 AND epoch = ?3",
                params![to_sealer.wrap(&what, &plain)?, case, epoch],
            )?;
        }
        match &record_text {
            Some(text) => tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![META_KEY, text],
            )?,
            None => tx.execute("DELETE FROM meta WHERE key = ?1", [META_KEY])?,
        };
        tx.commit()?;
        *self.vault.unlocked.borrow_mut() = match (record_text, to) {
            (Some(record), Some((_, kek))) => Some(Unlocked { record, kek }),
            _ => None,
        };
        scrub(&self.conn)
    }
}

/// Rewrites the database without the pages and log frames that held the
/// keys as they were: `secure_delete` (on for every connection of the
/// replica) zeroes freed cells, VACUUM rebuilds every page, and a truncating
/// checkpoint empties the write-ahead log, which holds old page images.
fn scrub(conn: &Connection) -> Result<(), ReplicaError> {
    conn.execute_batch("VACUUM")?;
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        return Err(SecretsError::ScrubBusy.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
