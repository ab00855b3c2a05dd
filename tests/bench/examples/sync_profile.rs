//! The server's half of the `sync` benchmark's workload, in one process and
//! split into its stages, for profiling (`perf record`, `valgrind
//! --tool=callgrind`) without HTTP or device processes in the way:
//!
//! ```text
//! cargo run --release -p fieldsync-bench --example sync_profile -- [DEVICES REPORTS EDITS]
//! ```
//!
//! Builds a store with one case, enrolls DEVICES replicas in it, fills each
//! with REPORTS reports of EDITS edits (outside the clock), takes each
//! device's first request, then times verifying every request and applying
//! them, and prints µs per change for each stage.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::protocol::{SyncRequest, DEFAULT_MAX_REQUEST_BYTES};
use fieldsync_core::replica::Replica;
use fieldsync_core::sync::memory::MemoryStore;
use fieldsync_core::sync::server::{apply_request, verify_request, ServerLimits, VerifiedRequest};
use fieldsync_server::Store;

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("DEVICES REPORTS EDITS are numbers"))
        .collect::<Result<_>>()?;
    let (devices, reports, edits) = match args[..] {
        [d, r, e] => (d, r, e),
        [] => (20, 250, 10),
        _ => anyhow::bail!("usage: sync_profile [DEVICES REPORTS EDITS]"),
    };
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("server"))?;
    let case = store.create_case("bench")?;
    let mut work = Vec::new();
    for i in 0..devices {
        let mut replica = Replica::open(&dir.path().join(format!("device-{i}")))?;
        replica.init_identity()?;
        let key = replica.device_key()?.context("identity")?;
        let token =
            store.create_invite("bench", DeviceRole::Reporter, Duration::from_secs(3600))?;
        let device = store.enroll(&token, &key.public_key())?;
        replica.set_meta("case_id", case.id.as_str())?;
        fieldsync_tests::fill_sync_workload(&mut replica, &case.id, reports, edits);
        let plan = replica.prepare_sync(DEFAULT_MAX_REQUEST_BYTES)?;
        work.push((device, plan.request));
    }
    let changes: usize = work.iter().map(|(_, r)| count(r)).sum();
    eprintln!("{changes} changes in {} requests", work.len());

    let started = Instant::now();
    let verified: Vec<VerifiedRequest> = work
        .iter()
        .map(|(_, request)| verify_request(request.clone()))
        .collect::<Result<_, _>>()?;
    let verify = started.elapsed();

    // The core's algorithm over its in-memory store: what the apply costs
    // with no SQLite.
    let mut memory = MemoryStore::new(case.id.as_str());
    for (device, _) in &work {
        memory.enroll(device.public_key, DeviceRole::Reporter);
    }
    let again: Vec<VerifiedRequest> = work
        .iter()
        .map(|(_, request)| verify_request(request.clone()))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for ((device, _), request) in work.iter().zip(again) {
        apply_request(&mut memory, &device.member(), &request.docs, None)?;
    }
    let core = started.elapsed();

    let started = Instant::now();
    for ((device, _), request) in work.iter().zip(verified) {
        store.sync_verified(device, request, ServerLimits::default(), None)?;
    }
    let apply = started.elapsed();

    let per = |d: Duration| d.as_secs_f64() * 1e6 / changes as f64;
    println!(
        "verify: {:.2} s, {:.1} µs/change",
        verify.as_secs_f64(),
        per(verify)
    );
    println!(
        "core apply, memory store: {:.2} s, {:.1} µs/change",
        core.as_secs_f64(),
        per(core)
    );
    println!(
        "apply + commit: {:.2} s, {:.1} µs/change",
        apply.as_secs_f64(),
        per(apply)
    );
    let total = verify + apply;
    println!(
        "total: {:.2} s, {:.0} changes/s",
        total.as_secs_f64(),
        changes as f64 / total.as_secs_f64()
    );
    Ok(())
}

fn count(request: &SyncRequest) -> usize {
    request.docs.iter().map(|d| d.changes.len()).sum()
}
