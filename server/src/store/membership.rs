//! Cases, invites, enrolled devices and request nonces.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::sync::policy::Member;
use fieldsync_core::{CaseId, DeviceId, PublicKey};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::audit::write_audit;
use super::error::{StoreError, MAX_CASE_NAME_BYTES};
use super::pool::Store;
use super::sql::{now_text, parse_stored, random_token, shorten, time_text, token_hash};

/// Longest invite lifetime; longer requests are cut to it.
pub(super) const MAX_INVITE_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A case as the server knows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseRecord {
    pub id: CaseId,
    pub name: String,
    pub created_at: String,
    /// The zone imports read times without an offset in (an IANA name or
    /// an offset such as `+06:00`), checked by the caller; `None` when the
    /// case has none.
    pub timezone: Option<String>,
}

/// An enrolled device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeviceRecord {
    pub device_id: DeviceId,
    #[serde(skip)]
    pub public_key: PublicKey,
    pub public_key_hex: String,
    pub case_id: CaseId,
    pub case_name: String,
    pub role: DeviceRole,
    /// RFC 3339, UTC.
    pub enrolled_at: String,
    /// RFC 3339, UTC; set once, at the first revocation.
    pub revoked_at: Option<String>,
}

impl DeviceRecord {
    /// The device as the sync policy sees it.
    pub fn member(&self) -> Member {
        Member {
            device: self.device_id.clone(),
            role: self.role,
            revoked: self.revoked_at.is_some(),
        }
    }
}

impl Store {
    /// Creates a case under a new random id. Names are unique.
    pub fn create_case(&self, name: &str) -> Result<CaseRecord, StoreError> {
        self.create_case_in_zone(name, None)
    }

    /// Creates a case with a time zone (already checked as one by the
    /// caller: the store knows no zone names), in one transaction.
    pub fn create_case_in_zone(
        &self,
        name: &str,
        timezone: Option<&str>,
    ) -> Result<CaseRecord, StoreError> {
        validate_case_name(name)?;
        let id = CaseId::random().map_err(|_| StoreError::Random)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if case_by_name(&tx, name)?.is_some() {
            return Err(StoreError::CaseExists(name.to_owned()));
        }
        let record = CaseRecord {
            id,
            name: name.to_owned(),
            created_at: now_text(),
            timezone: timezone.map(str::to_owned),
        };
        tx.execute(
            "INSERT INTO cases (id, name, created_at, import_salt, timezone)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                record.id.as_str(),
                record.name,
                record.created_at,
                random_token()?,
                record.timezone,
            ],
        )?;
        write_audit(
            &tx,
            "case-create",
            None,
            &format!("case {} ({})", name, record.id),
        )?;
        tx.commit()?;
        Ok(record)
    }

    /// Sets or clears a case's time zone; devices learn it on their next
    /// sync.
    pub fn set_case_timezone(
        &self,
        name: &str,
        timezone: Option<&str>,
    ) -> Result<CaseRecord, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(mut record) = case_by_name(&tx, name)? else {
            return Err(StoreError::UnknownCase(name.to_owned()));
        };
        tx.execute(
            "UPDATE cases SET timezone = ?2 WHERE id = ?1",
            params![record.id.as_str(), timezone],
        )?;
        write_audit(
            &tx,
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

    /// A case's time zone, by id: what a sync answer tells devices.
    pub fn case_timezone(&self, case: &CaseId) -> Result<Option<String>, StoreError> {
        let conn = self.conn()?;
        let zone = conn
            .prepare_cached("SELECT timezone FROM cases WHERE id = ?1")?
            .query_row([case.as_str()], |r| r.get::<_, Option<String>>(0))
            .optional()?;
        Ok(zone.flatten())
    }

    pub fn case_by_name(&self, name: &str) -> Result<Option<CaseRecord>, StoreError> {
        let conn = self.conn()?;
        case_by_name(&conn, name)
    }

    /// Makes a one-time enrollment token for `case_name`, valid for `ttl`
    /// (at most a hundred years). Only the token's SHA-256 is stored: the
    /// token itself exists only in what this returns.
    pub fn create_invite(
        &self,
        case_name: &str,
        role: DeviceRole,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let case = case_by_name(&tx, case_name)?
            .ok_or_else(|| StoreError::UnknownCase(case_name.to_owned()))?;
        let (token, _) = insert_invite(&tx, &case, role, ttl, None)?;
        tx.commit()?;
        Ok(token)
    }

    /// The case's import salt: a secret that coordinators' devices mix into
    /// the ids of imported reports, so that no reporter can compute an id
    /// an import will use and take it first. Only for coordinators.
    pub fn import_salt(&self, case: &CaseId) -> Result<String, StoreError> {
        let conn = self.conn()?;
        let salt: Option<String> = conn
            .query_row(
                "SELECT import_salt FROM cases WHERE id = ?1",
                [case.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        salt.ok_or_else(|| StoreError::UnknownCase(case.to_string()))
    }

    /// Enrolls the device whose key this is with a one-time token. A
    /// refusal of a token this server issued (used, expired) is recorded in
    /// the audit log too, in a write of its own: it shows an invite in the
    /// wrong hands. A made-up token is not: anyone can send one, so a write
    /// for it would cost the sender nothing (the caller logs it instead).
    pub fn enroll(&self, token: &str, public_key: &PublicKey) -> Result<DeviceRecord, StoreError> {
        let mut conn = self.conn()?;
        let device = public_key.device_id();
        let result = enroll_in_tx(&mut conn, token, public_key);
        if let Err(e) = &result {
            if let Some(reason) = enroll_refusal(e) {
                if let Err(audit_error) =
                    write_audit(&conn, "enroll-refused", Some(&device), reason)
                {
                    tracing::warn!(device = %device, error = %audit_error, "could not audit a refused enrollment");
                }
            }
        }
        result
    }

    /// Enrolled devices, of one case or of all, oldest first.
    pub fn devices(&self, case_name: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError> {
        let conn = self.conn()?;
        let raw = match case_name {
            None => {
                let mut stmt = conn.prepare(&format!(
                    "{DEVICE_SELECT} ORDER BY d.enrolled_at, d.device_id"
                ))?;
                let rows = stmt
                    .query_map([], RawDevice::from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            }
            Some(name) => {
                let case = case_by_name(&conn, name)?
                    .ok_or_else(|| StoreError::UnknownCase(name.to_owned()))?;
                let mut stmt = conn.prepare(&format!(
                    "{DEVICE_SELECT} WHERE d.case_id = ?1 ORDER BY d.enrolled_at, d.device_id"
                ))?;
                let rows = stmt
                    .query_map([case.id.as_str()], RawDevice::from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            }
        };
        raw.into_iter().map(RawDevice::into_record).collect()
    }

    pub fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        let conn = self.conn()?;
        device_by_id(&conn, id)
    }

    /// Revokes a device: from its next request on it is refused, and changes
    /// it made that the server had not yet seen are refused too. Revoking
    /// twice keeps the first time.
    pub fn revoke(&self, id: &DeviceId) -> Result<DeviceRecord, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_text();
        let updated = tx.execute(
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?2) WHERE device_id = ?1",
            params![id.as_str(), now],
        )?;
        if updated == 0 {
            return Err(StoreError::UnknownDevice(id.clone()));
        }
        let record = device_by_id(&tx, id)?.ok_or_else(|| StoreError::UnknownDevice(id.clone()))?;
        let detail = match &record.revoked_at {
            Some(at) if at != &now => format!("already revoked at {at}"),
            _ => format!("case {}", record.case_name),
        };
        write_audit(&tx, "revoke", Some(id), &detail)?;
        tx.commit()?;
        Ok(record)
    }

    /// Records a request nonce. `true` if it is fresh, `false` if this device
    /// used it before (a replay). Nonces older than twice the window are
    /// forgotten; a timestamp that old can no longer be checked, so it
    /// counts as a replay too (the caller refuses such requests anyway).
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
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM nonces WHERE ts < ?1", [cutoff])?;
        let fresh = timestamp >= cutoff
            && tx.execute(
                "INSERT OR IGNORE INTO nonces (device_id, nonce, ts) VALUES (?1, ?2, ?3)",
                params![device.as_str(), nonce, timestamp],
            )? == 1;
        tx.commit()?;
        Ok(fresh)
    }
}

/// What the audit log says of a refused enrollment: `None` for a token
/// this server never issued, which anyone can send.
pub(super) fn enroll_refusal(e: &StoreError) -> Option<&'static str> {
    match e {
        StoreError::InvalidToken => None,
        StoreError::TokenUsed => Some("token already used"),
        StoreError::TokenExpired => Some("token expired"),
        StoreError::AlreadyEnrolled(_) => Some("device already enrolled"),
        _ => Some("storage failure"),
    }
}

pub(super) const DEVICE_SELECT: &str =
    "SELECT d.device_id, d.public_key, d.case_id, c.name, d.role, d.enrolled_at, d.revoked_at
     FROM devices d JOIN cases c ON c.id = d.case_id";

/// A device row before its fields are checked.
pub(super) struct RawDevice {
    pub(super) device_id: String,
    pub(super) public_key: Vec<u8>,
    pub(super) case_id: String,
    pub(super) case_name: String,
    pub(super) role: String,
    pub(super) enrolled_at: String,
    pub(super) revoked_at: Option<String>,
}

impl RawDevice {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDevice> {
        Ok(RawDevice {
            device_id: r.get(0)?,
            public_key: r.get(1)?,
            case_id: r.get(2)?,
            case_name: r.get(3)?,
            role: r.get(4)?,
            enrolled_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    }

    pub(super) fn into_record(self) -> Result<DeviceRecord, StoreError> {
        let public_key = PublicKey::from_bytes(&self.public_key).map_err(|e| {
            StoreError::Corrupt(format!("public key of device {}: {e}", self.device_id))
        })?;
        Ok(DeviceRecord {
            device_id: parse_stored(&self.device_id, "device id")?,
            public_key_hex: hex::encode(public_key.as_bytes()),
            public_key,
            case_id: parse_stored(&self.case_id, "case id")?,
            case_name: self.case_name,
            role: parse_stored(&self.role, "device role")?,
            enrolled_at: self.enrolled_at,
            revoked_at: self.revoked_at,
        })
    }
}

pub(super) fn device_by_id(
    conn: &Connection,
    id: &DeviceId,
) -> Result<Option<DeviceRecord>, StoreError> {
    conn.prepare_cached(&format!("{DEVICE_SELECT} WHERE d.device_id = ?1"))?
        .query_row([id.as_str()], RawDevice::from_row)
        .optional()?
        .map(RawDevice::into_record)
        .transpose()
}

pub(super) fn case_by_name(
    conn: &Connection,
    name: &str,
) -> Result<Option<CaseRecord>, StoreError> {
    type Row = (String, String, String, Option<String>);
    let row: Option<Row> = conn
        .prepare_cached("SELECT id, name, created_at, timezone FROM cases WHERE name = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(|(id, name, created_at, timezone)| {
        Ok(CaseRecord {
            id: parse_stored(&id, "case id")?,
            name,
            created_at,
            timezone,
        })
    })
    .transpose()
}

pub(super) fn enroll_in_tx(
    conn: &mut Connection,
    token: &str,
    public_key: &PublicKey,
) -> Result<DeviceRecord, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let hash = token_hash(token);
    type Invite = (String, String, String, Option<String>, Option<String>);
    let invite: Option<Invite> = tx
        .query_row(
            "SELECT case_id, role, expires_at, used_at, used_by FROM invites WHERE token_hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((case_id, role, expires_at, used_at, used_by)) = invite else {
        return Err(StoreError::InvalidToken);
    };
    if used_at.is_some() {
        // The same key asking again (its request is signed by that key) is
        // a phone whose first answer was lost on a bad network: answer it
        // again, or it could never learn its case. Nothing is written.
        let device = public_key.device_id();
        if used_by.as_deref() == Some(device.as_str()) {
            if let Some(record) = device_by_id(&tx, &device)? {
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
    let device = public_key.device_id();
    let known: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM devices WHERE device_id = ?1 OR public_key = ?2",
            params![device.as_str(), &public_key.as_bytes()[..]],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_some() {
        return Err(StoreError::AlreadyEnrolled(device));
    }
    let now = time_text(now);
    tx.execute(
        "UPDATE invites SET used_at = ?2, used_by = ?3 WHERE token_hash = ?1",
        params![hash, now, device.as_str()],
    )?;
    tx.execute(
        "INSERT INTO devices (device_id, public_key, case_id, role, enrolled_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
        params![
            device.as_str(),
            &public_key.as_bytes()[..],
            case_id,
            role,
            now
        ],
    )?;
    let record = device_by_id(&tx, &device)?
        .ok_or_else(|| StoreError::Corrupt(format!("device {device} vanished while enrolling")))?;
    write_audit(
        &tx,
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

/// Makes a one-time token for `case` and records its hash, audited as
/// made by `by` (a coordinator's device) or by the operator (`None`).
/// Returns the token and its expiry.
pub(super) fn insert_invite(
    tx: &Connection,
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
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL)",
        params![
            token_hash,
            case.id.as_str(),
            role.as_str(),
            time_text(created),
            expires_at
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

pub(super) fn validate_case_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CASE_NAME_BYTES
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidCaseName(shorten(name)))
    }
}
