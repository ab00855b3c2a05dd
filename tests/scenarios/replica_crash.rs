//! Invariant 1 on the device: a change the replica reported as saved
//! survives the process being killed at any instant.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fieldsync_core::replica::Replica;
use fieldsync_core::ReportId;
use fieldsync_tests::Rng;

const KILLS: usize = 50;

#[test]
fn every_change_reported_saved_survives_sigkill() {
    let home = tempfile::tempdir().unwrap();
    let mut rng = Rng::from_env_or_random();
    let mut saved: Vec<(ReportId, Option<String>)> = Vec::new();
    for _ in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_replica-writer"))
            .arg(home.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the first write, then kill at a random moment after it.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("writer started");
        std::thread::sleep(Duration::from_millis(rng.range(0, 60)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        for line in std::iter::once(first).chain(rx.try_iter()) {
            let mut parts = line.split(' ');
            assert_eq!(parts.next(), Some("saved"), "{line}");
            let id: ReportId = parts.next().unwrap().parse().unwrap();
            let what = parts.next().unwrap();
            saved.push((id, (what != "created").then(|| what.to_owned())));
        }
    }
    let replica = Replica::open(home.path()).unwrap();
    let mut changes = 0;
    for (id, hash) in &saved {
        let mut doc = replica
            .document(id)
            .unwrap_or_else(|e| panic!("report {id} lost: {e}"));
        if let Some(hash) = hash {
            let hash = hash.parse().unwrap();
            assert!(
                fieldsync_core::signed_change::has_change(&doc, &hash),
                "change {hash} of {id} lost"
            );
            assert!(
                replica.signature(id, &hash).unwrap().is_some(),
                "signature of {hash} lost"
            );
            changes += 1;
        }
        let _ = doc.get_heads();
    }
    println!(
        "{KILLS} kills; {} reports and {changes} changes reported saved, all present",
        saved.len() - changes
    );
    assert!(
        changes > KILLS,
        "the writer barely wrote anything: {changes} changes"
    );
}
