//! How long a device takes to build its sync request: the `sync` benchmark's
//! device side, for one device, without a server.
//!
//! ```text
//! cargo run --release -p fieldsync-bench --example device_prepare -- [REPORTS EDITS]
//! ```

use std::time::Instant;

use anyhow::Result;
use fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES;

fn main() -> Result<()> {
    let (reports, edits) =
        fieldsync_tests::reports_and_edits_from_args().map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    let (replica, changes) = fieldsync_tests::workload_replica(dir.path(), reports, edits);
    for run in 0..3 {
        let started = Instant::now();
        let plan = replica.prepare_sync(DEFAULT_MAX_REQUEST_BYTES)?;
        let took = started.elapsed();
        let sent: usize = plan.request.docs.iter().map(|d| d.changes.len()).sum();
        println!(
            "run {run}: request of {sent} of {changes} changes built in {:.1} ms, {:.1} µs/change",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / sent as f64
        );
    }
    Ok(())
}
