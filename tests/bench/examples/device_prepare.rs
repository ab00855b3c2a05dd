//! How long a device takes to build its sync request: the `sync` benchmark's
//! device side, for one device, without a server.
//!
//! ```text
//! cargo run --release -p fieldsync-bench --example device_prepare -- [REPORTS EDITS]
//! ```

use std::time::Instant;

use anyhow::{Context, Result};
use fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES;
use fieldsync_core::replica::Replica;
use fieldsync_core::CaseId;

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("REPORTS EDITS are numbers"))
        .collect::<Result<_>>()?;
    let (reports, edits) = match args[..] {
        [r, e] => (r, e),
        _ => (250, 10),
    };
    let dir = tempfile::tempdir()?;
    let mut replica = Replica::open(dir.path())?;
    replica.init_identity()?;
    let case: CaseId = "0123456789abcdef0123456789abcdef".parse()?;
    replica.set_meta("case_id", case.as_str())?;
    let changes = fieldsync_tests::fill_sync_workload(&mut replica, &case, reports, edits);
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
