//! The device home as every device command opens it: the replica, its
//! passphrase prompt, and the enrollment it keeps.

use std::path::Path;

use anyhow::{Context, Result};
use fieldsync_core::export::UnreadableReport;
use fieldsync_core::replica::Replica;

pub use fieldsync_core::device::Enrollment;

/// Opens the device home: says what of it others could read (it is then
/// made owner-only), and asks for its passphrase when a key is first needed.
pub fn open(home: &Path) -> Result<Replica> {
    let mut replica = Replica::open(home)
        .with_context(|| format!("cannot open the device home {}", home.display()))?;
    for tightened in replica.tightened() {
        eprintln!("warning: {tightened}");
    }
    replica.set_passphrase_source(crate::passphrase::source(home));
    Ok(replica)
}

/// The case this device is enrolled in.
pub fn enrollment(replica: &Replica) -> Result<Enrollment> {
    Ok(Enrollment::load(replica)?)
}

/// Refuses a command naming another case than this device's.
pub fn check_case(enrollment: &Enrollment, name: &str) -> Result<()> {
    Ok(enrollment.check_case(name)?)
}

/// Says on stderr which reports this device holds but cannot read, so a
/// listing or an export that goes on without them does not hide them.
pub fn warn_unreadable(unreadable: &[UnreadableReport]) {
    for u in unreadable {
        eprintln!(
            "warning: report {} cannot be read on this device and is left out: {}; update fieldsync, or ask a coordinator to correct the report",
            u.id, u.reason
        );
    }
}
