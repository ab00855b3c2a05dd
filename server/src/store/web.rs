//! The review web app's part of the store: browser sessions started from a
//! device's login certificate, and a report with its stored history.
//!
//! A session row keeps a hash of the cookie, never the cookie itself, so a
//! copy of the database does not let anyone in. The certificate's nonce is
//! unique, which makes a login link work once.

use fieldsync_core::model::DeviceRole;
use fieldsync_core::web_login::LoginCertificate;
use fieldsync_core::{CaseId, PublicKey, ReportId};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::audit::write_audit;
use super::error::StoreError;
use super::membership::{device_by_id, DeviceRecord};
use super::pool::Store;
use super::sql::{now_text, random_token, token_hash};

/// Why a login link was refused. Shown to the person who opened it, with
/// what to run added by the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefusal {
    #[error("the device that made this link is not enrolled on this server")]
    UnknownDevice,
    #[error("the device that made this link was revoked; it can no longer open review sessions")]
    Revoked,
    #[error("only a coordinator's device can open the review app; this link was made on a reporter's device")]
    NotCoordinator,
    #[error("this login link has expired (links work for a few minutes)")]
    Expired,
    #[error("this login link was already used")]
    Used,
}

/// A live browser session.
#[derive(Clone, Debug)]
pub struct WebSession {
    pub device: DeviceRecord,
    /// The session's own key: the actor of its changes.
    pub session_key: PublicKey,
    pub certificate: LoginCertificate,
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A session just started, with the cookie value the browser keeps.
#[derive(Debug)]
pub struct NewWebSession {
    pub cookie: String,
    pub session: WebSession,
}

/// One stored change of a report, as received.
#[derive(Clone, Debug)]
pub struct StoredChange {
    pub bytes: Vec<u8>,
    pub signature: Vec<u8>,
    pub received_at: String,
}

/// A report's document and its changes in the order the server received them.
#[derive(Clone, Debug)]
pub struct StoredReport {
    pub snapshot: Vec<u8>,
    pub creator: String,
    pub changes: Vec<StoredChange>,
}

/// The device a login certificate opens a session for, or why it does
/// not: it must be the certificate's device, unrevoked, a coordinator,
/// and the link unexpired at `now`.
pub(super) fn may_log_in(
    device: Option<DeviceRecord>,
    cert: &LoginCertificate,
    now: i64,
) -> Result<DeviceRecord, LoginRefusal> {
    match device {
        None => Err(LoginRefusal::UnknownDevice),
        Some(d) if d.public_key != cert.device => Err(LoginRefusal::UnknownDevice),
        Some(d) if d.revoked_at.is_some() => Err(LoginRefusal::Revoked),
        Some(d) if d.role != DeviceRole::Coordinator => Err(LoginRefusal::NotCoordinator),
        Some(_) if cert.login_until < now.max(0) as u64 => Err(LoginRefusal::Expired),
        Some(d) => Ok(d),
    }
}

impl Store {
    /// Starts a session for a verified login certificate: the device must be
    /// an enrolled, unrevoked coordinator, the link unexpired and unused.
    /// Expired sessions are swept on the way.
    pub fn start_web_session(
        &self,
        cert: &LoginCertificate,
        now: i64,
    ) -> Result<Result<NewWebSession, LoginRefusal>, StoreError> {
        let mut conn = self.conn()?;
        let device_id = cert.device.device_id();
        // A link certified by a key this server does not know is refused
        // before the write lock and leaves no row: anyone can make one.
        if !matches!(device_by_id(&conn, &device_id)?, Some(d) if d.public_key == cert.device) {
            return Ok(Err(LoginRefusal::UnknownDevice));
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM web_sessions WHERE expires_at < ?1", [now])?;
        let device = match may_log_in(device_by_id(&tx, &device_id)?, cert, now) {
            Ok(d) => d,
            Err(why) => {
                write_audit(&tx, "web-login-refused", Some(&device_id), &why.to_string())?;
                tx.commit()?;
                return Ok(Err(why));
            }
        };
        let nonce = hex::encode(cert.nonce);
        let used: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM web_sessions WHERE nonce = ?1",
                [&nonce],
                |r| r.get(0),
            )
            .optional()?;
        if used.is_some() {
            let why = LoginRefusal::Used;
            write_audit(&tx, "web-login-refused", Some(&device_id), &why.to_string())?;
            tx.commit()?;
            return Ok(Err(why));
        }
        let cookie = random_token()?;
        let csrf = random_token()?;
        let expires_at = i64::try_from(cert.session_until).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO web_sessions (cookie_hash, device_id, session_key, certificate, nonce,
                                       csrf, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                token_hash(&cookie),
                device_id.as_str(),
                hex::encode(cert.session.as_bytes()),
                cert.to_bytes(),
                nonce,
                csrf,
                now_text(),
                expires_at,
            ],
        )?;
        write_audit(&tx, "web-login", Some(&device_id), "review session started")?;
        tx.commit()?;
        Ok(Ok(NewWebSession {
            cookie,
            session: WebSession {
                device,
                session_key: cert.session,
                certificate: cert.clone(),
                csrf,
                expires_at,
            },
        }))
    }

    /// The live session a cookie belongs to; `None` when there is none, it
    /// ended or expired, or its device was revoked since.
    pub fn web_session(&self, cookie: &str, now: i64) -> Result<Option<WebSession>, StoreError> {
        let conn = self.conn()?;
        let row: Option<(String, Vec<u8>, String, i64)> = conn
            .query_row(
                "SELECT device_id, certificate, csrf, expires_at FROM web_sessions
                 WHERE cookie_hash = ?1 AND ended_at IS NULL AND expires_at >= ?2",
                params![token_hash(cookie), now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((device_id, certificate, csrf, expires_at)) = row else {
            return Ok(None);
        };
        let certificate = LoginCertificate::parse(&certificate)
            .map_err(|e| StoreError::Corrupt(format!("a stored login certificate: {e}")))?;
        let device_id = device_id
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("a web session's device id: {e}")))?;
        let Some(device) = device_by_id(&conn, &device_id)? else {
            return Ok(None);
        };
        if device.revoked_at.is_some() {
            return Ok(None);
        }
        Ok(Some(WebSession {
            device,
            session_key: certificate.session,
            certificate,
            csrf,
            expires_at,
        }))
    }

    /// Ends a session (logout). Ending an unknown session is not an error.
    pub fn end_web_session(&self, cookie: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE web_sessions SET ended_at = ?2 WHERE cookie_hash = ?1 AND ended_at IS NULL",
            params![token_hash(cookie), now_text()],
        )?;
        Ok(())
    }

    /// A report of `case` with its changes as received, for the review app.
    pub fn report_with_history(
        &self,
        case: &CaseId,
        id: &ReportId,
    ) -> Result<Option<StoredReport>, StoreError> {
        let conn = self.conn()?;
        let doc: Option<(Vec<u8>, String)> = conn
            .query_row(
                "SELECT snapshot, creator FROM documents WHERE id = ?1 AND case_id = ?2",
                params![id.as_str(), case.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((snapshot, creator)) = doc else {
            return Ok(None);
        };
        let mut stmt = conn.prepare_cached(
            "SELECT bytes, signature, received_at FROM changes
             WHERE doc_id = ?1 AND case_id = ?2 ORDER BY seq",
        )?;
        let changes = stmt
            .query_map(params![id.as_str(), case.as_str()], |r| {
                Ok(StoredChange {
                    bytes: r.get(0)?,
                    signature: r.get(1)?,
                    received_at: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(StoredReport {
            snapshot,
            creator,
            changes,
        }))
    }
}
