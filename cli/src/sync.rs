//! `fieldsync sync`: a full sync (the core's order), then the case keys,
//! and what happened, printed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use fieldsync_core::device::{Device, SyncAll, SyncEvent};

use crate::client::{client_of, say_clock_offset};
use crate::hints;
use crate::home::open;
use crate::progress::Bar;

pub fn sync(home: &Path, json: bool, max_request_bytes: usize) -> Result<ExitCode> {
    let mut device = Device::new(open(home)?);
    let enrollment = device.enrollment()?;
    let client = client_of(device.replica(), &enrollment.server)?;
    let progress = Bar::new(json, "uploading");
    let synced = device.sync_all(
        &client,
        max_request_bytes,
        &progress,
        &mut |event| match event {
            SyncEvent::Round(round) => {
                if !json {
                    eprintln!(
                        "  round: sent {}, received {}, new reports {}",
                        round.sent, round.received, round.new_reports
                    );
                }
            }
            SyncEvent::ClockOffset(offset) => say_clock_offset(offset),
            SyncEvent::RosterFailed(e) => {
                eprintln!("warning: could not refresh the case's device list: {e}")
            }
            SyncEvent::OtherCaseInfo => {
                eprintln!("warning: the server answered with another case's details")
            }
            SyncEvent::SaltFailed(e) => {
                eprintln!("warning: could not fetch the case's import salt: {e}")
            }
        },
    )?;
    let SyncAll {
        changes: summary,
        mut uploads,
    } = synced;
    for failed in &mut uploads.failed {
        if failed.damaged_locally {
            failed.error.push_str(hints::REATTACH);
        }
    }
    let replica = device.replica_mut();
    // After the changes, so a sync stays one round trip for them: publish
    // this coordinator's keys, or take the case's newest public key.
    let case_keys = crate::keys::refresh(replica, &client, &enrollment)?;
    if json {
        let mut out = serde_json::to_value(&summary)?;
        out["attachments"] = serde_json::to_value(&uploads)?;
        out["case_keys"] = serde_json::to_value(&case_keys)?;
        out["http"] = serde_json::to_value(client.traffic.get())?;
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "synced with {}: sent {} changes, received {} ({} new reports) in {} rounds",
            enrollment.server, summary.sent, summary.received, summary.new_reports, summary.rounds
        );
        for r in &summary.refused {
            println!(
                "refused change {} of report {}: {}",
                r.change, r.report, r.message
            );
        }
        if uploads.uploaded > 0 {
            println!(
                "uploaded {} attachments ({} bytes, encrypted)",
                uploads.uploaded, uploads.bytes
            );
        }
        for f in &uploads.failed {
            let next = if f.will_retry {
                "it stays on this device; the next `fieldsync sync` resumes it"
            } else {
                "it stays on this device, but sync will not get it through until the cause above is dealt with"
            };
            println!(
                "attachment {} of report {} not uploaded: {}\n  {next}",
                f.attachment, f.report, f.error
            );
        }
    }
    Ok(if !summary.refused.is_empty() {
        ExitCode::from(3)
    } else if !uploads.failed.is_empty() {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    })
}
