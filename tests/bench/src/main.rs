//! fieldsync's benchmarks: real `fieldsync` processes (release build) on
//! loopback, printed as a table a reader can compare between runs.
//!
//! ```text
//! cargo run --release -p fieldsync-bench -- [--quick] [--only timeline]
//! cargo run --release -p fieldsync-bench -- [--quick] --compare-automerge-repo
//! ```
//!
//! `--quick` shrinks every workload for a smoke run. `--compare-automerge-repo`
//! runs only the `sync` section and the reference Automerge sync server on
//! the same workload (it needs node and npm). The table is also
//! written as Markdown to `--markdown FILE` for BENCHMARKS.md.

mod app;
mod attachments;
mod automerge_repo;
mod import;
mod measure;
mod postgres;
mod sync_throughput;
mod table;
mod timeline;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use clap::Parser;

/// The `fieldsync` binary's allocator (see its `Cargo.toml`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "fieldsync benchmarks")]
struct Args {
    /// Small workloads: a smoke run in well under a minute.
    #[arg(long)]
    quick: bool,
    /// Run one section only: sync, week, import, attachments, timeline,
    /// scale, app, postgres.
    #[arg(long)]
    only: Option<String>,
    /// Attachment size in MiB (default 1024, quick 64).
    #[arg(long)]
    attachment_mib: Option<u64>,
    /// Only the `sync` section beside the reference Automerge sync server
    /// on the same workload (installs it from npm; needs node and npm).
    #[arg(long, conflicts_with = "only")]
    compare_automerge_repo: bool,
    /// Also write the table as Markdown here.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// The sections, in the order a full run takes them.
const SECTIONS: [&str; 8] = [
    "sync",
    "week",
    "import",
    "attachments",
    "timeline",
    "scale",
    "app",
    "postgres",
];

fn main() -> Result<()> {
    // With the binary's purge delay too (`cli/src/main.rs`): the allocator
    // setting moved the in-process limit by a tenth between runs.
    // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
    unsafe { libmimalloc_sys::mi_option_set(15, 10) };
    let args = Args::parse();
    if let Some(only) = &args.only {
        ensure!(
            SECTIONS.contains(&only.as_str()),
            "there is no section {only:?}; --only takes one of {}",
            SECTIONS.join(", ")
        );
    }
    use_release_cli()?;
    let mut table = table::Table::new();
    if args.compare_automerge_repo {
        automerge_repo::compare(&mut table, &sync_workload(args.quick))?;
        return write_markdown(&table, args.markdown.as_deref());
    }
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    if wanted("sync") {
        sync_throughput::concurrent(&mut table, &sync_workload(args.quick))?;
    }
    if wanted("week") {
        let (reports, edits) = if args.quick { (100, 9) } else { (1000, 9) };
        sync_throughput::week_offline(&mut table, reports, edits)?;
    }
    if wanted("import") {
        import::csv_rows(&mut table, if args.quick { 5_000 } else { 100_000 })?;
    }
    if wanted("attachments") {
        let mib = args
            .attachment_mib
            .unwrap_or(if args.quick { 64 } else { 1024 });
        attachments::run(&mut table, mib * 1024 * 1024)?;
    }
    if wanted("timeline") {
        timeline::queries(&mut table, if args.quick { 10_000 } else { 100_000 })?;
    }
    if wanted("scale") {
        let sizes: &[usize] = if args.quick {
            &[2_000, 10_000]
        } else {
            &[100_000, 1_000_000]
        };
        for &reports in sizes {
            timeline::scale(&mut table, reports)?;
        }
    }
    if wanted("postgres") {
        postgres::run(
            &mut table,
            &sync_workload(args.quick),
            if args.quick { 5_000 } else { 100_000 },
        )?;
    }
    if wanted("app") {
        // The phone app in headless chromium (needs node, chromium and
        // tests/browser/node_modules; FIELDSYNC_SKIP_BROWSER=1 skips it).
        let work = if args.quick {
            app::Workload {
                reports: 100,
                saves: 5,
                throttled_saves: 3,
                sync_reports: 10,
                photo_kib: 20,
                cold_runs: 1,
            }
        } else {
            app::Workload {
                reports: 2_000,
                saves: 20,
                throttled_saves: 10,
                sync_reports: 200,
                photo_kib: 200,
                cold_runs: 3,
            }
        };
        app::run(&mut table, &work)?;
    }
    write_markdown(&table, args.markdown.as_deref())
}

/// The `sync` section's workload, which the comparison shares.
fn sync_workload(quick: bool) -> sync_throughput::Workload {
    if quick {
        sync_throughput::Workload {
            devices: 5,
            reports: 40,
            edits: 5,
        }
    } else {
        sync_throughput::Workload {
            devices: 20,
            reports: 250,
            edits: 10,
        }
    }
}

fn write_markdown(table: &table::Table, path: Option<&Path>) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, table.markdown())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Builds the release CLI and points the test helpers at it.
fn use_release_cli() -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("target dir")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The CLI in the bench's own profile. A dev build is CI's smoke run:
    // it checks that every section works without a release build of
    // everything (minutes on two cores), and its figures mean nothing.
    let mut build = vec!["build", "--quiet", "-p", "fieldsync"];
    if cfg!(debug_assertions) {
        eprintln!("warning: a dev build: a smoke run whose figures are not comparable; add --release to measure");
    } else {
        build.push("--release");
    }
    let status = Command::new(cargo)
        .args(&build)
        .status()
        .context("run cargo build")?;
    ensure!(status.success(), "cargo {} failed", build.join(" "));
    let bin = dir.join("fieldsync");
    ensure!(bin.exists(), "no CLI binary at {}", bin.display());
    std::env::set_var("FIELDSYNC_BIN", bin);
    Ok(())
}
