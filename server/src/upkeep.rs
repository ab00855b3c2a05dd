//! Upkeep off the request path, each job on a thread of its own that
//! ends once the server's store is dropped: the audit log is pruned to
//! `--audit-retention-days` at start and then every hour, the count of
//! unauthenticated refusals left out of the log is written once its
//! minute is over (`refusal_log.rs`), and expired uploads are swept
//! (`tus.rs`) at start and then every [`sweep_interval`].

use std::sync::Weak;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::blob_store::BlobStore;
use crate::store::{MembershipStore, ServerStorage};
use crate::tus::{sweep, sweep_interval};

/// How often old audit rows are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const TICK: Duration = Duration::from_secs(60);

/// Deletes audit rows older than `retention_days`; logs what it did.
pub fn prune<S: MembershipStore + ?Sized>(store: &S, retention_days: u32) {
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
pub fn spawn_upkeep(store: Weak<dyn ServerStorage>, retention_days: u32) {
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
                let Some(store) = store.upgrade() else {
                    return;
                };
                prune(store.as_ref(), retention_days);
                pruned = Instant::now();
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the audit upkeep; the audit log is pruned only at start");
    }
}

/// The sweep that runs before the server serves.
pub fn sweep_at_start(store: &dyn ServerStorage, blobs: &BlobStore) {
    match sweep(store, blobs, true) {
        Ok((expired, strays)) => {
            tracing::info!(
                expired,
                strays,
                "removed expired uploads and stray partial files"
            )
        }
        Err(error) => tracing::error!(%error, "sweeping uploads at start failed"),
    }
}

/// Sweeps every [`sweep_interval`] on a thread of its own until the
/// server's store is gone.
pub fn spawn_sweeper(store: Weak<dyn ServerStorage>, blobs: BlobStore, expiry_secs: u64) {
    let interval = sweep_interval(expiry_secs);
    let spawned = std::thread::Builder::new()
        .name("upload-sweeper".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let Some(store) = store.upgrade() else {
                return;
            };
            match sweep(store.as_ref(), &blobs, false) {
                Ok((0, _)) => {}
                Ok((expired, _)) => tracing::info!(expired, "removed expired uploads"),
                Err(error) => tracing::error!(%error, "sweeping expired uploads failed"),
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the upload sweeper; expired uploads are removed only at start");
    }
}
