//! Benchmark 4: one large attachment sealed, uploaded and downloaded
//! through the CLI and a real server on loopback, with each process's peak
//! memory, next to the limits of its stages measured in this process on
//! the same number of bytes: raw AES-256-GCM, raw SHA-256, and a raw write
//! of a file with fsync to the same directory. Each end-to-end figure is
//! also given as a fraction of the slowest of those stages.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use fieldsync_core::hashing::sha256_file;
use fieldsync_tests::{enrolled_device, fieldsync_bin, DeviceHome, ServerProcess};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};

use crate::measure::{self, mb_per_s, mib};
use crate::table::Table;

pub fn run(table: &mut Table, size: u64) -> Result<()> {
    let work = tempfile::tempdir()?;
    let data = work.path().join("server");
    let mut server = ServerProcess::start(&data, "127.0.0.1:0");
    server.create_case("bench");
    let coordinator = enrolled_device(&server, "bench", "coordinator");
    let reporter = enrolled_device(&server, "bench", "reporter");
    coordinator.share_new_key("bench", &[&reporter]);

    let plain = work.path().join("evidence.mp4");
    write_random_file(&plain, size)?;
    let section = format!("attach {}", human(size));
    let stages = [
        ("AES-256-GCM", raw_aes_gcm(size)?),
        ("SHA-256", raw_sha256(size)),
        ("disk write", raw_disk_write(work.path(), size)?),
    ];
    table.row(
        &section,
        "raw AES-256-GCM, 64 KiB chunks, this process",
        format!("{:.0} MB/s", stages[0].1),
    );
    table.row(
        &section,
        "raw SHA-256, 1 MiB updates, this process",
        format!("{:.0} MB/s", stages[1].1),
    );
    table.row(
        &section,
        "raw disk write, 1 MiB writes + fsync, same directory",
        format!("{:.0} MB/s", stages[2].1),
    );
    let slowest = stages
        .into_iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("three stages");

    let sealed = measure::run(device(&reporter).args([
        "record",
        "--case",
        "bench",
        "--title",
        "Large video",
        "--at",
        "2016-05-21T10:40:00+06:00",
        "--attach",
        path(&plain)?,
    ]))?;
    let report = sealed.stdout.trim().to_owned();
    row(
        table,
        &section,
        "seal on the device (record --attach)",
        size,
        &sealed,
        slowest,
    );

    let upload = measure::run(device(&reporter).arg("sync"))?;
    row(table, &section, "upload (sync)", size, &upload, slowest);
    table.row(
        &section,
        "server peak RSS after the upload",
        format!("{:.1} MiB", mib(measure::peak_rss_of(server.child.id())?)),
    );

    coordinator.ok(&["sync"]);
    let listed: serde_json::Value =
        serde_json::from_str(&coordinator.ok(&["attachment", "list", &report, "--json"]))?;
    let id = listed[0]["id"]
        .as_str()
        .context("attachment id")?
        .to_owned();
    let out = work.path().join("fetched.mp4");
    let download =
        measure::run(device(&coordinator).args(["attachment", "get", &id, "--out", path(&out)?]))?;
    row(
        table,
        &section,
        "download + decrypt + verify (attachment get)",
        size,
        &download,
        slowest,
    );
    table.row(
        &section,
        "server peak RSS after the download",
        format!("{:.1} MiB", mib(measure::peak_rss_of(server.child.id())?)),
    );
    ensure!(
        sha256_file(&out)?.1 == sha256_file(&plain)?.1,
        "the downloaded file differs from the original"
    );
    server.kill();
    Ok(())
}

fn row(
    table: &mut Table,
    section: &str,
    what: &str,
    size: u64,
    run: &measure::Run,
    (slowest, limit): (&str, f64),
) {
    let rate = mb_per_s(size, run.wall);
    table.row(
        section,
        what,
        format!(
            "{rate:.0} MB/s, {:.1} s, client peak RSS {:.1} MiB, {:.2} × slowest stage ({slowest} {limit:.0} MB/s)",
            run.wall.as_secs_f64(),
            mib(run.peak_rss),
            rate / limit,
        ),
    );
}

fn device(home: &DeviceHome) -> Command {
    let mut command = Command::new(fieldsync_bin());
    command.args(["--home", home.path()]);
    command
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 temporary path")
}

/// Incompressible content; a 4 MiB random block repeated is enough, since
/// nothing on the way compresses or deduplicates below the blob level.
fn write_random_file(path: &Path, size: u64) -> Result<()> {
    let mut block = vec![0u8; 4 * 1024 * 1024];
    SystemRandom::new()
        .fill(&mut block)
        .map_err(|_| anyhow::anyhow!("random"))?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    // Synced, so that its writeback does not share the disk with the
    // measurements that follow.
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// MB/s of sealing `size` bytes in 64 KiB chunks with ring's AES-256-GCM:
/// the ceiling for the envelope on this machine.
fn raw_aes_gcm(size: u64) -> Result<f64> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(|_| anyhow::anyhow!("key"))?,
    );
    let mut chunk = vec![0x5au8; 64 * 1024];
    let chunks = size.div_ceil(chunk.len() as u64);
    let started = Instant::now();
    for i in 0..chunks {
        let mut nonce = [0u8; 12];
        nonce[4..12].copy_from_slice(&i.to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut chunk,
            )
            .map_err(|_| anyhow::anyhow!("seal"))?;
        let _ = std::hint::black_box(tag);
    }
    Ok(mb_per_s(chunks * 64 * 1024, started.elapsed()))
}

/// MB/s of SHA-256 over `size` bytes in 1 MiB updates of one buffer (in
/// cache): the ceiling for each hash over the blob or the plaintext.
fn raw_sha256(size: u64) -> f64 {
    let block = vec![0xa5u8; 1 << 20];
    let blocks = size.div_ceil(block.len() as u64);
    let started = Instant::now();
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    for _ in 0..blocks {
        hash.update(&block);
    }
    std::hint::black_box(hash.finish());
    mb_per_s(blocks << 20, started.elapsed())
}

/// MB/s of writing `size` bytes to a new file in `dir` in 1 MiB writes and
/// syncing it, as sealing and downloading do before they rename: the
/// disk's ceiling for every path that ends in a file.
fn raw_disk_write(dir: &Path, size: u64) -> Result<f64> {
    let path = dir.join("raw-write.bin");
    let mut block = vec![0u8; 1 << 20];
    SystemRandom::new()
        .fill(&mut block)
        .map_err(|_| anyhow::anyhow!("random"))?;
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(mb_per_s(size, elapsed))
}

pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}
