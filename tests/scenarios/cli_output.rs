//! The CLI's output in pipelines: a script that reads only the start of
//! `timeline --json` (`| head`) must not make fieldsync panic.

use std::io::Write;
use std::process::{Command, Stdio};

use fieldsync_tests::{enrolled_device, fieldsync_bin, ServerProcess};

#[test]
fn timeline_piped_into_a_reader_that_stops_early_ends_without_a_panic() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("rows.csv");
    let mut csv = std::fs::File::create(&csv_path).unwrap();
    writeln!(csv, "id,title,date,place").unwrap();
    for i in 0..1000 {
        writeln!(csv, "{i},Checkpoint report {i},21.05.2016 10:40,Road {i}").unwrap();
    }
    drop(csv);
    coordinator.ok(&[
        "import",
        "--case",
        "almaty",
        "--timezone",
        "+06:00",
        csv_path.to_str().unwrap(),
    ]);

    // Far more than a pipe buffer (64 KiB) of output, and nobody reading it.
    let mut child = Command::new(fieldsync_bin())
        .args([
            "--home",
            coordinator.path(),
            "timeline",
            "--case",
            "almaty",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "fieldsync panicked: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            // 13 is SIGPIPE on Linux and the BSDs.
            out.status.success() || out.status.signal() == Some(13),
            "ended with {:?}: {stderr}",
            out.status
        );
    }
}
