//! Attachments end to end with the CLI and a real server: sealed on the
//! phone, uploaded over a network that drops, fetched and decrypted by the
//! coordinator; the server never holds a plaintext byte.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use fieldsync_tests::proxy::{FaultProxy, Faults};
use fieldsync_tests::{enrolled_device, DeviceHome, Rng, ServerProcess};

/// A case with a coordinator holding the case key and a reporter that
/// added it from the share code.
struct Case {
    server: ServerProcess,
    coordinator: DeviceHome,
    reporter: DeviceHome,
    _data: tempfile::TempDir,
    files: tempfile::TempDir,
}

fn case_with_key() -> Case {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    coordinator.share_new_key("almaty", &[&reporter]);
    Case {
        server,
        coordinator,
        reporter,
        _data: data,
        files: tempfile::tempdir().unwrap(),
    }
}

impl Case {
    /// A second coordinator, enrolled through `proxy`, holding the case key
    /// and synced.
    fn coordinator_through(&self, proxy: &FaultProxy) -> DeviceHome {
        let coordinator = DeviceHome::new();
        let token = self.server.invite("almaty", "coordinator");
        coordinator.ok(&[
            "device", "enroll", "--server", &proxy.url, "--token", &token,
        ]);
        let code = self.coordinator.ok(&["key", "show", "--case", "almaty"]);
        coordinator.ok(&[
            "key",
            "add",
            "--case",
            "almaty",
            code.lines().next().unwrap(),
        ]);
        coordinator.ok(&["sync"]);
        coordinator
    }

    /// A file of `len` random bytes the reporter recorded and synced, and
    /// the coordinator synced: its bytes, attachment id and blob id.
    fn synced_attachment(
        &self,
        rng: &mut Rng,
        len: usize,
        name: &str,
        title: &str,
    ) -> (Vec<u8>, String, String) {
        let plain = random_bytes(rng, len);
        let file = self.file(name, &plain);
        let report = record_with(&self.reporter, title, &[&file]);
        self.reporter.ok(&["sync"]);
        self.coordinator.ok(&["sync"]);
        let item = &self.coordinator.attachments(&report)[0];
        let id = item["id"].as_str().unwrap().to_owned();
        (plain, id, item["blob"].as_str().unwrap().to_owned())
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn record_with(device: &DeviceHome, title: &str, files: &[&Path]) -> String {
    let attach: Vec<&str> = files
        .iter()
        .flat_map(|f| ["--attach", f.to_str().unwrap()])
        .collect();
    device.record("almaty", title, &attach)
}

fn every_file(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every 16-byte window of every plaintext.
fn windows(plaintexts: &[&[u8]]) -> HashSet<[u8; 16]> {
    plaintexts
        .iter()
        .flat_map(|p| p.windows(16))
        .map(|w| w.try_into().unwrap())
        .collect()
}

fn first_plaintext_window(bytes: &[u8], windows: &HashSet<[u8; 16]>) -> Option<usize> {
    bytes
        .windows(16)
        .position(|w| windows.contains(<&[u8; 16]>::try_from(w).unwrap()))
}

#[test]
fn the_server_never_holds_a_plaintext_byte_of_an_attachment() {
    let mut rng = Rng::from_env_or_random();
    let case = case_with_key();
    let marker =
        b"MARKER-7f3a: Aleksey Ivanov was detained at 10:40 by officer Shakirov, plate 380KP02.\n"
            .repeat(2_000);
    let photo = random_bytes(&mut rng, 300_000);
    let tiny = b"twenty bytes exact!!".to_vec();
    let note = case.file("statement.txt", &marker);
    let image = case.file("arrest.jpg", &photo);
    let small = case.file("plate.txt", &tiny);
    let report = record_with(
        &case.reporter,
        "Detention at the bus stop",
        &[&note, &image, &small],
    );
    case.reporter.ok(&["sync"]);
    case.coordinator.ok(&["sync"]);

    // The coordinator reads every attachment of the report.
    let listed = case.coordinator.attachments(&report);
    assert_eq!(listed.len(), 3);
    let out = tempfile::tempdir().unwrap();
    for (item, original, name) in [
        (&listed[0], &marker, "statement.txt"),
        (&listed[1], &photo, "arrest.jpg"),
        (&listed[2], &tiny, "plate.txt"),
    ] {
        assert_eq!(item["name"], name);
        let target = out.path().join(name);
        case.coordinator
            .fetch_attachment(item["id"].as_str().unwrap(), &target);
        assert_eq!(&std::fs::read(&target).unwrap(), original);
    }

    // Nothing of any plaintext anywhere in the server's data or its log.
    let reporter_view = case.reporter.attachments(&report);
    assert!(reporter_view
        .iter()
        .all(|a| a["waiting_for_upload"] == false));
    let windows = windows(&[&marker, &photo, &tiny]);
    let mut scanned = 0u64;
    let mut places: Vec<(String, Vec<u8>)> = every_file(&case.server.data)
        .into_iter()
        .chain([case.server.log_path()])
        .map(|file| (file.display().to_string(), std::fs::read(&file).unwrap()))
        .collect();
    // With --blobs s3://…, the ciphertext is in the bucket: every object
    // under the server's prefix is scanned too, and the data directory
    // must hold no blob and no upload's bytes.
    let blobs = case.server.blobs();
    if blobs.is_bucket() {
        let local = every_file(&case.server.data);
        assert!(
            local.iter().all(|f| {
                let rel = f.strip_prefix(&case.server.data).unwrap();
                !rel.starts_with("blobs") && !rel.starts_with("uploads")
            }),
            "blob bytes on the server's disk: {local:?}"
        );
        for name in blobs.names() {
            places.push((blobs.describe(&name), blobs.read(&name)));
        }
    }
    for (place, bytes) in places {
        scanned += bytes.len() as u64;
        if let Some(at) = first_plaintext_window(&bytes, &windows) {
            panic!("plaintext found in {place} at byte {at}");
        }
        // The file names are metadata too, and shorter than a window.
        for name in [&b"statement.txt"[..], b"arrest.jpg", b"plate.txt"] {
            assert!(
                !bytes.windows(name.len()).any(|w| w == name),
                "{place} names an attachment in the clear"
            );
        }
    }
    println!(
        "scanned {scanned} bytes of server data, blobs and log: no 16-byte window of any plaintext"
    );
    assert!(
        scanned > photo.len() as u64,
        "the blobs must be among what was scanned"
    );

    // The reporter's home holds no plaintext either, and nothing waits.
    for file in every_file(case.reporter.dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(
            first_plaintext_window(&bytes, &windows),
            None,
            "{}",
            file.display()
        );
    }
}

#[test]
fn an_upload_cut_at_random_offsets_many_times_completes_and_decrypts_exactly() {
    let mut rng = Rng::from_env_or_random();
    let case = case_with_key();
    let video = random_bytes(&mut rng, 4 * 1024 * 1024 + 123);
    let file = case.file("march.mp4", &video);
    // The reporter reaches the server only through a network that drops.
    let proxy = FaultProxy::start(
        &case.server.addr,
        Faults::default(),
        Rng::seeded(rng.next_u64()),
    );
    let reporter = DeviceHome::new();
    let token = case.server.invite("almaty", "reporter");
    reporter.ok(&[
        "device", "enroll", "--server", &proxy.url, "--token", &token,
    ]);
    // The reporter takes the case public key with its first sync.
    reporter.ok(&["sync"]);
    let report = record_with(&reporter, "The march", &[&file]);
    let before = proxy.bytes_up();
    proxy.set_faults(Faults {
        cut_upstream_after: Some((64 * 1024, 900 * 1024)),
        cut_downstream_after: None,
        max_cuts: 12,
        ..Faults::default()
    });

    // One sync gets through every cut: each attempt gains bytes.
    let out = reporter.run(&["sync"]);
    assert!(
        out.status.success(),
        "sync did not get through the cuts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = proxy.bytes_up() - before;
    let blob = reporter.attachments(&report)[0].clone();
    let blob_len = blob["ciphertext_size"].as_u64().unwrap();
    let cuts = proxy.cuts();
    println!(
        "{cuts} cuts in one sync: {sent} bytes sent for a {blob_len}-byte blob ({:.3}×)",
        sent as f64 / blob_len as f64
    );
    assert!(
        cuts >= 4,
        "the proxy must have cut the upload several times ({cuts})"
    );
    // The server keeps what it received, so a cut costs at most the bytes
    // in flight, never the whole upload again.
    assert!(
        sent <= blob_len + cuts * 1024 * 1024,
        "{sent} bytes sent for {blob_len} with {cuts} cuts"
    );
    assert_eq!(blob["waiting_for_upload"], false);

    // The download is cut too, resumes with ranges and decrypts exactly.
    case.coordinator.ok(&["sync"]);
    let coordinator = case.coordinator_through(&proxy);
    proxy.set_faults(Faults {
        cut_upstream_after: None,
        cut_downstream_after: Some((128 * 1024, 1024 * 1024)),
        max_cuts: cuts + 6,
        ..Faults::default()
    });
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("march.mp4");
    let down_before = proxy.bytes_down();
    coordinator.fetch_attachment(blob["id"].as_str().unwrap(), &target);
    let received = proxy.bytes_down() - down_before;
    println!(
        "download: {} cuts, {received} bytes received for a {blob_len}-byte blob",
        proxy.cuts() - cuts
    );
    assert!(proxy.cuts() > cuts, "the download must have been cut");
    assert!(received <= blob_len + (proxy.cuts() - cuts + 1) * 64 * 1024);
    assert_eq!(std::fs::read(&target).unwrap(), video);
}

#[test]
fn a_tampered_truncated_or_swapped_blob_and_a_wrong_key_are_errors_that_leave_no_file() {
    let mut rng = Rng::from_env_or_random();
    let case = case_with_key();
    let (original, id, blob_id) = case.synced_attachment(
        &mut rng,
        5 * 64 * 1024 + 7,
        "photo.jpg",
        "Photo of the arrest",
    );
    let (id, blob_id) = (id.as_str(), blob_id.as_str());
    // In the data directory, or the bucket with FIELDSYNC_TEST_S3_ENDPOINT.
    let blobs = case.server.blobs();
    let stored = blobs
        .find_blob(blob_id)
        .expect("the server stores the blob under its id");
    let pristine = blobs.read(&stored);
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("photo.jpg");
    let chunk = 64 * 1024 + 16;
    let head = pristine.len() - 5 * chunk - (7 + 16);

    let mut flipped = pristine.clone();
    flipped[head + 100] ^= 1;
    let truncated = pristine[..pristine.len() - chunk].to_vec();
    let mut swapped = pristine.clone();
    swapped[head..head + chunk].copy_from_slice(&pristine[head + chunk..head + 2 * chunk]);
    swapped[head + chunk..head + 2 * chunk].copy_from_slice(&pristine[head..head + chunk]);
    for (what, bytes) in [
        ("a flipped bit", flipped),
        ("a truncated blob", truncated),
        ("swapped chunks", swapped),
    ] {
        blobs.write(&stored, &bytes);
        let out =
            case.coordinator
                .run(&["attachment", "get", id, "--out", target.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} was accepted");
        // Same length: the device's check of the blob id finds it. Shorter:
        // the server already sees its stored size is wrong.
        assert!(
            stderr.contains("does not match its id") || stderr.contains("damaged on the server"),
            "{what}: {stderr}"
        );
        assert!(!target.exists(), "{what} left a file behind");
        assert_no_leftovers(out_dir.path());
        // Nor any ciphertext to resume from: it is not the blob.
        let downloads = Path::new(case.coordinator.path()).join("downloads");
        if downloads.exists() {
            assert_no_leftovers(&downloads);
        }
    }

    blobs.write(&stored, &pristine);
    // A device given another key under the same epoch cannot open it.
    let stranger = enrolled_device(&case.server, "almaty", "coordinator");
    let other = DeviceHome::new();
    let wrong = other.ok(&["key", "new", "--case", "almaty"]);
    stranger.ok(&[
        "key",
        "add",
        "--case",
        "almaty",
        wrong.lines().next().unwrap(),
    ]);
    stranger.ok(&["sync"]);
    let out = stranger.run(&["attachment", "get", id, "--out", target.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("does not open with this case key"),
        "{stderr}"
    );
    assert!(!target.exists());

    // The untouched blob still decrypts exactly.
    case.coordinator.fetch_attachment(id, &target);
    assert_eq!(std::fs::read(&target).unwrap(), original);
}

#[test]
fn a_later_run_resumes_a_download_from_the_bytes_an_earlier_one_kept() {
    let mut rng = Rng::from_env_or_random();
    let case = case_with_key();
    let (photo, id, blob_id) = case.synced_attachment(
        &mut rng,
        3 * 1024 * 1024 + 11,
        "crowd.jpg",
        "The crowd at noon",
    );
    let (id, blob_id) = (id.as_str(), blob_id.as_str());
    let blobs = case.server.blobs();
    let sealed = blobs.read(&blobs.find_blob(blob_id).unwrap());

    // A coordinator that reaches the server through a proxy that counts.
    let proxy = FaultProxy::start(
        &case.server.addr,
        Faults::default(),
        Rng::seeded(rng.next_u64()),
    );
    let coordinator = case.coordinator_through(&proxy);

    // What an earlier run, killed part-way, kept in the home.
    let downloads = Path::new(coordinator.path()).join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let partial = downloads.join(format!("{blob_id}.part"));
    let kept = sealed.len() * 2 / 3;
    std::fs::write(&partial, &sealed[..kept]).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("crowd.jpg");
    let before = proxy.bytes_down();
    coordinator.fetch_attachment(id, &target);
    let received = proxy.bytes_down() - before;
    assert!(std::fs::read(&target).unwrap() == photo, "decrypts exactly");
    let rest = (sealed.len() - kept) as u64;
    assert!(
        received >= rest && received < rest + 64 * 1024,
        "{received} bytes came down for the {rest} the earlier run lacked"
    );
    assert!(
        !partial.exists(),
        "the ciphertext is not kept after the download"
    );

    // A kept file a crash damaged: the blob id check fails, nothing is
    // written, the damaged bytes are dropped, and the next run succeeds.
    let mut damaged = sealed[..kept].to_vec();
    damaged[kept / 2] ^= 0x40;
    std::fs::write(&partial, &damaged).unwrap();
    let again = out_dir.path().join("again.jpg");
    let out = coordinator.run(&["attachment", "get", id, "--out", again.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a damaged partial download was accepted"
    );
    assert!(stderr.contains("does not match its id"), "{stderr}");
    assert!(!again.exists() && !partial.exists());
    coordinator.fetch_attachment(id, &again);
    assert!(std::fs::read(&again).unwrap() == photo);
}

fn assert_no_leftovers(dir: &Path) {
    let left: Vec<_> = every_file(dir);
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn a_revoked_coordinator_cannot_fetch_attachments_and_rotation_keeps_old_ones_readable() {
    let mut rng = Rng::from_env_or_random();
    let case = case_with_key();
    let first = random_bytes(&mut rng, 70_000);
    let old = record_with(
        &case.reporter,
        "Before rotation",
        &[&case.file("a.bin", &first)],
    );
    // Rotation: new attachments use epoch 2; epoch 1 stays readable.
    case.coordinator.ok(&["key", "rotate", "--case", "almaty"]);
    case.reporter.ok(&["sync"]);
    let second = random_bytes(&mut rng, 1_000);
    let new = record_with(
        &case.reporter,
        "After rotation",
        &[&case.file("b.bin", &second)],
    );
    case.reporter.ok(&["sync"]);
    case.coordinator.ok(&["sync"]);
    assert_eq!(case.coordinator.attachments(&old)[0]["key_epoch"], 1);
    assert_eq!(case.coordinator.attachments(&new)[0]["key_epoch"], 2);
    let out_dir = tempfile::tempdir().unwrap();
    for (report, original) in [(&old, &first), (&new, &second)] {
        let item = case.coordinator.attachments(report)[0].clone();
        let target = out_dir.path().join(item["id"].as_str().unwrap());
        case.coordinator
            .fetch_attachment(item["id"].as_str().unwrap(), &target);
        assert_eq!(&std::fs::read(&target).unwrap(), original);
    }

    let item = case.coordinator.attachments(&old)[0].clone();
    let data = case.server.data.to_str().unwrap().to_owned();
    fieldsync_tests::fieldsync_ok(&["admin", "--data", &data, "revoke", &case.coordinator.id]);
    let target = out_dir.path().join("after-revocation");
    let out = case.coordinator.run(&[
        "attachment",
        "get",
        item["id"].as_str().unwrap(),
        "--out",
        target.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("403") && stderr.contains("revoked"),
        "{stderr}"
    );
    assert!(!target.exists());
}
