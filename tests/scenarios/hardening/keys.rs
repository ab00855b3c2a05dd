//! Issue 14, finding 6: one seized phone plus the server's ciphertext
//! opened every attachment of a case, because every reporter held the
//! symmetric case key. Attachments are now sealed to the case's public
//! key; only coordinators hold the private key, and a reporter checks the
//! public key the server hands it against the fingerprint on its invite.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use fieldsync_core::case_key::{CaseKey, CasePrivateKey, CaseSecret};
use fieldsync_core::envelope;
use fieldsync_server::store::Store;
use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess};

/// A case on a real server with a coordinator that made the case key pair.
struct Case {
    server: ServerProcess,
    coordinator: DeviceHome,
    _data: tempfile::TempDir,
    files: tempfile::TempDir,
}

fn case() -> Case {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    Case {
        server,
        coordinator,
        _data: data,
        files: tempfile::tempdir().unwrap(),
    }
}

impl Case {
    /// A reporter enrolled with an invite minted on the coordinator's
    /// device: `fieldsync invite` prints the token, then the fingerprint.
    fn reporter_with_invite(&self) -> DeviceHome {
        let printed = self.coordinator.ok(&["invite", "--role", "reporter"]);
        let mut lines = printed.lines();
        let (token, fingerprint) = (lines.next().unwrap(), lines.next().unwrap());
        let reporter = DeviceHome::new();
        reporter.ok(&[
            "device",
            "enroll",
            "--server",
            &self.server.url,
            "--token",
            token,
            "--case-key-fingerprint",
            fingerprint,
        ]);
        reporter
    }

    /// Records a report with one attached "photo" on `device`, syncs it
    /// (uploading the photo) and returns the report id and the photo.
    fn record_photo(&self, device: &DeviceHome, title: &str) -> (String, Vec<u8>) {
        let photo: Vec<u8> = format!("JPEG of {title} ")
            .bytes()
            .cycle()
            .take(3_000)
            .collect();
        let path = self.files.path().join(format!("{title}.jpg"));
        std::fs::write(&path, &photo).unwrap();
        let id = device.record("almaty", title, &["--attach", path.to_str().unwrap()]);
        device.ok(&["sync"]);
        (id, photo)
    }

    fn blobs(&self) -> Vec<Vec<u8>> {
        every_file(&self.server.data.join("blobs"))
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }
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

/// Every byte string a seizure yields from `dirs`: each file as it is on
/// disk, and every run of hex or base64 text in it decoded (a key kept as
/// a share code or hex would be found too).
fn seized(dirs: &[&Path]) -> Vec<Vec<u8>> {
    let mut material = Vec::new();
    for dir in dirs {
        for file in every_file(dir) {
            let bytes = std::fs::read(&file).unwrap();
            material.extend(decoded_runs(&bytes));
            material.push(bytes);
        }
    }
    material
}

fn decoded_runs(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    for run in bytes.split(|&b| !b64(b)).filter(|r| r.len() >= 43) {
        if run.iter().all(u8::is_ascii_hexdigit) {
            for start in 0..2 {
                let even = &run[start..start + (run.len() - start) / 2 * 2];
                out.extend(hex::decode(even).ok());
            }
        }
        for start in 0..4 {
            let rest = &run[start..];
            let text: Vec<u8> = rest
                .iter()
                .map(|&b| match b {
                    b'-' => b'+',
                    b'_' => b'/',
                    b => b,
                })
                .collect();
            let whole = &text[..text.len() / 4 * 4];
            out.extend(STANDARD.decode(whole).ok());
            out.extend(URL_SAFE.decode(&rest[..rest.len() / 4 * 4]).ok());
        }
    }
    out
}

/// How many of `blobs` open with some 32-byte window of `material`, used
/// as a symmetric key (envelope v1) or as a private key (v2). A v2 window
/// is tried on the blobs when its public key is one the server holds for
/// the case: X25519 makes that the same test as a Diffie-Hellman with
/// each blob's ephemeral key, at one multiplication per window.
fn attachments_opened(material: &[Vec<u8>], blobs: &[Vec<u8>], server_data: &Path) -> usize {
    let published: HashSet<(u32, String)> = Store::open(server_data)
        .unwrap()
        .case_public_keys_by_name("almaty")
        .unwrap()
        .into_iter()
        .map(|k| (k.epoch, k.public_key))
        .collect();
    let mut windows: HashSet<[u8; 32]> = HashSet::new();
    for bytes in material {
        for w in bytes.windows(32) {
            windows.insert(w.try_into().unwrap());
        }
    }
    let heads: Vec<(u32, u8, &Vec<u8>)> = blobs
        .iter()
        .map(|b| {
            (
                envelope::head_epoch(b).unwrap(),
                envelope::head_version(b).unwrap(),
                b,
            )
        })
        .collect();
    let mut opened = HashSet::new();
    for window in &windows {
        for (index, (epoch, version, blob)) in heads.iter().enumerate() {
            let secret = if *version == 1 {
                CaseSecret::Symmetric(CaseKey::from_bytes(*epoch, *window))
            } else {
                let private = CasePrivateKey::from_bytes(*epoch, *window);
                let public = hex::encode(private.public().bytes());
                if !published.contains(&(*epoch, public)) {
                    continue;
                }
                CaseSecret::Private(private)
            };
            let lookup = move |_| Some(secret.clone());
            if envelope::open(&lookup, &mut blob.as_slice(), &mut Vec::new()).is_ok() {
                opened.insert(index);
            }
        }
    }
    opened.len()
}

#[test]
fn a_seized_reporter_phone_and_the_servers_whole_data_directory_open_no_attachment() {
    let case = case();
    case.coordinator.ok(&["key", "new", "--case", "almaty"]);
    let seized_phone = case.reporter_with_invite();
    let other = case.reporter_with_invite();
    let (own, _) = case.record_photo(&seized_phone, "My own photo");
    case.record_photo(&other, "Another reporter's photo");
    case.record_photo(&case.coordinator, "A coordinator's photo");
    let blobs = case.blobs();
    assert_eq!(blobs.len(), 3);
    assert!(blobs.iter().all(|b| &b[..4] == b"FSA2"));

    // The phone, once its attachment is sent, cannot open even that one.
    let attempt = case.files.path().join("own.jpg");
    let out = seized_phone.run(&[
        "attachment",
        "get",
        &own[..8],
        "--out",
        attempt.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(seized_phone.attachments(&own)[0]["unreadable"].is_string());

    // Everything on the phone and on the server, tried against every blob.
    let material = seized(&[seized_phone.dir.path(), &case.server.data]);
    assert_eq!(
        attachments_opened(&material, &blobs, &case.server.data),
        0,
        "a key in the seized phone's home or the server's data opened an attachment"
    );
    // The same search finds the key where there is one: the coordinator's.
    let laptop = seized(&[case.coordinator.dir.path()]);
    assert_eq!(attachments_opened(&laptop, &blobs, &case.server.data), 3);
}

#[test]
fn a_phone_with_the_old_symmetric_key_opened_another_reporters_photo_until_the_case_rotated_to_a_key_pair(
) {
    let case = case();
    // A case from before key pairs: one symmetric key on every device.
    let legacy = CaseKey::generate(1).unwrap().share_code();
    case.coordinator
        .ok(&["key", "add", "--case", "almaty", &legacy]);
    let seized_phone = enrolled_device(&case.server, "almaty", "reporter");
    let other = enrolled_device(&case.server, "almaty", "reporter");
    for reporter in [&seized_phone, &other] {
        reporter.ok(&["key", "add", "--case", "almaty", &legacy]);
    }
    let (old_report, old_photo) = case.record_photo(&other, "Before rotation");
    let blobs = case.blobs();
    assert_eq!(&blobs[0][..4], b"FSA1");
    // The attack of finding 6, as it worked before the change.
    let material = seized(&[seized_phone.dir.path(), &case.server.data]);
    assert_eq!(
        attachments_opened(&material, &blobs, &case.server.data),
        1,
        "the old key on one phone opens another reporter's photo"
    );

    // The coordinator rotates to a key pair; the phone syncs.
    case.coordinator.ok(&["key", "rotate", "--case", "almaty"]);
    let synced = seized_phone.run(&["sync"]);
    assert!(synced.status.success());
    let said = String::from_utf8_lossy(&synced.stderr);
    assert!(said.contains("removed 1 old symmetric case key"), "{said}");
    other.ok(&["sync"]);
    let (new_report, new_photo) = case.record_photo(&other, "After rotation");
    case.record_photo(&seized_phone, "The phone's own, after rotation");
    let blobs = case.blobs();
    assert_eq!(blobs.len(), 3);
    let material = seized(&[seized_phone.dir.path(), &case.server.data]);
    assert_eq!(
        attachments_opened(&material, &blobs, &case.server.data),
        0,
        "after rotation the phone still opens an attachment"
    );

    // The coordinator reads old (v1) and new (v2) in the CLI.
    case.coordinator.ok(&["sync"]);
    let out = tempfile::tempdir().unwrap();
    for (report, photo, epoch) in [(&old_report, &old_photo, 1), (&new_report, &new_photo, 2)] {
        let listed = &case.coordinator.attachments(report)[0];
        assert_eq!(listed["key_epoch"], epoch);
        let target = out.path().join(format!("{epoch}.jpg"));
        case.coordinator
            .fetch_attachment(listed["id"].as_str().unwrap(), &target);
        assert_eq!(&std::fs::read(&target).unwrap(), photo);
    }
    let exported = out.path().join("export");
    case.coordinator.ok(&[
        "export",
        "--case",
        "almaty",
        "--format",
        "json",
        "--out",
        out.path().join("export.json").to_str().unwrap(),
        "--with-attachments",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(every_file(&exported).len(), 3);
}

#[test]
fn a_reporter_given_a_wrong_fingerprint_refuses_the_servers_key() {
    let case = case();
    case.coordinator.ok(&["key", "new", "--case", "almaty"]);
    let real = case.coordinator.case_key_fingerprint("almaty");
    let wrong = CasePrivateKey::generate(1).unwrap().public().fingerprint();
    assert_ne!(real, wrong);
    let reporter = DeviceHome::new();
    let token = case.server.invite("almaty", "reporter");
    let out = reporter.run(&[
        "device",
        "enroll",
        "--server",
        &case.server.url,
        "--token",
        &token,
        "--case-key-fingerprint",
        &wrong,
    ]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("does not match the fingerprint your invite gives") && said.contains(&wrong),
        "{said}"
    );
    // Nothing was taken: the device seals nothing, and says why.
    let photo = case.files.path().join("p.jpg");
    std::fs::write(&photo, b"a photo").unwrap();
    let out = reporter.run(&[
        "record",
        "--case",
        "almaty",
        "--title",
        "t",
        "--at",
        "2016-05-21T10:40:00+06:00",
        "--attach",
        photo.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no key for case"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A malformed fingerprint is refused before the token is spent.
    let token = case.server.invite("almaty", "reporter");
    let careful = DeviceHome::new();
    let out = careful.run(&[
        "device",
        "enroll",
        "--server",
        &case.server.url,
        "--token",
        &token,
        "--case-key-fingerprint",
        "not-a-fingerprint",
    ]);
    assert!(!out.status.success());
    careful.ok(&[
        "device",
        "enroll",
        "--server",
        &case.server.url,
        "--token",
        &token,
        "--case-key-fingerprint",
        &real,
    ]);
    careful.record("almaty", "sealed", &["--attach", photo.to_str().unwrap()]);
}

#[test]
fn a_server_that_substitutes_the_case_key_is_detected() {
    let case = case();
    case.coordinator.ok(&["key", "new", "--case", "almaty"]);
    let real = case.coordinator.case_key_fingerprint("almaty");
    let trusting = case.reporter_with_invite();

    // The operator enrolls a "coordinator" device of its own, has it sign
    // a key of its own for epoch 1, and puts that in place of the real one
    // in the database.
    let rogue = enrolled_device(&case.server, "almaty", "coordinator");
    let planted = CasePrivateKey::generate(1).unwrap();
    rogue.ok(&["key", "add", "--case", "almaty", &planted.share_code()]);
    let db = rusqlite::Connection::open(case.server.data.join("fieldsync.sqlite3")).unwrap();
    let case_id: String = db
        .query_row("SELECT id FROM cases WHERE name = 'almaty'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let substitute = fieldsync_core::replica::Replica::open(rogue.dir.path())
        .unwrap()
        .case_key_publications("almaty", &case_id.parse().unwrap())
        .unwrap()
        .remove(0);
    let changed = db
        .execute(
            "UPDATE case_public_keys SET public_key = ?1, signer = ?2, signature = ?3
             WHERE epoch = 1",
            rusqlite::params![
                hex::decode(&substitute.public_key).unwrap(),
                rogue.id,
                hex::decode(&substitute.signature).unwrap()
            ],
        )
        .unwrap();
    assert_eq!(changed, 1);

    // At enrollment: the invite's fingerprint exposes the substitute.
    let printed = case.coordinator.ok(&["invite"]);
    let token = printed.lines().next().unwrap();
    assert_eq!(printed.lines().nth(1), Some(real.as_str()));
    let reporter = DeviceHome::new();
    let out = reporter.run(&[
        "device",
        "enroll",
        "--server",
        &case.server.url,
        "--token",
        token,
        "--case-key-fingerprint",
        &real,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may be substituting"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A device that already trusts epoch 1 refuses the substitute, and a
    // "rotation" signed by the server's own device, and keeps sealing to
    // the coordinator's key.
    let rogue_rotation = CasePrivateKey::generate(2).unwrap();
    rogue.ok(&[
        "key",
        "add",
        "--case",
        "almaty",
        &rogue_rotation.share_code(),
    ]);
    let out = trusting.run(&["sync", "--json"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("this device already trusts a different key"),
        "{said}"
    );
    assert!(
        said.contains("signed by a device that signed no key this device trusts"),
        "{said}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons: Vec<&str> = summary["case_keys"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["substituted", "untrusted_signer"]);
    let (report, _) = case.record_photo(&trusting, "Sealed to the real key");
    assert_eq!(trusting.attachments(&report)[0]["key_epoch"], 1);
    case.coordinator.ok(&["sync"]);
    let target = case.files.path().join("out.jpg");
    let id = case.coordinator.attachments(&report)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    case.coordinator.fetch_attachment(&id, &target);
}
