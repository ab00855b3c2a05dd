//! Requests refused before the server knows which enrolled device sent
//! them (an unknown device, a signature that does not verify, a clock out
//! of the window, a replayed nonce, headers that are not a signature, a
//! made-up invite token, a login link no device of this server certified).
//!
//! Anyone can send those, as fast as they like, so they are never written
//! to the database: each would be a write (and a wait for the write lock)
//! that costs the sender nothing. They are logged instead, at most
//! [`LINES_PER_MINUTE`] lines a minute; past that, one line a minute later
//! says how many were left out. The audit log keeps what enrolled devices
//! did and what was refused to them once authenticated.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most lines about unauthenticated refusals logged per minute.
pub const LINES_PER_MINUTE: u32 = 20;

const WINDOW: Duration = Duration::from_secs(60);

/// Logs one unauthenticated refusal, if this minute's budget allows.
/// `claimed` is the device id the request named, unverified. Nothing of
/// a body is ever logged.
pub fn refused(route: &str, claimed: Option<&str>, why: &str) {
    let (log, left_out) = LIMIT.admit(Instant::now());
    if let Some(count) = left_out {
        summary(count);
    }
    if log {
        tracing::warn!(
            route,
            claimed_device = claimed.unwrap_or("-"),
            reason = why,
            "unauthenticated request refused"
        );
    }
}

/// Logs how many refusals were left out, once their minute is over and
/// no further refusal came to trigger it (called by the upkeep thread).
pub fn flush() {
    if let Some(count) = LIMIT.flush(Instant::now()) {
        summary(count);
    }
}

fn summary(count: u64) {
    tracing::warn!(
        count,
        "{count} more unauthenticated requests were refused in the last minute and not logged (at most {LINES_PER_MINUTE} lines a minute)"
    );
}

static LIMIT: RateLimit = RateLimit::new(LINES_PER_MINUTE);

/// A fixed one-minute window: `per_minute` lines, then a count.
struct RateLimit {
    per_minute: u32,
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    logged: u32,
    left_out: u64,
}

impl RateLimit {
    const fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            window: Mutex::new(Window {
                started: None,
                logged: 0,
                left_out: 0,
            }),
        }
    }

    /// Whether to log a refusal at `now`, and the count of refusals left
    /// out in a window that has just ended, to log first.
    fn admit(&self, now: Instant) -> (bool, Option<u64>) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let ended = Self::roll(&mut w, now);
        if w.logged < self.per_minute {
            w.logged += 1;
            (true, ended)
        } else {
            w.left_out += 1;
            (false, ended)
        }
    }

    fn flush(&self, now: Instant) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        Self::roll(&mut w, now)
    }

    /// Starts a new window if the current one is over; returns the count
    /// left out in the one that ended, if any.
    fn roll(w: &mut Window, now: Instant) -> Option<u64> {
        match w.started {
            Some(started) if now.saturating_duration_since(started) < WINDOW => None,
            _ => {
                let left_out = std::mem::take(&mut w.left_out);
                *w = Window {
                    started: Some(now),
                    logged: 0,
                    left_out: 0,
                };
                (left_out > 0).then_some(left_out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_n_lines_a_minute_then_one_count_of_the_rest() {
        let limit = RateLimit::new(3);
        let t0 = Instant::now();
        let logged: Vec<(bool, Option<u64>)> = (0..10)
            .map(|i| limit.admit(t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(logged.iter().filter(|(log, _)| *log).count(), 3);
        assert!(logged[..3].iter().all(|(log, _)| *log));
        assert!(logged.iter().all(|(_, count)| count.is_none()));
        // Within the minute nothing more; after it, the count of the seven
        // left out comes once, with the first line of the new minute.
        assert_eq!(limit.flush(t0 + Duration::from_secs(59)), None);
        assert_eq!(limit.admit(t0 + WINDOW), (true, Some(7)));
        assert_eq!(
            limit.admit(t0 + WINDOW + Duration::from_secs(1)),
            (true, None)
        );
        // A count nobody triggers is flushed by the upkeep thread.
        for i in 0..5 {
            limit.admit(t0 + WINDOW + Duration::from_secs(2 + i));
        }
        assert_eq!(limit.flush(t0 + 2 * WINDOW), Some(4));
        assert_eq!(limit.flush(t0 + 3 * WINDOW), None);
    }
}
