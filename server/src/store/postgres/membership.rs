//! Cases, invites, enrolled devices, request nonces, the audit log and
//! case keys, on PostgreSQL. Each does what the SQLite store's method of
//! the same name does (its documentation is there); what differs is how
//! concurrent processes are kept apart, said at each.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fieldsync_core::case_key_trust::{PublishedCaseKey, VerifiedCaseKey};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::sync::policy::Member;
use fieldsync_core::{CaseId, DeviceId, PublicKey};
use postgres::{GenericClient, Row};

use super::PgStore;
use crate::store::error::StoreError;
use crate::store::membership::{
    enroll_refusal, validate_case_name, CaseRecord, DeviceRecord, RawDevice, MAX_INVITE_TTL,
};
use crate::store::sql::{now_text, parse_stored, random_token, time_text, token_hash};

impl PgStore {
    pub fn create_case_in_zone(
        &self,
        name: &str,
        timezone: Option<&str>,
    ) -> Result<CaseRecord, StoreError> {
        validate_case_name(name)?;
        let id = CaseId::random().map_err(|_| StoreError::Random)?;
        let record = CaseRecord {
            id,
            name: name.to_owned(),
            created_at: now_text(),
            timezone: timezone.map(str::to_owned),
        };
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // The unique name decides between two processes creating the same
        // case at once.
        let inserted = tx.execute(
            "INSERT INTO cases (id, name, created_at, import_salt, timezone)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            &[
                &record.id.as_str(),
                &record.name,
                &record.created_at,
                &random_token()?,
                &record.timezone,
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::CaseExists(name.to_owned()));
        }
        write_audit(
            &mut tx,
            "case-create",
            None,
            &format!("case {} ({})", name, record.id),
        )?;
        tx.commit()?;
        Ok(record)
    }

    pub fn set_case_timezone(
        &self,
        name: &str,
        timezone: Option<&str>,
    ) -> Result<CaseRecord, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let Some(mut record) = case_by_name(&mut tx, name)? else {
            return Err(StoreError::UnknownCase(name.to_owned()));
        };
        tx.execute(
            "UPDATE cases SET timezone = $2 WHERE id = $1",
            &[&record.id.as_str(), &timezone],
        )?;
        write_audit(
            &mut tx,
            "case-timezone",
            None,
            &format!(
                "case {} ({}): {}",
                name,
                record.id,
                timezone.unwrap_or("none")
            ),
        )?;
        tx.commit()?;
        record.timezone = timezone.map(str::to_owned);
        Ok(record)
    }

    pub fn case_timezone(&self, case: &CaseId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn()?;
        let row = conn.query_opt(
            "SELECT timezone FROM cases WHERE id = $1",
            &[&case.as_str()],
        )?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    pub fn case_by_name(&self, name: &str) -> Result<Option<CaseRecord>, StoreError> {
        case_by_name(&mut *self.conn()?, name)
    }

    pub fn create_invite(
        &self,
        case_name: &str,
        role: DeviceRole,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let case = case_by_name(&mut tx, case_name)?
            .ok_or_else(|| StoreError::UnknownCase(case_name.to_owned()))?;
        let (token, _) = insert_invite(&mut tx, &case, role, ttl, None)?;
        tx.commit()?;
        Ok(token)
    }

    pub fn create_invite_by(
        &self,
        device: &DeviceRecord,
        role: DeviceRole,
        ttl: Duration,
    ) -> Result<(String, String), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let case = case_by_name(&mut tx, &device.case_name)?
            .ok_or_else(|| StoreError::UnknownCase(device.case_name.clone()))?;
        let minted = insert_invite(&mut tx, &case, role, ttl, Some(&device.device_id))?;
        tx.commit()?;
        Ok(minted)
    }

    pub fn import_salt(&self, case: &CaseId) -> Result<String, StoreError> {
        let mut conn = self.conn()?;
        let salt = conn
            .query_opt(
                "SELECT import_salt FROM cases WHERE id = $1",
                &[&case.as_str()],
            )?
            .and_then(|r| r.get::<_, Option<String>>(0));
        salt.ok_or_else(|| StoreError::UnknownCase(case.to_string()))
    }

    pub fn enroll(&self, token: &str, public_key: &PublicKey) -> Result<DeviceRecord, StoreError> {
        let mut conn = self.conn()?;
        let device = public_key.device_id();
        let result = enroll_in_tx(&mut conn, token, public_key);
        if let Err(e) = &result {
            if let Some(reason) = enroll_refusal(e) {
                if let Err(audit_error) =
                    write_audit(&mut *conn, "enroll-refused", Some(&device), reason)
                {
                    tracing::warn!(device = %device, error = %audit_error, "could not audit a refused enrollment");
                }
            }
        }
        result
    }

    pub fn devices(&self, case_name: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut conn = self.conn()?;
        let rows = match case_name {
            None => conn.query(
                &format!("{DEVICE_SELECT} ORDER BY d.enrolled_at, d.device_id"),
                &[],
            )?,
            Some(name) => {
                let case = case_by_name(&mut *conn, name)?
                    .ok_or_else(|| StoreError::UnknownCase(name.to_owned()))?;
                conn.query(
                    &format!(
                        "{DEVICE_SELECT} WHERE d.case_id = $1 ORDER BY d.enrolled_at, d.device_id"
                    ),
                    &[&case.id.as_str()],
                )?
            }
        };
        rows.iter().map(device_of_row).collect()
    }

    pub fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        device_by_id(&mut *self.conn()?, id)
    }

    pub fn revoke(&self, id: &DeviceId) -> Result<DeviceRecord, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let now = now_text();
        let updated = tx.execute(
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, $2) WHERE device_id = $1",
            &[&id.as_str(), &now],
        )?;
        if updated == 0 {
            return Err(StoreError::UnknownDevice(id.clone()));
        }
        let record =
            device_by_id(&mut tx, id)?.ok_or_else(|| StoreError::UnknownDevice(id.clone()))?;
        let detail = match &record.revoked_at {
            Some(at) if at != &now => format!("already revoked at {at}"),
            _ => format!("case {}", record.case_name),
        };
        write_audit(&mut tx, "revoke", Some(id), &detail)?;
        tx.commit()?;
        Ok(record)
    }

    /// The primary key (device, nonce) refuses a replay whichever process
    /// saw the nonce first: an insert that inserted nothing is a replay.
    /// Old nonces are forgotten per case, so the request path touches one
    /// case only.
    pub fn use_nonce(
        &self,
        device: &DeviceId,
        nonce: &str,
        timestamp: i64,
        window_secs: i64,
    ) -> Result<bool, StoreError> {
        let cutoff = Utc::now()
            .timestamp()
            .saturating_sub(window_secs.saturating_mul(2));
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let Some(case) = tx.query_opt(
            "SELECT case_id FROM devices WHERE device_id = $1",
            &[&device.as_str()],
        )?
        else {
            return Ok(false);
        };
        let case: String = case.get(0);
        tx.execute(
            "DELETE FROM nonces WHERE case_id = $1 AND ts < $2",
            &[&case, &cutoff],
        )?;
        let fresh = timestamp >= cutoff
            && tx.execute(
                "INSERT INTO nonces (case_id, device_id, nonce, ts) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&case, &device.as_str(), &nonce, &timestamp],
            )? == 1;
        tx.commit()?;
        Ok(fresh)
    }

    pub fn audit(
        &self,
        event: &str,
        device: Option<&DeviceId>,
        detail: &str,
    ) -> Result<(), StoreError> {
        write_audit(&mut *self.conn()?, event, device, detail)
    }

    /// The audit log, oldest first: (at, event, device, detail).
    pub fn audit_log(&self) -> Result<Vec<crate::store::AuditEntry>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT at, event, device_id, detail FROM audit_log ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    pub fn prune_audit_log(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        const BATCH: i64 = 5_000;
        let cutoff = time_text(before);
        let mut conn = self.conn()?;
        let mut deleted = 0;
        loop {
            let n = conn.execute(
                "DELETE FROM audit_log WHERE id IN
                     (SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT $2)",
                &[&cutoff, &BATCH],
            )?;
            deleted += n as usize;
            if n < BATCH as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Two coordinators publishing the same epoch at once: the primary key
    /// keeps the first, and the second is compared with it.
    pub fn publish_case_key(
        &self,
        device: &DeviceRecord,
        key: &VerifiedCaseKey,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let epoch = i64::from(key.key.epoch);
        let inserted = tx.execute(
            "INSERT INTO case_public_keys
                 (case_id, epoch, public_key, signer, signature, published_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &device.case_id.as_str(),
                &epoch,
                &&key.key.bytes()[..],
                &device.device_id.as_str(),
                &&key.signature.as_bytes()[..],
                &now_text(),
            ],
        )?;
        if inserted == 0 {
            let held: Vec<u8> = tx
                .query_one(
                    "SELECT public_key FROM case_public_keys WHERE case_id = $1 AND epoch = $2",
                    &[&device.case_id.as_str(), &epoch],
                )?
                .get(0);
            return if held == key.key.bytes() {
                Ok(false)
            } else {
                Err(StoreError::CaseKeyConflict(key.key.epoch))
            };
        }
        write_audit(
            &mut tx,
            "case-key-published",
            Some(&device.device_id),
            &format!(
                "case {} epoch {} fingerprint {}",
                device.case_name,
                key.key.epoch,
                key.key.fingerprint()
            ),
        )?;
        tx.commit()?;
        Ok(true)
    }

    pub fn case_public_keys(&self, case: &CaseId) -> Result<Vec<PublishedCaseKey>, StoreError> {
        case_public_keys(&mut *self.conn()?, case)
    }

    pub fn case_public_keys_by_name(
        &self,
        case_name: &str,
    ) -> Result<Vec<PublishedCaseKey>, StoreError> {
        let mut conn = self.conn()?;
        let case = case_by_name(&mut *conn, case_name)?
            .ok_or_else(|| StoreError::UnknownCase(case_name.to_owned()))?;
        case_public_keys(&mut *conn, &case.id)
    }
}

fn case_public_keys(
    conn: &mut impl GenericClient,
    case: &CaseId,
) -> Result<Vec<PublishedCaseKey>, StoreError> {
    let rows = conn.query(
        "SELECT k.epoch, k.public_key, d.public_key, k.signature
         FROM case_public_keys k JOIN devices d ON d.device_id = k.signer
         WHERE k.case_id = $1 ORDER BY k.epoch",
        &[&case.as_str()],
    )?;
    rows.iter()
        .map(|r| {
            let epoch: i64 = r.get(0);
            Ok(PublishedCaseKey {
                epoch: u32::try_from(epoch)
                    .map_err(|_| StoreError::Corrupt(format!("case key epoch {epoch}")))?,
                public_key: hex::encode(r.get::<_, Vec<u8>>(1)),
                signer: hex::encode(r.get::<_, Vec<u8>>(2)),
                signature: hex::encode(r.get::<_, Vec<u8>>(3)),
            })
        })
        .collect()
}

pub(super) const DEVICE_SELECT: &str =
    "SELECT d.device_id, d.public_key, d.case_id, c.name, d.role, d.enrolled_at, d.revoked_at
     FROM devices d JOIN cases c ON c.id = d.case_id";

pub(super) fn device_of_row(r: &Row) -> Result<DeviceRecord, StoreError> {
    RawDevice {
        device_id: r.get(0),
        public_key: r.get(1),
        case_id: r.get(2),
        case_name: r.get(3),
        role: r.get(4),
        enrolled_at: r.get(5),
        revoked_at: r.get(6),
    }
    .into_record()
}

pub(super) fn device_by_id(
    conn: &mut impl GenericClient,
    id: &DeviceId,
) -> Result<Option<DeviceRecord>, StoreError> {
    conn.query_opt(
        &format!("{DEVICE_SELECT} WHERE d.device_id = $1"),
        &[&id.as_str()],
    )?
    .as_ref()
    .map(device_of_row)
    .transpose()
}

/// The enrolled device of `case_id` whose public key this is.
pub(super) fn member_by_key(
    conn: &mut impl GenericClient,
    case_id: &str,
    key: &PublicKey,
) -> Result<Option<Member>, StoreError> {
    let row = conn.query_opt(
        "SELECT device_id, role, revoked_at FROM devices WHERE public_key = $1 AND case_id = $2",
        &[&&key.as_bytes()[..], &case_id],
    )?;
    row.map(|r| {
        Ok(Member {
            device: parse_stored(&r.get::<_, String>(0), "device id")?,
            role: parse_stored(&r.get::<_, String>(1), "device role")?,
            revoked: r.get::<_, Option<String>>(2).is_some(),
        })
    })
    .transpose()
}

fn case_by_name(
    conn: &mut impl GenericClient,
    name: &str,
) -> Result<Option<CaseRecord>, StoreError> {
    conn.query_opt(
        "SELECT id, name, created_at, timezone FROM cases WHERE name = $1",
        &[&name],
    )?
    .map(|r| {
        Ok(CaseRecord {
            id: parse_stored(&r.get::<_, String>(0), "case id")?,
            name: r.get(1),
            created_at: r.get(2),
            timezone: r.get(3),
        })
    })
    .transpose()
}

/// The invite row is locked (`FOR UPDATE`) so that two processes enrolling
/// with one token at once cannot both use it: the second waits, then finds
/// it used.
fn enroll_in_tx(
    conn: &mut postgres::Client,
    token: &str,
    public_key: &PublicKey,
) -> Result<DeviceRecord, StoreError> {
    let mut tx = conn.transaction()?;
    let hash = token_hash(token);
    let invite = tx.query_opt(
        "SELECT case_id, role, expires_at, used_at, used_by FROM invites
         WHERE token_hash = $1 FOR UPDATE",
        &[&hash],
    )?;
    let Some(invite) = invite else {
        return Err(StoreError::InvalidToken);
    };
    let (case_id, role, expires_at): (String, String, String) =
        (invite.get(0), invite.get(1), invite.get(2));
    let used_at: Option<String> = invite.get(3);
    let used_by: Option<String> = invite.get(4);
    let device = public_key.device_id();
    if used_at.is_some() {
        if used_by.as_deref() == Some(device.as_str()) {
            if let Some(record) = device_by_id(&mut tx, &device)? {
                if record.public_key == *public_key && record.revoked_at.is_none() {
                    return Ok(record);
                }
            }
        }
        return Err(StoreError::TokenUsed);
    }
    let expires = DateTime::parse_from_rfc3339(&expires_at)
        .map_err(|_| StoreError::Corrupt(format!("invite expiry {expires_at:?}")))?;
    let now = Utc::now();
    if now >= expires {
        return Err(StoreError::TokenExpired);
    }
    let now = time_text(now);
    tx.execute(
        "UPDATE invites SET used_at = $2, used_by = $3 WHERE token_hash = $1",
        &[&hash, &now, &device.as_str()],
    )?;
    // The unique device id and key decide between two invites used by one
    // device at once.
    let inserted = tx.execute(
        "INSERT INTO devices (device_id, public_key, case_id, role, enrolled_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT DO NOTHING",
        &[
            &device.as_str(),
            &&public_key.as_bytes()[..],
            &case_id,
            &role,
            &now,
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::AlreadyEnrolled(device));
    }
    let record = device_by_id(&mut tx, &device)?
        .ok_or_else(|| StoreError::Corrupt(format!("device {device} vanished while enrolling")))?;
    write_audit(
        &mut tx,
        "enroll",
        Some(&device),
        &format!(
            "case {} role {} token sha256 {}",
            record.case_name,
            role,
            &hash[..16]
        ),
    )?;
    tx.commit()?;
    Ok(record)
}

fn insert_invite(
    tx: &mut impl GenericClient,
    case: &CaseRecord,
    role: DeviceRole,
    ttl: Duration,
    by: Option<&DeviceId>,
) -> Result<(String, String), StoreError> {
    let token = random_token()?;
    let token_hash = token_hash(&token);
    let created = Utc::now();
    let ttl = chrono::Duration::from_std(ttl.min(MAX_INVITE_TTL))
        .map_err(|_| StoreError::Corrupt("invite lifetime out of range".into()))?;
    let expires_at = time_text(created + ttl);
    tx.execute(
        "INSERT INTO invites (token_hash, case_id, role, created_at, expires_at, used_at, used_by)
         VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
        &[
            &token_hash,
            &case.id.as_str(),
            &role.as_str(),
            &time_text(created),
            &expires_at,
        ],
    )?;
    write_audit(
        tx,
        "invite",
        by,
        &format!(
            "case {} role {} expires {expires_at} token sha256 {}",
            case.name,
            role.as_str(),
            &token_hash[..16]
        ),
    )?;
    Ok((token, expires_at))
}

/// Appends to the audit log, with the device's case when it has one.
pub(super) fn write_audit(
    conn: &mut impl GenericClient,
    event: &str,
    device: Option<&DeviceId>,
    detail: &str,
) -> Result<(), StoreError> {
    let device = device.map(DeviceId::as_str);
    // Looked up first rather than in the insert: a distributed table's
    // case must be a value when the insert is planned (Citus). An event
    // of no enrolled device is filed under the empty case id.
    let case: String = match device {
        Some(id) => conn
            .query_opt("SELECT case_id FROM devices WHERE device_id = $1", &[&id])?
            .map(|r| r.get(0))
            .unwrap_or_default(),
        None => String::new(),
    };
    conn.execute(
        "INSERT INTO audit_log (case_id, at, event, device_id, detail)
         VALUES ($1, $2, $3, $4, $5)",
        &[&case, &now_text(), &event, &device, &detail],
    )?;
    Ok(())
}
