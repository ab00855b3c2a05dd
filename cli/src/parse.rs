//! What the user typed, read into library types: times, people, durations.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, FixedOffset};
use fieldsync_core::model::{Person, Role};

/// Parses 90s, 30m, 24h, 7d.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| {
        anyhow!("--expires {text:?}: expected a number and a unit, like 30m, 24h or 7d")
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--expires {text:?}: the unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(secs))
}

pub fn parse_time(flag: &str, text: &str) -> Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).map_err(|e| {
        anyhow!("{flag} {text:?} is not an RFC 3339 time with offset ({e}); write it like 2016-05-21T10:40:00+06:00")
    })
}

pub fn parse_person(text: &str) -> Result<Person> {
    let mut parts = text.splitn(3, ':');
    let name = parts.next().unwrap_or_default().trim();
    let role = parts
        .next()
        .ok_or_else(|| anyhow!("--person {text:?}: write NAME:ROLE[:NOTE]"))?;
    let role: Role = role
        .trim()
        .parse()
        .map_err(|e: String| anyhow!("--person {text:?}: {e}"))?;
    Ok(Person {
        name: name.to_owned(),
        role,
        note: parts.next().unwrap_or_default().trim().to_owned(),
    })
}
