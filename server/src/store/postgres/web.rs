//! The review web app's sessions on PostgreSQL; see `store/web.rs`. The
//! certificate's nonce is unique in the table, so a login link works once
//! whichever process opens it.

use fieldsync_core::web_login::LoginCertificate;

use super::membership::{device_by_id, write_audit};
use super::PgStore;
use crate::store::error::StoreError;
use crate::store::sql::{now_text, random_token, token_hash};
use crate::store::web::may_log_in;
use crate::store::{LoginRefusal, NewWebSession, WebSession};

impl PgStore {
    pub fn start_web_session(
        &self,
        cert: &LoginCertificate,
        now: i64,
    ) -> Result<Result<NewWebSession, LoginRefusal>, StoreError> {
        let mut conn = self.conn()?;
        let device_id = cert.device.device_id();
        // Refused before any write: anyone can make such a link.
        if !matches!(device_by_id(&mut *conn, &device_id)?, Some(d) if d.public_key == cert.device)
        {
            return Ok(Err(LoginRefusal::UnknownDevice));
        }
        let mut tx = conn.transaction()?;
        let device = match may_log_in(device_by_id(&mut tx, &device_id)?, cert, now) {
            Ok(d) => d,
            Err(why) => {
                write_audit(
                    &mut tx,
                    "web-login-refused",
                    Some(&device_id),
                    &why.to_string(),
                )?;
                tx.commit()?;
                return Ok(Err(why));
            }
        };
        tx.execute(
            "DELETE FROM web_sessions WHERE case_id = $1 AND expires_at < $2",
            &[&device.case_id.as_str(), &now],
        )?;
        let cookie = random_token()?;
        let csrf = random_token()?;
        let expires_at = i64::try_from(cert.session_until).unwrap_or(i64::MAX);
        // The unique nonce decides between two processes opening one link.
        let inserted = tx.execute(
            "INSERT INTO web_sessions (cookie_hash, case_id, device_id, session_key, certificate,
                                       nonce, csrf, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (nonce) DO NOTHING",
            &[
                &token_hash(&cookie),
                &device.case_id.as_str(),
                &device_id.as_str(),
                &hex::encode(cert.session.as_bytes()),
                &cert.to_bytes(),
                &hex::encode(cert.nonce),
                &csrf,
                &now_text(),
                &expires_at,
            ],
        )?;
        if inserted == 0 {
            let why = LoginRefusal::Used;
            write_audit(
                &mut tx,
                "web-login-refused",
                Some(&device_id),
                &why.to_string(),
            )?;
            tx.commit()?;
            return Ok(Err(why));
        }
        write_audit(
            &mut tx,
            "web-login",
            Some(&device_id),
            "review session started",
        )?;
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

    pub fn web_session(&self, cookie: &str, now: i64) -> Result<Option<WebSession>, StoreError> {
        let mut conn = self.conn()?;
        let Some(row) = conn.query_opt(
            "SELECT device_id, certificate, csrf, expires_at FROM web_sessions
             WHERE cookie_hash = $1 AND ended_at IS NULL AND expires_at >= $2",
            &[&token_hash(cookie), &now],
        )?
        else {
            return Ok(None);
        };
        let certificate = LoginCertificate::parse(&row.get::<_, Vec<u8>>(1))
            .map_err(|e| StoreError::Corrupt(format!("a stored login certificate: {e}")))?;
        let device_id = row
            .get::<_, String>(0)
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("a web session's device id: {e}")))?;
        let Some(device) = device_by_id(&mut *conn, &device_id)? else {
            return Ok(None);
        };
        if device.revoked_at.is_some() {
            return Ok(None);
        }
        Ok(Some(WebSession {
            device,
            session_key: certificate.session,
            certificate,
            csrf: row.get(2),
            expires_at: row.get(3),
        }))
    }

    pub fn end_web_session(&self, cookie: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE web_sessions SET ended_at = $2 WHERE cookie_hash = $1 AND ended_at IS NULL",
            &[&token_hash(cookie), &now_text()],
        )?;
        Ok(())
    }
}
