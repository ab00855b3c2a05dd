//! Costs of the parts of applying one report's changes on the server, each
//! timed alone over the same reports: a guide for profiling, not a benchmark
//! of record.
//!
//! ```text
//! cargo run --release -p fieldsync-bench --example apply_parts -- [REPORTS EDITS]
//! ```

use std::time::Instant;

use anyhow::Result;
use automerge::{Automerge, Change};
use fieldsync_core::document::{fields_touched, read_report};
use fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES;
use fieldsync_core::signed_change::{check_applicable, PendingObjects};

fn main() -> Result<()> {
    let (reports, edits) =
        fieldsync_tests::reports_and_edits_from_args().map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    let (replica, _) = fieldsync_tests::workload_replica(dir.path(), reports, edits);
    let request = replica
        .prepare_sync(DEFAULT_MAX_REQUEST_BYTES * 64)?
        .request;
    let docs: Vec<Vec<Change>> = request
        .docs
        .iter()
        .map(|d| {
            d.changes
                .iter()
                .map(|c| Change::try_from(c.bytes.as_slice()).expect("change"))
                .collect()
        })
        .collect();
    let n: usize = docs.iter().map(Vec::len).sum();
    let time = |name: &str, f: &mut dyn FnMut()| {
        let started = Instant::now();
        f();
        let e = started.elapsed();
        println!(
            "{name:40} {:8.1} µs/change",
            e.as_secs_f64() * 1e6 / n as f64
        );
    };
    time("parse (Change::try_from)", &mut || {
        for d in &request.docs {
            for c in &d.changes {
                std::hint::black_box(Change::try_from(c.bytes.as_slice()).unwrap());
            }
        }
    });
    time("decode (legacy ops)", &mut || {
        for d in &docs {
            for c in d {
                std::hint::black_box(c.decode());
            }
        }
    });
    time("apply one by one", &mut || {
        for d in &docs {
            let mut doc = Automerge::new();
            for c in d {
                doc.apply_changes([c.clone()]).unwrap();
            }
            std::hint::black_box(doc);
        }
    });
    time("apply as one batch", &mut || {
        for d in &docs {
            let mut doc = Automerge::new();
            doc.apply_changes(d.iter().cloned()).unwrap();
            std::hint::black_box(doc);
        }
    });
    let built: Vec<Automerge> = docs
        .iter()
        .map(|d| {
            let mut doc = Automerge::new();
            doc.apply_changes(d.iter().cloned()).unwrap();
            doc
        })
        .collect();
    time("FieldIndex::new once + touched per change", &mut || {
        for (d, doc) in docs.iter().zip(&built) {
            let mut index = fieldsync_core::document::FieldIndex::new(doc);
            for c in d {
                std::hint::black_box(index.touched(doc, &c.decode().operations));
            }
        }
    });
    time("check_applicable (on the whole doc)", &mut || {
        for (d, doc) in docs.iter().zip(&built) {
            for c in d {
                let _ = std::hint::black_box(check_applicable(doc, &mut PendingObjects::new(), c));
            }
        }
    });
    time("fields_touched (on the whole doc)", &mut || {
        for (d, doc) in docs.iter().zip(&built) {
            for c in d {
                std::hint::black_box(fields_touched(doc, c));
            }
        }
    });
    time("read_report (once per report)", &mut || {
        for doc in &built {
            std::hint::black_box(read_report(doc).unwrap());
        }
    });
    time("save (once per report)", &mut || {
        for doc in &built {
            std::hint::black_box(doc.save());
        }
    });
    time("save_nocompress (once per report)", &mut || {
        for doc in &built {
            std::hint::black_box(doc.save_nocompress());
        }
    });
    time("get_heads + get_changes_meta", &mut || {
        for doc in &built {
            std::hint::black_box(doc.get_heads());
            std::hint::black_box(doc.get_changes_meta(&[]));
        }
    });
    let saved: Vec<Vec<u8>> = built.iter().map(|d| d.save()).collect();
    let plain: usize = built.iter().map(|d| d.save_nocompress().len()).sum();
    let deflated: usize = saved.iter().map(Vec::len).sum();
    println!(
        "{:40} {:8} B/report deflated, {} B/report not",
        "saved size",
        deflated / built.len(),
        plain / built.len()
    );
    time("load a saved report (once per report)", &mut || {
        for bytes in &saved {
            std::hint::black_box(Automerge::load(bytes).unwrap());
        }
    });
    Ok(())
}
