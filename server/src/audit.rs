//! Upkeep off the request path: the audit log is pruned to
//! `--audit-retention-days` at start and then every hour, and the count of
//! unauthenticated refusals left out of the log is written once its
//! minute is over (`refusal_log.rs`).

use std::sync::Weak;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::http::AppState;
use crate::store::Store;

/// How often old audit rows are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const TICK: Duration = Duration::from_secs(60);

/// Deletes audit rows older than `retention_days`; logs what it did.
pub fn prune(store: &Store, retention_days: u32) {
    let before = Utc::now() - chrono::Duration::days(i64::from(retention_days));
    match store.prune_audit_log(before) {
        Ok(0) => {}
        Ok(deleted) => {
            tracing::info!(
                deleted,
                retention_days,
                "removed audit log rows past the retention"
            )
        }
        Err(error) => tracing::error!(%error, "pruning the audit log failed"),
    }
}

/// Runs the upkeep on a thread of its own until the server's state is gone.
pub fn spawn_upkeep(state: Weak<AppState>) {
    let spawned = std::thread::Builder::new()
        .name("audit-upkeep".into())
        .spawn(move || {
            let mut pruned = Instant::now();
            loop {
                std::thread::sleep(TICK);
                crate::refusal_log::flush();
                if pruned.elapsed() < PRUNE_EVERY {
                    continue;
                }
                let Some(state) = state.upgrade() else {
                    return;
                };
                prune(&state.store, state.config.audit_retention_days);
                pruned = Instant::now();
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the audit upkeep; the audit log is pruned only at start");
    }
}
