//! Finding 1: a few hundred bytes from one reporter froze the server. A
//! change declaring 2^62 operations held the write lock for good, one of
//! ten million took 26 s and 3.9 GB, and a compressed change inflating to
//! 700 MB peaked at 4 GB. Each is now refused with a 4xx before Automerge
//! reads it, the server's memory hardly moves, and another device syncs
//! through the attack.

use std::io::Write;
use std::time::{Duration, Instant};

use fieldsync_core::change_limits::craft::{self, Header};
use fieldsync_core::ReportId;
use fieldsync_tests::http::{device_key, offer_changes, sign_raw_change};
use fieldsync_tests::{enrolled_device, proc_status_kib, ServerProcess};

/// A deflate stream of `mib` MiB of zeros, made by repeating one
/// byte-aligned block (a sync flush), so the test need not compress
/// hundreds of megabytes: what an attacker would send.
fn deflated_zeros(mib: usize) -> Vec<u8> {
    let mut block = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    block.write_all(&vec![0u8; 1 << 20]).unwrap();
    block.flush().unwrap(); // a sync flush: the block ends on a byte boundary
    let block = block.get_ref().clone();
    let mut out = Vec::with_capacity(block.len() * mib + 2);
    for _ in 0..mib {
        out.extend_from_slice(&block);
    }
    out.extend_from_slice(&[0x03, 0x00]); // an empty final block
    out
}

#[test]
fn changes_declaring_billions_of_operations_or_inflating_to_gigabytes_are_refused_at_once() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let attacker = enrolled_device(&server, "almaty", "reporter");
    let bystander = enrolled_device(&server, "almaty", "reporter");
    let key = device_key(attacker.dir.path());
    let actor = *key.public_key().as_bytes();
    let header = Header {
        deps: &[],
        actor: &actor,
        seq: 1,
        start_op: 1,
        time_ms: 1_463_800_000_000,
    };
    let bomb = deflated_zeros(500);
    assert!(
        bomb.len() < 700_000,
        "the bomb fits in one request: {} bytes",
        bomb.len()
    );
    let attacks = [
        (
            "2^62 operations",
            craft::run_of_puts(&header, "title", 1 << 62),
        ),
        (
            "10M operations",
            craft::run_of_puts(&header, "title", 10_000_000),
        ),
        (
            "1M operations",
            craft::run_of_puts(&header, "title", 1_000_000),
        ),
        ("inflation bomb (500 MiB)", craft::chunk(2, &bomb)),
    ];

    let pid = server.child.id();
    let peak_before = proc_status_kib(pid, "VmHWM");
    let url = server.url.clone();
    // Another reporter records and syncs throughout the attack.
    let honest = std::thread::spawn(move || {
        let mut took = Vec::new();
        for i in 0..3 {
            bystander.record("almaty", &format!("report {i}"), &[]);
            let started = Instant::now();
            bystander.ok(&["sync"]);
            took.push(started.elapsed());
        }
        took
    });
    for (name, bytes) in attacks {
        let len = bytes.len();
        let started = Instant::now();
        let reply = offer_changes(
            &url,
            &key,
            &ReportId::random().unwrap(),
            vec![],
            vec![sign_raw_change(&key, bytes)],
        );
        let took = started.elapsed();
        println!(
            "{name}: {len} bytes, {} in {took:?}: {}",
            reply.status, reply.body
        );
        assert_eq!(reply.status, 400, "{name}: {}", reply.body);
        assert!(
            reply.body.contains("refused before parsing"),
            "{name}: {}",
            reply.body
        );
        // In a debug build on a loaded machine; the refusal itself reads
        // the change's bytes once. Before the fix, the first of these never
        // answered.
        assert!(took < Duration::from_secs(2), "{name} took {took:?}");
    }
    let took = honest.join().expect("the honest device's syncs succeed");
    println!("honest syncs during the attack: {took:?}");
    let grown = proc_status_kib(pid, "VmHWM").saturating_sub(peak_before);
    println!("server peak RSS grew by {grown} KiB");
    assert!(
        grown < 16 * 1024,
        "the server's peak RSS grew by {grown} KiB"
    );
    assert!(fieldsync_tests::http::send("GET", &server.url, "/healthz", &[], b"").status == 200);
}
