//! Small conversions between Rust values and the text and integers the
//! database stores, shared by every part of the store.

use std::fmt::Display;
use std::str::FromStr;

use automerge::ChangeHash;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use ring::rand::{SecureRandom, SystemRandom};

use super::error::StoreError;

/// A byte count as SQLite stores it (a signed 64-bit integer).
pub(super) fn sql_length(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("length {n} is over 2^63")))
}

/// A byte count read back from SQLite.
pub(super) fn sql_size(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("stored length {n}")))
}

/// 256 random bits, base64url: invite tokens, session cookies, CSRF tokens.
pub(super) fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

pub(super) fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Now, RFC 3339 UTC with fixed-width microseconds, so text order is time order.
pub(super) fn now_text() -> String {
    time_text(Utc::now())
}

pub(super) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An instant in UTC with fixed-width nanoseconds, so text order is time order.
pub(super) fn sortable_utc(t: &DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

pub(super) fn format_heads(heads: &[ChangeHash]) -> String {
    fieldsync_core::heads::format(heads)
}

pub(super) fn parse_heads(text: &str) -> Result<Vec<ChangeHash>, StoreError> {
    fieldsync_core::heads::parse(text)
        .map_err(|h| StoreError::Corrupt(format!("stored head {h:?}")))
}

/// Parses a value read back from the database.
pub(super) fn parse_stored<T>(text: &str, what: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("stored {what} {:?}: {e}", shorten(text))))
}

pub(super) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

/// At most 80 characters of a value from outside, for an error message.
pub(super) fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

pub(super) fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
