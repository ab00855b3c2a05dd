//! The server's disk fills up: sync is refused with 507 and a message
//! that says so, nothing acknowledged is lost, and once space returns the
//! same server process (no restart) takes the next sync.
//!
//! The data directory goes on a small tmpfs, so the test needs to mount
//! (root on Linux); where it cannot, it says "skipped: …" and returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use fieldsync_core::hashing::sha256_file;
use fieldsync_tests::{enrolled_device, ServerProcess};

/// Size of the filesystem the server's data directory lives on.
const FS_BYTES: u64 = 24 << 20;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("fieldsync-test")
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes a file until the disk is full; returns its path.
fn fill(disk: &Path) -> PathBuf {
    let path = disk.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last bytes, down to the last page.
    while file.write_all(&chunk[..512]).is_ok() {}
    path
}

#[test]
fn a_full_disk_refuses_sync_with_507_loses_nothing_and_recovers_without_restart() {
    let disk = match SmallDisk::mount(FS_BYTES) {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: the server's disk cannot be made small here ({why}); run as root on Linux");
            return;
        }
    };
    let data = disk.path().join("data");
    let mut server = ServerProcess::start(&data, "127.0.0.1:0");
    server.create_case("almaty");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    coordinator.share_new_key("almaty", &[&reporter]);

    // Acknowledged before the disk fills.
    let before = reporter.record(
        "almaty",
        "Arrest at the bus stop",
        &["--text", "Acknowledged."],
    );
    reporter.ok(&["sync"]);

    let filler = fill(disk.path());
    // The database's write-ahead log only grows (far from its checkpoint),
    // so any write now needs space the disk no longer has.
    let files = tempfile::tempdir().unwrap();
    let photo_bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let photo = files.path().join("photo.jpg");
    std::fs::write(&photo, &photo_bytes).unwrap();
    let during = reporter.record(
        "almaty",
        "Detention at the department",
        &[
            "--text",
            "Taken to the district department.",
            "--attach",
            photo.to_str().unwrap(),
        ],
    );
    let out = reporter.run(&["sync"]);
    let message = String::from_utf8_lossy(&out.stderr);
    println!("sync on a full disk: {message}");
    assert!(!out.status.success(), "sync on a full disk must fail");
    assert!(message.contains("507"), "{message}");
    assert!(
        message.contains("the server is out of disk space"),
        "{message}"
    );
    assert!(message.contains("nothing was lost"), "{message}");
    // A device that only reads meets the same refusal, cleanly.
    let out = coordinator.run(&["sync"]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || message.contains("out of disk space"),
        "{message}"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died on a full disk"
    );
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");

    // Space returns: the same process takes the next sync.
    std::fs::remove_file(&filler).unwrap();
    reporter.ok(&["sync"]);
    coordinator.ok(&["sync"]);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server was restarted or died"
    );
    let timeline = coordinator.timeline("almaty");
    let ids: Vec<&str> = timeline.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&before.as_str()),
        "an acknowledged report was lost"
    );
    assert!(
        ids.contains(&during.as_str()),
        "the report made while full never arrived"
    );
    let item = coordinator.attachments(&during)[0].clone();
    let out = files.path().join("fetched.jpg");
    coordinator.fetch_attachment(item["id"].as_str().unwrap(), &out);
    assert_eq!(sha256_file(&out).unwrap(), sha256_file(&photo).unwrap());
    server.kill();
}
