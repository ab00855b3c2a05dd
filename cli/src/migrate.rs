//! `fieldsync admin migrate`: a server's data directory (SQLite and its
//! blobs) copied into PostgreSQL and, optionally, a bucket; resumable, and
//! checked at the end.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use fieldsync_server::blob_store::{BlobLocation, BlobStore, Sealed, UploadId};
use fieldsync_server::store::{PgStore, Store};

/// Bytes copied per read of a blob.
const CHUNK: usize = 1 << 20;

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The data directory of the server to copy (stop that server first).
    #[arg(long, value_name = "DIR")]
    from_data: std::path::PathBuf,
    /// The PostgreSQL database to copy into: postgres://USER@HOST[:PORT]/DB.
    #[arg(long, value_name = "URL")]
    to_database: String,
    /// The bucket to copy the attachments into; without it they stay in
    /// the data directory, where a server given --data DIR finds them.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    to_blobs: Option<BlobLocation>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: MigrateArgs) -> Result<ExitCode> {
    let source = Store::open(&args.from_data).with_context(|| {
        format!(
            "cannot open the data directory {}",
            args.from_data.display()
        )
    })?;
    let target = PgStore::open(&args.to_database)
        .context("cannot open the PostgreSQL database given by --to-database")?;
    let started = std::time::Instant::now();

    let mut last_table = String::new();
    let tables = target.copy_from_sqlite(&source, &mut |table, rows| {
        if table != last_table {
            eprintln!("migrate: copying {table}");
            last_table = table.to_owned();
        }
        if rows % 50_000 == 0 {
            eprintln!("migrate: {table}: {rows} rows");
        }
    })?;
    let blobs = copy_blobs(&source, &args.from_data, args.to_blobs.as_ref())?;

    eprintln!("migrate: checking every report's heads and every blob's hash");
    let reports = check_heads(&source, &target)?;
    let checked_blobs = check_blobs(&source, &args.from_data, args.to_blobs.as_ref())?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "tables": tables,
                "blobs_copied": blobs,
                "reports_checked": reports,
                "blobs_checked": checked_blobs,
                "seconds": seconds,
            }))?
        );
    } else {
        for t in &tables {
            println!("{:<17} {:>9} rows, {:>9} new", t.table, t.rows, t.inserted);
        }
        println!(
            "{blobs} blobs copied; {reports} reports' heads and {checked_blobs} blobs' hashes match; {seconds:.1} s"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies each blob the target bucket lacks, through the same sealing an
/// upload goes through (the bytes must hash to the blob id). `None`: the
/// blobs stay where they are.
fn copy_blobs(source: &Store, data: &Path, to: Option<&BlobLocation>) -> Result<u64> {
    let Some(location) = to.filter(|l| **l != BlobLocation::DataDir) else {
        return Ok(0);
    };
    let from = BlobStore::open(data, &BlobLocation::DataDir)?;
    let into = BlobStore::open(data, location)
        .map_err(|e| anyhow!("cannot open {location}: {e}; check the AWS_* variables"))?;
    let mut copied = 0;
    for (case, blob, _) in source.stored_blobs()? {
        if into.stored_blob_id(&case, &blob)?.as_ref() == Some(&blob) {
            continue;
        }
        let id = UploadId::random()?;
        into.create_partial(&id)?;
        let lock = into
            .lock_upload(&id)
            .ok_or_else(|| anyhow!("upload {id} is locked"))?;
        let (mut reader, size) = from.open_blob(&case, &blob, 0)?;
        let mut writer = into.append(&lock)?;
        let mut left = size;
        while left > 0 {
            let chunk = reader.read_chunk(CHUNK.min(left as usize))?;
            if chunk.is_empty() {
                bail!("blob {blob} of case {case} ended {left} bytes early");
            }
            left -= chunk.len() as u64;
            writer.write_all(&chunk)?;
        }
        writer.sync()?;
        drop(writer);
        match into.seal(&lock, &case, &blob, None)? {
            Sealed::Stored => copied += 1,
            Sealed::Mismatch => {
                into.remove_partial(&id)?;
                bail!("blob {blob} of case {case} does not hash to its id in the data directory; it was not copied")
            }
        }
        if copied % 100 == 0 {
            eprintln!("migrate: {copied} blobs copied");
        }
    }
    Ok(copied)
}

/// Every report has the same heads in both stores, and its copied
/// snapshot loads to them.
fn check_heads(source: &Store, target: &PgStore) -> Result<u64> {
    let from = source.document_heads()?;
    let into = target.document_heads()?;
    if from != into {
        let missing = from.iter().filter(|d| !into.contains(d)).count();
        bail!("{missing} of {} reports differ between the data directory and the database; run the migration again", from.len());
    }
    for (case, id, heads) in &into {
        let snapshot = target
            .document_snapshot(case, id)?
            .ok_or_else(|| anyhow!("report {id} vanished"))?;
        let doc = automerge::Automerge::load(&snapshot)
            .map_err(|e| anyhow!("report {id} does not load from the database: {e}"))?;
        if fieldsync_core::heads::format(&doc.get_heads()) != *heads {
            bail!("report {id}'s copy loads to other heads than it records");
        }
    }
    Ok(into.len() as u64)
}

/// Every blob is where the new server will read it, and hashes to its id.
fn check_blobs(source: &Store, data: &Path, to: Option<&BlobLocation>) -> Result<u64> {
    let location = to.cloned().unwrap_or_default();
    let store = BlobStore::open(data, &location)?;
    let mut checked = 0;
    for (case, blob, _) in source.stored_blobs()? {
        if store.stored_blob_id(&case, &blob)?.as_ref() != Some(&blob) {
            bail!("blob {blob} of case {case} is missing or does not hash to its id in {location}; run the migration again");
        }
        checked += 1;
    }
    Ok(checked)
}
