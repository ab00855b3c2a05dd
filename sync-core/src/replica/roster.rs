//! The case's devices as the server last listed them to this (coordinator)
//! device. It lets a coordinator check, with no network, that a bundle
//! comes from an enrolled, unrevoked device of the case; the server checks
//! again when the bundle's changes are relayed.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::error::ReplicaError;
use super::store::{now, Replica};

/// One device of the case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub device_id: String,
    /// Hex Ed25519 public key.
    pub public_key: String,
    pub role: String,
    pub revoked_at: Option<String>,
}

impl Replica {
    /// Replaces the roster with the server's current list.
    pub fn set_roster(&mut self, entries: &[RosterEntry]) -> Result<(), ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM roster", [])?;
        let fetched_at = now().to_rfc3339();
        for e in entries {
            tx.execute(
                "INSERT INTO roster (device_id, public_key, role, revoked_at, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.device_id, e.public_key, e.role, e.revoked_at, fetched_at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A device of the roster, if the server listed it.
    pub fn roster_entry(&self, device_id: &str) -> Result<Option<RosterEntry>, ReplicaError> {
        Ok(self
            .conn
            .query_row(
                "SELECT device_id, public_key, role, revoked_at FROM roster WHERE device_id = ?1",
                [device_id],
                |r| {
                    Ok(RosterEntry {
                        device_id: r.get(0)?,
                        public_key: r.get(1)?,
                        role: r.get(2)?,
                        revoked_at: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// When the roster was last fetched, if ever.
    pub fn roster_fetched_at(&self) -> Result<Option<String>, ReplicaError> {
        Ok(self
            .conn
            .query_row("SELECT MAX(fetched_at) FROM roster", [], |r| r.get(0))?)
    }
}
