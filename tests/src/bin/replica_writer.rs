//! Test helper: writes changes to a device replica as fast as it can and
//! prints `saved REPORT HASH` after each write returns. The crash test kills
//! it with SIGKILL and checks that every printed change survived.

use std::io::Write;
use std::path::PathBuf;

use chrono::DateTime;
use fieldsync_core::model::Edit;
use fieldsync_core::replica::Replica;
use fieldsync_core::{CaseId, NewReport, ReportId};

fn main() {
    let home: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .expect("usage: replica-writer HOME");
    let mut replica = Replica::open(&home).expect("open replica");
    if replica.device_key().expect("read identity").is_none() {
        replica.init_identity().expect("init identity");
    }
    let case = CaseId::random().expect("random");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut report: Option<ReportId> = None;
    for n in 0u64.. {
        match &report {
            Some(id) if n % 10 != 0 => {
                let hash = replica
                    .edit_report(id, &[Edit::AppendDescription(format!("line {n}. "))])
                    .expect("edit")
                    .expect("a change");
                writeln!(out, "saved {id} {hash}").expect("stdout");
            }
            _ => {
                let new = NewReport::new(
                    ReportId::random().expect("random"),
                    case.clone(),
                    format!("report {n}"),
                    DateTime::parse_from_rfc3339("2016-05-21T10:40:00+06:00").expect("time"),
                );
                let id = replica.create_report(&new).expect("create");
                writeln!(out, "saved {id} created").expect("stdout");
                report = Some(id);
            }
        }
        out.flush().expect("stdout");
    }
}
