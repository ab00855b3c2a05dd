//! A fault-injecting TCP proxy for tests: it sits between devices and the
//! server on loopback and cuts connections after a random number of bytes,
//! counting every byte it forwards, so a test can say how much a transfer
//! really cost and what was injected.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::Rng;

/// What the proxy does to connections.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Cut a connection once this many bytes (drawn per connection from the
    /// range) went from the device to the server.
    pub cut_upstream_after: Option<(u64, u64)>,
    /// The same, for bytes from the server to the device.
    pub cut_downstream_after: Option<(u64, u64)>,
    /// Stop cutting after this many cuts (the network gets better).
    pub max_cuts: u64,
}

/// What crossed the proxy.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub cuts: AtomicU64,
}

pub struct FaultProxy {
    pub url: String,
    pub counters: Arc<Counters>,
    faults: Arc<Mutex<Faults>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`host:port`).
    pub fn start(upstream: &str, faults: Faults, rng: Rng) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy addr"));
        let counters = Arc::new(Counters::default());
        let faults = Arc::new(Mutex::new(faults));
        let stop = Arc::new(AtomicBool::new(false));
        let rng = Arc::new(Mutex::new(rng));
        {
            let (counters, faults, stop, upstream) = (
                counters.clone(),
                faults.clone(),
                stop.clone(),
                upstream.to_owned(),
            );
            listener
                .set_nonblocking(true)
                .expect("nonblocking listener");
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((device, _)) => {
                            let _ = device.set_nonblocking(false);
                            let plan = faults.lock().expect("faults").clone();
                            let mut rng = rng.lock().expect("rng");
                            let mut draw =
                                |range: Option<(u64, u64)>| range.map(|(lo, hi)| rng.range(lo, hi));
                            let up_budget = draw(plan.cut_upstream_after);
                            let down_budget = draw(plan.cut_downstream_after);
                            drop(rng);
                            let (counters, upstream) = (counters.clone(), upstream.clone());
                            // Connect off the accept loop: one slow connect
                            // must not hold up the other devices.
                            thread::spawn(move || {
                                let Ok(server) = TcpStream::connect(&upstream) else {
                                    return;
                                };
                                counters.connections.fetch_add(1, Ordering::Relaxed);
                                let max_cuts = plan.max_cuts;
                                pipe(&device, &server, up_budget, max_cuts, &counters, true);
                                pipe(&server, &device, down_budget, max_cuts, &counters, false);
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self {
            url,
            counters,
            faults,
            stop,
        }
    }

    /// Changes the faults for connections made from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().expect("faults") = faults;
    }

    pub fn cuts(&self) -> u64 {
        self.counters.cuts.load(Ordering::Relaxed)
    }

    pub fn bytes_up(&self) -> u64 {
        self.counters.bytes_up.load(Ordering::Relaxed)
    }

    pub fn bytes_down(&self) -> u64 {
        self.counters.bytes_down.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` → `to` on a thread; after `budget` bytes (if any, and
/// while cuts remain) it shuts both connections down mid-stream. The
/// thread ends when either side closes (at the latest when the test's
/// processes exit).
fn pipe(
    from: &TcpStream,
    to: &TcpStream,
    budget: Option<u64>,
    max_cuts: u64,
    counters: &Arc<Counters>,
    upstream: bool,
) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let counters = counters.clone();
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut n = n;
            let mut cut = false;
            if let Some(budget) = budget {
                // Reserve the cut first, so concurrent connections never
                // make more than `max_cuts` between them.
                if sent + n as u64 >= budget
                    && counters
                        .cuts
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                            (c < max_cuts).then_some(c + 1)
                        })
                        .is_ok()
                {
                    n = (budget - sent) as usize;
                    cut = true;
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n as u64;
            let counter = if upstream {
                &counters.bytes_up
            } else {
                &counters.bytes_down
            };
            counter.fetch_add(n as u64, Ordering::Relaxed);
            if cut {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
