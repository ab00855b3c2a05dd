//! Import benchmark: a CSV of N rows through `fieldsync import`, first
//! time (all created) and again (all unchanged), with the CLI's peak memory.

use std::io::Write;
use std::process::Command;

use anyhow::Result;
use fieldsync_tests::{enrolled_device, fieldsync_bin, ServerProcess};

use crate::measure::{self, mib};
use crate::table::Table;

pub fn csv_rows(table: &mut Table, rows: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = ServerProcess::start(&dir.path().join("server"), "127.0.0.1:0");
    server.create_case("bench");
    let coordinator = enrolled_device(&server, "bench", "coordinator");
    server.kill();
    let path = dir.path().join("hotline.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(
        file,
        "id,title,date,place,latitude,longitude,description,tags"
    )?;
    for i in 0..rows {
        writeln!(
            file,
            "{i},Detention {i},21.05.2016 {:02}:{:02},Republic square,43.{:04},76.{:04},\"Held at the district department, released after {} hours.\",arrest;rally",
            10 + i % 8,
            i % 60,
            i % 10_000,
            (i * 7) % 10_000,
            1 + i % 5
        )?;
    }
    file.flush()?;
    drop(file);
    let size = std::fs::metadata(&path)?.len();
    let section = format!("import {rows} CSV rows");
    for (what, expect) in [
        ("first import (all created)", "created"),
        ("same file again (all unchanged)", "unchanged"),
    ] {
        let run = measure::run(Command::new(fieldsync_bin()).args([
            "--home",
            coordinator.path(),
            "import",
            "--json",
            "--case",
            "bench",
            "--timezone",
            "+06:00",
            path.to_str().unwrap_or_default(),
        ]))?;
        let summary: serde_json::Value = serde_json::from_str(&run.stdout)?;
        anyhow::ensure!(
            summary[0][expect].as_u64() == Some(rows as u64),
            "{what}: {}",
            summary[0]
        );
        table.row(
            &section,
            what,
            format!(
                "{:.1} s, {:.0} rows/s, client peak RSS {:.1} MiB ({:.1} MiB file)",
                run.wall.as_secs_f64(),
                rows as f64 / run.wall.as_secs_f64(),
                mib(run.peak_rss),
                mib(size)
            ),
        );
    }
    Ok(())
}
