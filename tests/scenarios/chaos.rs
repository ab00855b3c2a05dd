//! Chaos: twenty devices record, edit, attach and sync at random through a
//! network that drops, delays, truncates and duplicates, while the server
//! is SIGKILLed and restarted at random moments. A ledger in the test
//! keeps everything each device did. Then the network heals, every device
//! syncs cleanly, and nothing any device recorded may be missing: every
//! replica equals the server, every change is there, every attachment
//! decrypts to its original bytes.
//!
//! Short by default (`CHAOS_SECS`); `FIELDSYNC_CHAOS_SECS=600` for a long
//! run, `FIELDSYNC_SEED` to replay one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldsync_core::hashing::sha256_file;
use fieldsync_core::replica::Replica;
use fieldsync_tests::blobs::s3_endpoint;
use fieldsync_tests::proxy::{FaultProxy, Faults, RandomFaults};
use fieldsync_tests::stores::{on_postgres, processes_on_one_database};
use fieldsync_tests::{enrolled_device, DeviceHome, Rng, ServerProcess};
use serde_json::Value;

const DEVICES: usize = 20;
const COORDINATORS: usize = 3;
/// Seconds of chaos unless `FIELDSYNC_CHAOS_SECS` says otherwise.
const CHAOS_SECS: u64 = 30;
const CASE: &str = "chaos";

/// One thing a device did, kept to check against the server at the end.
#[derive(Clone, Debug)]
enum Entry {
    Recorded {
        report: String,
        title: String,
        at: String,
    },
    Appended {
        report: String,
        text: String,
    },
    Tagged {
        report: String,
        tag: String,
    },
    TimedEvent {
        report: String,
        text: String,
    },
    Attached {
        report: String,
        name: String,
        sha256: String,
    },
    Synced {
        outcome: SyncOutcome,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SyncOutcome {
    Ok,
    /// Changes went through, an attachment did not (exit code 4).
    AttachmentLeft,
    /// The sync failed cleanly: "nothing was lost".
    Failed,
}

struct Device {
    home: DeviceHome,
    coordinator: bool,
    ledger: Vec<Entry>,
}

#[test]
fn twenty_devices_through_a_faulty_network_and_server_kills_lose_nothing() {
    let data = tempfile::tempdir().unwrap();
    chaos(vec![ServerProcess::start(data.path(), "127.0.0.1:0")]);
}

/// The same chaos against three `fieldsync serve` processes on one
/// PostgreSQL database and one bucket: the proxy spreads the devices'
/// connections over the three, and the kills take one of them at a time.
/// Runs where the scenarios have both (`./test`'s second pass:
/// `FIELDSYNC_TEST_STORE=postgres` under `tests/with-s3-server`).
#[test]
fn three_processes_on_one_database_through_faults_and_kills_lose_nothing() {
    if !on_postgres() || s3_endpoint().is_none() {
        println!("skipped: needs FIELDSYNC_TEST_STORE=postgres and an S3 server (./test runs it)");
        return;
    }
    let (_dirs, servers) = processes_on_one_database(3);
    chaos(servers);
}

/// Twenty devices through a faulty proxy to `servers`, which are killed
/// and restarted at random; then every device settles, and nothing any
/// of them recorded may be missing.
fn chaos(mut servers: Vec<ServerProcess>) {
    let mut rng = Rng::from_env_or_random();
    let secs = std::env::var("FIELDSYNC_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CHAOS_SECS);
    let files = tempfile::tempdir().unwrap();
    // From here: starting the servers built the CLI first, if it had to.
    let started = Instant::now();
    servers[0].create_case(CASE);
    let addresses: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let proxy =
        FaultProxy::start_balanced(&addresses, Faults::default(), Rng::seeded(rng.next_u64()));

    // The checker: a coordinator straight on a server, never faulted.
    let server = &servers[0];
    let checker = enrolled_device(server, CASE, "coordinator");
    let code = checker.ok(&["key", "new", "--case", CASE]);
    let code = code.lines().next().unwrap().to_owned();
    let fingerprint = checker.case_key_fingerprint(CASE);
    let devices: Vec<Device> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..DEVICES)
            .map(|n| {
                let (proxy, code, fingerprint) = (&proxy, &code, &fingerprint);
                s.spawn(move || {
                    let coordinator = n < COORDINATORS;
                    let role = if coordinator {
                        "coordinator"
                    } else {
                        "reporter"
                    };
                    let home = DeviceHome::new();
                    let token = server.invite(CASE, role);
                    home.ok(&[
                        "device",
                        "enroll",
                        "--server",
                        &proxy.url,
                        "--token",
                        &token,
                        "--case-key-fingerprint",
                        fingerprint,
                    ]);
                    // Coordinators get the private key in person; reporters
                    // took the public key with enrollment.
                    if coordinator {
                        home.ok(&["key", "add", "--case", CASE, code]);
                    }
                    Device {
                        home,
                        coordinator,
                        ledger: Vec::new(),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let setup = started.elapsed();

    proxy.set_faults(Faults {
        random: RandomFaults::every_kind(400),
        ..Faults::default()
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let devices: Vec<Arc<Mutex<Device>>> = devices
        .into_iter()
        .map(|d| Arc::new(Mutex::new(d)))
        .collect();
    let workers: Vec<_> = devices
        .iter()
        .enumerate()
        .map(|(n, device)| {
            let device = device.clone();
            let stop = stop.clone();
            let mut rng = Rng::seeded(rng.next_u64());
            let files = files.path().to_owned();
            std::thread::spawn(move || {
                let mut device = device.lock().unwrap();
                let mut step = 0;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    act(&mut device, n, step, &mut rng, &files);
                    step += 1;
                }
            })
        })
        .collect();

    let mut kills = 0;
    while Instant::now() + Duration::from_millis(1_500) < deadline {
        std::thread::sleep(Duration::from_millis(rng.range(1_000, 5_000)));
        // SIGKILL one of them, then start it on the same port and data.
        let victim = rng.range(0, servers.len() as u64) as usize;
        servers[victim].restart();
        kills += 1;
    }
    for w in workers {
        if let Err(e) = w.join() {
            stop.store(true, Ordering::Relaxed);
            std::panic::resume_unwind(e);
        }
    }
    let chaos = proxy.injected();
    let devices: Vec<Device> = devices
        .into_iter()
        .map(|d| Arc::try_unwrap(d).ok().unwrap().into_inner().unwrap())
        .collect();

    // The network heals: every device syncs until it has nothing to send,
    // then once more to receive what the others sent.
    proxy.set_faults(Faults::default());
    std::thread::scope(|s| {
        for d in &devices {
            s.spawn(|| settle(&d.home));
        }
    });
    std::thread::scope(|s| {
        for d in &devices {
            s.spawn(|| {
                let summary: Value = serde_json::from_str(&d.home.ok(&["sync", "--json"])).unwrap();
                assert_eq!(summary["sent"], 0, "device {} still had changes", d.home.id);
            });
        }
    });
    checker.ok(&["sync"]);

    // Every replica equals the server.
    let on_server = reports(&checker);
    let server_heads = heads(checker.dir.path());
    let views: Vec<BTreeMap<String, Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = devices
            .iter()
            .map(|d| s.spawn(|| reports(&d.home)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (d, mine) in devices.iter().zip(views) {
        let expected: BTreeMap<&String, &Value> = on_server
            .iter()
            .filter(|(_, r)| d.coordinator || r["created_by"] == d.home.id.as_str())
            .collect();
        assert_eq!(
            mine.keys().collect::<Vec<_>>(),
            expected.keys().copied().collect::<Vec<_>>(),
            "device {} holds other reports than the server gives it",
            d.home.id
        );
        for (id, report) in &mine {
            assert_eq!(report, expected[id], "report {id} on device {}", d.home.id);
        }
        for (id, h) in heads(d.home.dir.path()) {
            assert_eq!(
                Some(&h),
                server_heads.get(&id),
                "heads of {id} on {}",
                d.home.id
            );
        }
    }

    // Every attachment downloads and decrypts: the checker exports them all.
    let fetched = tempfile::tempdir().unwrap();
    let dir = fetched.path().to_str().unwrap();
    checker.ok(&[
        "export",
        "--case",
        CASE,
        "--format",
        "json",
        "--out",
        &format!("{dir}/export.json"),
        "--with-attachments",
        dir,
    ]);
    // `<attachment id>-<file name>`; file names are unique in this test.
    let decrypted: HashMap<String, (String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|path| {
            let file = path.file_name()?.to_str()?.to_owned();
            let (id, name) = file.split_once('-')?;
            Some((name.to_owned(), (id.to_owned(), path.clone())))
        })
        .collect();

    // Every change any device recorded is there.
    let (mut changes, mut checked_attachments, mut syncs) = (0, 0, HashMap::new());
    for d in &devices {
        for entry in &d.ledger {
            let report = |id: &str| -> &Value {
                on_server
                    .get(id)
                    .unwrap_or_else(|| panic!("report {id} by {} lost", d.home.id))
            };
            match entry {
                Entry::Recorded {
                    report: id,
                    title,
                    at,
                } => {
                    let r = report(id);
                    assert_eq!(r["created_by"], d.home.id.as_str());
                    assert_eq!(r["occurred_at"], at.as_str());
                    // Titles are never edited here, so the recorded one stays.
                    assert_eq!(r["title"], title.as_str());
                }
                Entry::Appended { report: id, text } => {
                    let description = report(id)["description"].as_str().unwrap();
                    assert!(description.contains(text), "{text:?} lost from {id}");
                }
                Entry::Tagged { report: id, tag } => {
                    let tags = report(id)["tags"].as_array().unwrap();
                    assert!(tags.iter().any(|t| t == tag), "tag {tag} lost from {id}");
                }
                Entry::TimedEvent { report: id, text } => {
                    let entries = report(id)["timeline"].as_array().unwrap();
                    assert!(
                        entries.iter().any(|e| e["text"] == text.as_str()),
                        "timeline entry {text:?} lost from {id}"
                    );
                }
                Entry::Attached {
                    report: id,
                    name,
                    sha256,
                } => {
                    let (attachment, path) = decrypted
                        .get(name)
                        .unwrap_or_else(|| panic!("attachment {name} of {id} not exported"));
                    let listed = report(id)["attachments"].as_array().unwrap();
                    assert!(
                        listed.iter().any(|a| a["id"] == attachment.as_str()),
                        "attachment {name} is not on report {id}"
                    );
                    let (_, got) = sha256_file(path).unwrap();
                    assert_eq!(
                        &got, sha256,
                        "attachment {name} of {id} decrypts to other bytes"
                    );
                    checked_attachments += 1;
                }
                Entry::Synced { outcome } => {
                    *syncs.entry(*outcome).or_insert(0) += 1;
                }
            }
            if !matches!(entry, Entry::Attached { .. } | Entry::Synced { .. }) {
                changes += 1;
            }
        }
    }
    let reports_recorded = devices
        .iter()
        .flat_map(|d| &d.ledger)
        .filter(|e| matches!(e, Entry::Recorded { .. }))
        .count();
    println!(
        "chaos: {secs} s of chaos, {:.1} s in all (setup {:.1} s); {DEVICES} devices ({COORDINATORS} coordinators)",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64()
    );
    println!(
        "chaos: injected {chaos}; {kills} kills of {} server processes",
        servers.len()
    );
    println!(
        "chaos: syncs: {} ok, {} with an attachment left for later, {} failed cleanly",
        syncs.get(&SyncOutcome::Ok).unwrap_or(&0),
        syncs.get(&SyncOutcome::AttachmentLeft).unwrap_or(&0),
        syncs.get(&SyncOutcome::Failed).unwrap_or(&0)
    );
    println!(
        "chaos: {} reports on the server ({reports_recorded} recorded), {changes} changes checked, {checked_attachments} attachments downloaded and checked",
        on_server.len()
    );
    assert_eq!(on_server.len(), reports_recorded);
    assert!(kills >= secs / 6, "the server was barely killed ({kills})");
    assert!(chaos.total() > 0, "no fault was injected");
    assert!(syncs.contains_key(&SyncOutcome::Ok), "no sync got through");
}

/// One random step of a device: record, edit, attach or sync.
fn act(device: &mut Device, n: usize, step: usize, rng: &mut Rng, files: &Path) {
    let tag = format!("d{n}s{step}");
    let roll = rng.range(0, 100);
    let own: Vec<String> = device
        .ledger
        .iter()
        .filter_map(|e| match e {
            Entry::Recorded { report, .. } => Some(report.clone()),
            _ => None,
        })
        .collect();
    let editable = if device.coordinator {
        // Any report this coordinator has received, or made.
        let replica = Replica::open(device.home.dir.path()).unwrap();
        replica
            .report_ids()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        own
    };
    if roll < 25 || editable.is_empty() {
        let title = format!("report {tag}");
        let at = format!(
            "2016-05-{:02}T{:02}:{:02}:00+06:00",
            rng.range(1, 29),
            rng.range(0, 24),
            rng.range(0, 60)
        );
        let mut args = vec![
            "record".to_owned(),
            "--case".into(),
            CASE.into(),
            "--title".into(),
            title.clone(),
            "--at".into(),
            at.clone(),
            "--text".into(),
            format!("Recorded as {tag}."),
        ];
        let attached = (rng.range(0, 3) == 0).then(|| attachment(rng, files, &tag));
        if let Some((path, _, _)) = &attached {
            args.extend(["--attach".into(), path.to_str().unwrap().into()]);
        }
        let report = ok(device, &args).trim().to_owned();
        device.ledger.push(Entry::Recorded {
            report: report.clone(),
            title,
            at,
        });
        if let Some((_, name, sha256)) = attached {
            device.ledger.push(Entry::Attached {
                report,
                name,
                sha256,
            });
        }
    } else if roll < 60 {
        let report = editable[rng.range(0, editable.len() as u64) as usize].clone();
        let kind = rng.range(0, 10);
        let (args, entry) = match kind {
            0..=3 => {
                let text = format!(" Seen by {tag}.");
                (
                    vec!["--append-text".to_owned(), text.clone()],
                    Entry::Appended {
                        report: report.clone(),
                        text,
                    },
                )
            }
            4..=5 => (
                vec!["--add-tag".to_owned(), tag.clone()],
                Entry::Tagged {
                    report: report.clone(),
                    tag: tag.clone(),
                },
            ),
            6..=7 => {
                let text = format!("entry {tag}");
                (
                    vec![
                        "--timeline".to_owned(),
                        format!("2016-05-21T12:00:00+06:00 {text}"),
                    ],
                    Entry::TimedEvent {
                        report: report.clone(),
                        text,
                    },
                )
            }
            _ => {
                let (path, name, sha256) = attachment(rng, files, &tag);
                (
                    vec!["--attach".to_owned(), path.to_str().unwrap().to_owned()],
                    Entry::Attached {
                        report: report.clone(),
                        name,
                        sha256,
                    },
                )
            }
        };
        let mut all = vec!["edit".to_owned(), report];
        all.extend(args);
        ok(device, &all);
        device.ledger.push(entry);
    } else {
        let out = device.home.run(&["sync"]);
        let outcome = sync_outcome(&out);
        device.ledger.push(Entry::Synced { outcome });
    }
}

/// What a sync under chaos did; anything but a clean outcome fails the test.
fn sync_outcome(out: &Output) -> SyncOutcome {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stdout.contains("refused change"),
        "sync misbehaved:\n{stdout}\n{stderr}"
    );
    match out.status.code() {
        Some(0) => SyncOutcome::Ok,
        Some(4) if stdout.contains("not uploaded") => SyncOutcome::AttachmentLeft,
        Some(1) if stderr.contains("sync failed") && stderr.contains("nothing was lost") => {
            SyncOutcome::Failed
        }
        code => panic!("sync failed without a clear message ({code:?}):\n{stdout}\n{stderr}"),
    }
}

/// Syncs until the device has nothing left to send and no attachment
/// waiting (a few rounds at most: a round may meet an upload the server
/// lost to a kill).
fn settle(home: &DeviceHome) {
    let mut last = String::new();
    for _ in 0..4 {
        let out = home.run(&["sync"]);
        if out.status.success() {
            return;
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    panic!(
        "device {} could not sync on a healed network: {last}",
        home.id
    );
}

/// A small random file, named uniquely; returns (path, name, sha256).
fn attachment(rng: &mut Rng, files: &Path, tag: &str) -> (PathBuf, String, String) {
    let len = if rng.range(0, 5) == 0 {
        rng.range(100_000, 300_000)
    } else {
        rng.range(1, 20_000)
    } as usize;
    let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    let name = format!("{tag}.bin");
    let path = files.join(&name);
    std::fs::write(&path, &bytes).unwrap();
    let (_, sha256) = sha256_file(&path).unwrap();
    (path, name, sha256)
}

fn ok(device: &Device, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    device.home.ok(&args)
}

/// A device's reports by id, as `timeline --json` shows them.
fn reports(home: &DeviceHome) -> BTreeMap<String, Value> {
    home.timeline(CASE)
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect()
}

/// Every report's heads in a device's replica, sorted.
fn heads(home: &Path) -> BTreeMap<String, Vec<String>> {
    let replica = Replica::open(home).unwrap();
    replica
        .report_ids()
        .unwrap()
        .into_iter()
        .map(|id| {
            let mut doc = replica.document(&id).unwrap();
            let mut h: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
            h.sort();
            (id.to_string(), h)
        })
        .collect()
}

/// A network that delivers a copy of each request ahead of the request
/// itself: the server applies the copy and refuses the original as a
/// replay. The device must not report that as a failed sync: it signs the
/// same request afresh and gets its answer.
#[test]
fn a_sync_overtaken_by_its_own_duplicate_still_succeeds() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case(CASE);
    let proxy = FaultProxy::start(&server.addr, Faults::default(), Rng::seeded(7));
    let reporter = DeviceHome::new();
    reporter.ok(&[
        "device",
        "enroll",
        "--server",
        &proxy.url,
        "--token",
        &server.invite(CASE, "reporter"),
    ]);
    let checker = enrolled_device(&server, CASE, "coordinator");
    proxy.set_faults(Faults {
        random: RandomFaults {
            duplicate: 1000,
            duplicate_first: true,
            ..RandomFaults::default()
        },
        ..Faults::default()
    });

    // Sync until three syncs have been overtaken. Under full-suite load a
    // sync now and then reaches the server without a copy (twice in CI: 2
    // copies in 3 syncs, on 4 connections; the cause, in the proxy's
    // timing, is not found), which is not what this test is about. Every
    // sync, overtaken or not, must succeed.
    let mut titles = Vec::new();
    for n in 0..10 {
        let title = format!("Checkpoint {n}");
        reporter.record(CASE, &title, &[]);
        let out = reporter.run(&["sync", "--json"]);
        assert!(
            out.status.success(),
            "sync {n} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        titles.push(title);
        if proxy.injected().duplicated_requests >= 3 {
            break;
        }
    }
    let injected = proxy.injected();
    assert!(injected.duplicated_requests >= 3, "{injected}");

    checker.ok(&["sync"]);
    let seen: Vec<String> = reports(&checker)
        .values()
        .map(|r| r["title"].as_str().unwrap_or_default().to_owned())
        .collect();
    for title in &titles {
        assert!(seen.contains(title), "{title} missing from {seen:?}");
    }
}
