//! Invariant 1 on the server: a change the server acknowledged survives the
//! server being killed with SIGKILL at any instant, while devices sync.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldsync_core::replica::Replica;
use fieldsync_tests::{enrolled_device, fieldsync_ok, Rng, ServerProcess};

const DEVICES: usize = 5;
const ROUNDS_PER_DEVICE: usize = 30;

/// Every change hash in a device's replica.
fn change_hashes(home: &Path) -> HashSet<String> {
    let replica = Replica::open(home).unwrap();
    let mut hashes = HashSet::new();
    for id in replica.report_ids().unwrap() {
        let mut doc = replica.document(&id).unwrap();
        hashes.extend(doc.get_changes(&[]).iter().map(|c| c.hash().to_string()));
    }
    hashes
}

#[test]
fn acknowledged_changes_survive_sigkill_of_the_server_during_sync() {
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("c");
    let devices: Vec<_> = (0..DEVICES)
        .map(|_| enrolled_device(&server, "c", "reporter"))
        .collect();
    let coord = enrolled_device(&server, "c", "coordinator");
    let mut rng = Rng::from_env_or_random();

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<(usize, usize)>> = Arc::default(); // (ok syncs, failed syncs)
    let workers: Vec<_> = devices
        .iter()
        .enumerate()
        .map(|(n, device)| {
            let home = device.path().to_owned();
            let acked = acked.clone();
            let outcomes = outcomes.clone();
            std::thread::spawn(move || {
                let mut report: Option<String> = None;
                for round in 0..ROUNDS_PER_DEVICE {
                    let home_arg = ["--home", home.as_str()];
                    match &report {
                        Some(id) if round % 3 != 0 => {
                            let text = format!(" edit {round} by {n}.");
                            fieldsync_ok(
                                &[&home_arg[..], &["edit", id, "--append-text", &text]].concat(),
                            );
                        }
                        _ => {
                            let title = format!("report {round} of device {n}");
                            let id = fieldsync_ok(
                                &[
                                    &home_arg[..],
                                    &[
                                        "record",
                                        "--case",
                                        "c",
                                        "--title",
                                        &title,
                                        "--at",
                                        "2016-05-21T10:00:00+06:00",
                                    ],
                                ]
                                .concat(),
                            );
                            report = Some(id.trim().to_owned());
                        }
                    }
                    // Everything this device holds before a successful sync is
                    // acknowledged by it.
                    let before = change_hashes(Path::new(&home));
                    let out = fieldsync_tests::fieldsync(&[&home_arg[..], &["sync"]].concat());
                    let mut o = outcomes.lock().unwrap();
                    if out.status.success() {
                        o.0 += 1;
                        acked.lock().unwrap().extend(before);
                    } else {
                        o.1 += 1;
                        let message = String::from_utf8_lossy(&out.stderr);
                        assert!(message.contains("nothing was lost"), "{message}");
                    }
                }
            })
        })
        .collect();

    let mut kills = 0;
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            for w in workers {
                w.join().unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(rng.range(20, 250)));
        // On a loaded machine a debug CLI can take longer to sync than the
        // longest pause, and then no sync would ever complete between two
        // kills. Every fifth kill waits (up to 20 s) for one more sync to
        // succeed first, so acknowledgements interleave with kills whatever
        // the machine's speed.
        if kills % 5 == 4 {
            let before = outcomes.lock().unwrap().0;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while outcomes.lock().unwrap().0 == before
                && !done.load(Ordering::SeqCst)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if done.load(Ordering::SeqCst) {
            break;
        }
        server.restart(); // SIGKILL, then start on the same port and data
        kills += 1;
    }
    watcher.join().unwrap();

    coord.ok(&["sync"]);
    let on_server = change_hashes(coord.dir.path());
    let acked = acked.lock().unwrap();
    let missing: Vec<_> = acked.difference(&on_server).collect();
    let (ok, failed) = *outcomes.lock().unwrap();
    println!(
        "{kills} server kills; {ok} syncs succeeded, {failed} failed cleanly; {} acknowledged changes checked, {} missing",
        acked.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged changes lost: {missing:?}");
    assert!(kills >= 3, "the server was barely killed ({kills} times)");
    assert!(ok > 0 && !acked.is_empty());

    // And after a clean final sync everything any device recorded is there.
    for device in &devices {
        device.ok(&["sync"]);
    }
    coord.ok(&["sync"]);
    let on_server = change_hashes(coord.dir.path());
    for device in &devices {
        let recorded = change_hashes(device.dir.path());
        assert!(
            recorded.is_subset(&on_server),
            "device {} lost changes",
            device.id
        );
    }
}
