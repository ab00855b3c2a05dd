//! Case public keys as coordinators' devices publish them, and invites a
//! coordinator's device mints. The server keeps each epoch's key with its
//! signature and hands the list to devices; it cannot make a key a
//! reporter's device will take over one the invite's fingerprint names
//! (see `fieldsync_core::case_key_trust`).

use std::time::Duration;

use fieldsync_core::case_key_trust::{PublishedCaseKey, VerifiedCaseKey};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::CaseId;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::audit::write_audit;
use super::error::StoreError;
use super::membership::{case_by_name, insert_invite, DeviceRecord};
use super::pool::Store;
use super::sql::now_text;

impl Store {
    /// Stores a case public key published by `device` (the caller has
    /// checked it is a coordinator and the signature is its own). `true`
    /// if it was new, `false` if the server had this very key; a different
    /// key for the epoch is [`StoreError::CaseKeyConflict`].
    pub fn publish_case_key(
        &self,
        device: &DeviceRecord,
        key: &VerifiedCaseKey,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let epoch = key.key.epoch;
        let held: Option<Vec<u8>> = tx
            .query_row(
                "SELECT public_key FROM case_public_keys WHERE case_id = ?1 AND epoch = ?2",
                params![device.case_id.as_str(), epoch],
                |r| r.get(0),
            )
            .optional()?;
        match held {
            Some(bytes) if bytes == key.key.bytes() => return Ok(false),
            Some(_) => return Err(StoreError::CaseKeyConflict(epoch)),
            None => {}
        }
        tx.execute(
            "INSERT INTO case_public_keys
                 (case_id, epoch, public_key, signer, signature, published_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                device.case_id.as_str(),
                epoch,
                &key.key.bytes()[..],
                device.device_id.as_str(),
                &key.signature.as_bytes()[..],
                now_text()
            ],
        )?;
        write_audit(
            &tx,
            "case-key-published",
            Some(&device.device_id),
            &format!(
                "case {} epoch {epoch} fingerprint {}",
                device.case_name,
                key.key.fingerprint()
            ),
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// The case's published public keys, oldest epoch first.
    pub fn case_public_keys(&self, case: &CaseId) -> Result<Vec<PublishedCaseKey>, StoreError> {
        let conn = self.conn()?;
        case_public_keys(&conn, case)
    }

    /// The published keys of the case named `case_name`, for the operator.
    pub fn case_public_keys_by_name(
        &self,
        case_name: &str,
    ) -> Result<Vec<PublishedCaseKey>, StoreError> {
        let conn = self.conn()?;
        let case = case_by_name(&conn, case_name)?
            .ok_or_else(|| StoreError::UnknownCase(case_name.to_owned()))?;
        case_public_keys(&conn, &case.id)
    }

    /// A one-time token for `device`'s case, minted by that (coordinator's)
    /// device. Returns the token and its expiry.
    pub fn create_invite_by(
        &self,
        device: &DeviceRecord,
        role: DeviceRole,
        ttl: Duration,
    ) -> Result<(String, String), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let case = case_by_name(&tx, &device.case_name)?
            .ok_or_else(|| StoreError::UnknownCase(device.case_name.clone()))?;
        let minted = insert_invite(&tx, &case, role, ttl, Some(&device.device_id))?;
        tx.commit()?;
        Ok(minted)
    }
}

fn case_public_keys(conn: &Connection, case: &CaseId) -> Result<Vec<PublishedCaseKey>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT k.epoch, k.public_key, d.public_key, k.signature
         FROM case_public_keys k JOIN devices d ON d.device_id = k.signer
         WHERE k.case_id = ?1 ORDER BY k.epoch",
    )?;
    let rows = stmt
        .query_map([case.as_str()], |r| {
            Ok(PublishedCaseKey {
                epoch: r.get(0)?,
                public_key: hex::encode(r.get::<_, Vec<u8>>(1)?),
                signer: hex::encode(r.get::<_, Vec<u8>>(2)?),
                signature: hex::encode(r.get::<_, Vec<u8>>(3)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
