//! A server that says "busy": it answers the first requests it gets with
//! 503 and fieldsync's busy body, and forwards the rest to a real server,
//! one request per connection. For the CLI's retries of a busy server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

pub struct BusyServer {
    pub url: String,
    requests: Arc<AtomicU64>,
}

impl BusyServer {
    /// Answers the first `busy_first` requests with 503 busy and forwards
    /// the others to `upstream` (host:port).
    pub fn start(upstream: &str, busy_first: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the busy server");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        let upstream = upstream.to_owned();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counted = counted.clone();
                let upstream = upstream.clone();
                thread::spawn(move || serve(stream, &upstream, busy_first, &counted));
            }
        });
        Self { url, requests }
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve(mut device: TcpStream, upstream: &str, busy_first: u64, counted: &AtomicU64) {
    loop {
        let Some(request) = read_request(&mut device) else {
            return;
        };
        let n = counted.fetch_add(1, Ordering::SeqCst);
        if n < busy_first {
            let body = br#"{"error":"the server is busy; nothing was acknowledged, sync again in a moment","code":"busy"}"#;
            let head = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if device.write_all(head.as_bytes()).is_err() || device.write_all(body).is_err() {
                return;
            }
            continue;
        }
        // Forwarded with `connection: close`, so the answer ends at EOF.
        let Ok(mut server) = TcpStream::connect(upstream) else {
            return;
        };
        if server.write_all(&request).is_err() {
            return;
        }
        let mut answer = Vec::new();
        let _ = server.read_to_end(&mut answer);
        let _ = device.write_all(&answer);
        return;
    }
}

/// One whole request, its `Connection` header replaced by `close`.
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut length = 0usize;
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    let mut request = out.into_bytes();
    request.extend_from_slice(&body);
    Some(request)
}
