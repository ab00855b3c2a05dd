//! A fault-injecting TCP proxy for tests: it sits between devices and the
//! server on loopback, counts every byte it forwards, and injects faults
//! into connections, counting each fault it injected by kind, so a test can
//! say how much a transfer really cost and what was injected.
//!
//! Faults, per connection:
//! - a cut after a number of bytes drawn from a range, in either direction
//!   (`cut_upstream_after`, `cut_downstream_after`, at most `max_cuts`);
//! - at random (`Faults::random`, probabilities per mille), at most one of:
//!   dropping the connection part-way through the first request or the
//!   first response; delaying the first request or response; truncating
//!   it (a prefix goes through, then that direction is closed while the
//!   other keeps going, so the far side answers or reads a short
//!   message); duplicating the first request (the complete request is
//!   replayed to the server on a second connection, before or after the
//!   original, and the replay's answer thrown away).
//!
//! The proxy reads HTTP/1.1 framing only as far as it must to know where
//! the first message of a connection ends (`Content-Length`); anything
//! else is forwarded byte for byte.

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
    /// Faults drawn at random per connection.
    pub random: RandomFaults,
}

/// Per connection, the chance (per mille) of each fault; at most one is
/// drawn for a connection.
#[derive(Clone, Debug, Default)]
pub struct RandomFaults {
    /// Close both directions part-way through the first request.
    pub drop_request: u32,
    /// Close both directions part-way through the first response.
    pub drop_response: u32,
    /// Hold the first request or response for `delay_ms` before it goes on.
    pub delay: u32,
    pub delay_ms: (u64, u64),
    /// Forward a prefix of the first request (or response), then close
    /// that direction only: the server reads a short body, or the device
    /// a short answer.
    pub truncate: u32,
    /// Send the first complete request a second time on a new connection.
    pub duplicate: u32,
    /// Always send the duplicate before the original (else either, at random).
    pub duplicate_first: bool,
}

impl RandomFaults {
    /// A network that misbehaves on about `permille` of connections, the
    /// kinds in equal parts.
    pub fn every_kind(permille: u32) -> Self {
        let each = permille / 5;
        Self {
            drop_request: each,
            drop_response: each,
            delay: each,
            delay_ms: (100, 2_000),
            truncate: each,
            duplicate: each,
            duplicate_first: false,
        }
    }
}

/// What crossed the proxy, and every fault it injected by kind.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub cuts: AtomicU64,
    pub dropped_requests: AtomicU64,
    pub dropped_responses: AtomicU64,
    pub delays: AtomicU64,
    pub truncated_requests: AtomicU64,
    pub truncated_responses: AtomicU64,
    pub duplicated_requests: AtomicU64,
}

/// A snapshot of the faults injected so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    pub connections: u64,
    pub cuts: u64,
    pub dropped_requests: u64,
    pub dropped_responses: u64,
    pub delays: u64,
    pub truncated_requests: u64,
    pub truncated_responses: u64,
    pub duplicated_requests: u64,
}

impl Injected {
    /// Faults of every kind together.
    pub fn total(&self) -> u64 {
        self.cuts
            + self.dropped_requests
            + self.dropped_responses
            + self.delays
            + self.truncated_requests
            + self.truncated_responses
            + self.duplicated_requests
    }
}

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} faults on {} connections: {} cut, {} dropped mid-request, {} dropped mid-response, {} delayed, {} requests truncated, {} responses truncated, {} requests duplicated",
            self.total(),
            self.connections,
            self.cuts,
            self.dropped_requests,
            self.dropped_responses,
            self.delays,
            self.truncated_requests,
            self.truncated_responses,
            self.duplicated_requests
        )
    }
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
        Self::start_balanced(&[upstream.to_owned()], faults, rng)
    }

    /// As [`FaultProxy::start`], spreading connections over `upstreams`
    /// in turn, as a load balancer without health checks does: a
    /// connection to one that is down fails, and the device tries again.
    pub fn start_balanced(upstreams: &[String], faults: Faults, rng: Rng) -> Self {
        assert!(!upstreams.is_empty(), "a proxy needs an upstream");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy addr"));
        let counters = Arc::new(Counters::default());
        let faults = Arc::new(Mutex::new(faults));
        let stop = Arc::new(AtomicBool::new(false));
        let rng = Arc::new(Mutex::new(rng));
        {
            let (counters, faults, stop, upstreams) = (
                counters.clone(),
                faults.clone(),
                stop.clone(),
                upstreams.to_vec(),
            );
            let mut turn = 0usize;
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
                            let fault = Fault::draw(&plan.random, &mut rng);
                            let (up_rng, down_rng) =
                                (Rng::seeded(rng.next_u64()), Rng::seeded(rng.next_u64()));
                            drop(rng);
                            let upstream = upstreams[turn % upstreams.len()].clone();
                            turn += 1;
                            let counters = counters.clone();
                            // Connect off the accept loop: one slow connect
                            // must not hold up the other devices.
                            thread::spawn(move || {
                                let Ok(server) = TcpStream::connect(&upstream) else {
                                    return;
                                };
                                counters.connections.fetch_add(1, Ordering::Relaxed);
                                let up = Pipe {
                                    budget: up_budget,
                                    max_cuts: plan.max_cuts,
                                    upstream: Some(upstream),
                                    fault: fault.filter(|f| f.on_request()),
                                    rng: up_rng,
                                };
                                let down = Pipe {
                                    budget: down_budget,
                                    max_cuts: plan.max_cuts,
                                    upstream: None,
                                    fault: fault.filter(|f| !f.on_request()),
                                    rng: down_rng,
                                };
                                up.spawn(&device, &server, &counters);
                                down.spawn(&server, &device, &counters);
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

    /// Every fault injected so far, by kind.
    pub fn injected(&self) -> Injected {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Injected {
            connections: get(&c.connections),
            cuts: get(&c.cuts),
            dropped_requests: get(&c.dropped_requests),
            dropped_responses: get(&c.dropped_responses),
            delays: get(&c.delays),
            truncated_requests: get(&c.truncated_requests),
            truncated_responses: get(&c.truncated_responses),
            duplicated_requests: get(&c.duplicated_requests),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The random fault drawn for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    DropRequest,
    DropResponse,
    DelayRequest(u64),
    DelayResponse(u64),
    TruncateRequest,
    TruncateResponse,
    /// Replay first (the original then arrives second) or after.
    Duplicate {
        first: bool,
    },
}

impl Fault {
    fn draw(odds: &RandomFaults, rng: &mut Rng) -> Option<Self> {
        let roll = rng.range(0, 1000) as u32;
        let mut at = 0;
        let mut hit = |permille: u32| {
            at += permille;
            roll < at
        };
        let (lo, hi) = odds.delay_ms;
        Some(if hit(odds.drop_request) {
            Fault::DropRequest
        } else if hit(odds.drop_response) {
            Fault::DropResponse
        } else if hit(odds.delay) {
            let ms = rng.range(lo, hi.max(lo + 1));
            if rng.range(0, 2) == 0 {
                Fault::DelayRequest(ms)
            } else {
                Fault::DelayResponse(ms)
            }
        } else if hit(odds.truncate) {
            if rng.range(0, 2) == 0 {
                Fault::TruncateRequest
            } else {
                Fault::TruncateResponse
            }
        } else if hit(odds.duplicate) {
            // Drawn even when fixed, so a seed replays the same run.
            let coin = rng.range(0, 2) == 0;
            Fault::Duplicate {
                first: odds.duplicate_first || coin,
            }
        } else {
            return None;
        })
    }

    fn on_request(&self) -> bool {
        matches!(
            self,
            Fault::DropRequest
                | Fault::DelayRequest(_)
                | Fault::TruncateRequest
                | Fault::Duplicate { .. }
        )
    }
}

/// One direction of a connection.
struct Pipe {
    /// Cut after this many bytes (the `cut_*_after` faults).
    budget: Option<u64>,
    max_cuts: u64,
    /// The server's address, for the device → server direction (replays).
    upstream: Option<String>,
    fault: Option<Fault>,
    rng: Rng,
}

/// Most bytes of a request kept for a replay; a longer one is not
/// duplicated.
const MAX_REPLAY_BYTES: usize = 4 << 20;

impl Pipe {
    /// Copies `from` → `to` on a thread until either side closes (at the
    /// latest when the test's processes exit) or a fault ends it.
    fn spawn(self, from: &TcpStream, to: &TcpStream, counters: &Arc<Counters>) {
        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        let counters = counters.clone();
        thread::spawn(move || self.run(from, to, &counters));
    }

    fn run(mut self, mut from: TcpStream, mut to: TcpStream, counters: &Counters) {
        let device_to_server = self.upstream.is_some();
        let bytes = if device_to_server {
            &counters.bytes_up
        } else {
            &counters.bytes_down
        };
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0u64;
        // The first message of the connection, while a fault needs it.
        let mut first: Vec<u8> = Vec::new();
        let mut first_len: Option<usize> = None;
        // Where a drop or truncation falls, once the message's length is known.
        let mut fault_at: Option<u64> = None;
        let mut half_close = false;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut n = n;
            let mut end = false;
            if let Some(fault) = self.fault {
                if first_len.is_none() && first.len() < MAX_REPLAY_BYTES {
                    first.extend_from_slice(&buf[..n]);
                    first_len = message_len(&first, !device_to_server);
                }
                match fault {
                    Fault::DelayRequest(ms) | Fault::DelayResponse(ms) => {
                        thread::sleep(Duration::from_millis(ms));
                        counters.delays.fetch_add(1, Ordering::Relaxed);
                        self.fault = None;
                    }
                    Fault::DropRequest
                    | Fault::DropResponse
                    | Fault::TruncateRequest
                    | Fault::TruncateResponse => {
                        if fault_at.is_none() {
                            // Somewhere inside the first message: its length
                            // when known, else inside what arrived so far.
                            let whole = first_len.unwrap_or(first.len()) as u64;
                            fault_at = Some(self.rng.range(1, whole.max(2)));
                        }
                        let at = fault_at.expect("drawn above");
                        if sent + n as u64 >= at {
                            n = (at - sent) as usize;
                            end = true;
                            half_close =
                                matches!(fault, Fault::TruncateRequest | Fault::TruncateResponse);
                            let counter = match fault {
                                Fault::DropRequest => &counters.dropped_requests,
                                Fault::DropResponse => &counters.dropped_responses,
                                Fault::TruncateRequest => &counters.truncated_requests,
                                _ => &counters.truncated_responses,
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Fault::Duplicate {
                        first: replay_first,
                    } => match first_len {
                        Some(len) if first.len() >= len => {
                            let request = first[..len].to_vec();
                            let upstream = self.upstream.clone().expect("device → server");
                            counters.duplicated_requests.fetch_add(1, Ordering::Relaxed);
                            self.fault = None;
                            if replay_first {
                                replay(&upstream, &request);
                            } else {
                                thread::spawn(move || replay(&upstream, &request));
                            }
                        }
                        // Not framed by Content-Length, or too long: leave it.
                        _ if first.len() >= MAX_REPLAY_BYTES
                            || (first_len.is_none() && header_end(&first).is_some()) =>
                        {
                            self.fault = None;
                        }
                        _ => {}
                    },
                }
            }
            if !end {
                if let Some(budget) = self.budget {
                    // Reserve the cut first, so concurrent connections never
                    // make more than `max_cuts` between them.
                    if sent + n as u64 >= budget
                        && counters
                            .cuts
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                                (c < self.max_cuts).then_some(c + 1)
                            })
                            .is_ok()
                    {
                        n = (budget - sent) as usize;
                        end = true;
                    }
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n as u64;
            bytes.fetch_add(n as u64, Ordering::Relaxed);
            if end {
                break;
            }
        }
        if half_close {
            // The far side sees the message end here; the other direction
            // keeps going, so it can still answer.
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        } else {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
}

/// Sends `request` to `upstream` on a new connection and reads the answer
/// (a few seconds at most), throwing it away.
fn replay(upstream: &str, request: &[u8]) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = server.set_read_timeout(Some(Duration::from_secs(3)));
    if server.write_all(request).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = server.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if message_len(&answer, true).is_some_and(|len| answer.len() >= len) {
            break;
        }
    }
}

/// The end of an HTTP message's head (after the blank line), if it arrived.
fn header_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The length of the HTTP message at the start of `bytes`, head and body,
/// once its head arrived and says it: a `Content-Length`, or no body (a
/// request without one, a 204 or 304, the answer to HEAD unknown here).
/// `None` while the head is incomplete or for a body framed otherwise.
fn message_len(bytes: &[u8], response: bool) -> Option<usize> {
    let end = header_end(bytes)?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    if chunked {
        return None;
    }
    match length {
        Some(len) => Some(end + len),
        None if !response => Some(end),
        None if start.contains(" 204 ") || start.contains(" 304 ") => Some(end),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_lengths_follow_the_head() {
        let request = b"POST /v1/sync HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(message_len(&request[..10], false), None);
        assert_eq!(message_len(request, false), Some(request.len()));
        assert_eq!(
            message_len(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
            Some(27)
        );
        assert_eq!(
            message_len(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                true
            ),
            None
        );
        assert_eq!(
            message_len(b"HTTP/1.1 204 No Content\r\n\r\n", true),
            Some(27)
        );
    }
}
