//! Change chunks built byte by byte, for tests and fuzz seeds that need
//! changes Automerge would never make: runs declaring 2^62 operations,
//! compressed chunks that inflate to gigabytes. Not for production use.

use ring::digest::{digest, SHA256};

/// The parts of a change chunk's header.
pub struct Header<'a> {
    pub deps: &'a [[u8; 32]],
    pub actor: &'a [u8],
    pub seq: u64,
    pub start_op: u64,
    pub time_ms: i64,
}

/// A change chunk with these columns (`(spec, data)`, in spec order), its
/// checksum set as Automerge computes it.
pub fn change_chunk(header: &Header<'_>, columns: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    uleb(&mut body, header.deps.len() as u64);
    for d in header.deps {
        body.extend_from_slice(d);
    }
    uleb(&mut body, header.actor.len() as u64);
    body.extend_from_slice(header.actor);
    uleb(&mut body, header.seq);
    uleb(&mut body, header.start_op);
    sleb(&mut body, header.time_ms);
    uleb(&mut body, 0); // message
    uleb(&mut body, 0); // other actors
    uleb(&mut body, columns.len() as u64);
    for (spec, data) in columns {
        uleb(&mut body, u64::from(*spec));
        uleb(&mut body, data.len() as u64);
    }
    for (_, data) in columns {
        body.extend_from_slice(data);
    }
    chunk(1, &body)
}

/// A chunk of `kind` around `body`: magic, checksum, type, length, body.
pub fn chunk(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut hashed = vec![kind];
    uleb(&mut hashed, body.len() as u64);
    hashed.extend_from_slice(body);
    let hash = digest(&SHA256, &hashed);
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83];
    out.extend_from_slice(&hash.as_ref()[..4]);
    out.extend_from_slice(&hashed);
    out
}

/// The hash Automerge gives a change chunk: SHA-256 from its type byte on.
pub fn change_hash(chunk: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, &chunk[8..]).as_ref());
    out
}

/// `n` puts of null to the root map's `key`, each with no predecessor,
/// encoded as four runs: what a 2^62-operation attack looks like.
pub fn run_of_puts(header: &Header<'_>, key: &str, n: u64) -> Vec<u8> {
    let run = |value: &dyn Fn(&mut Vec<u8>)| {
        let mut data = Vec::new();
        sleb(&mut data, i64::try_from(n).unwrap_or(i64::MAX));
        value(&mut data);
        data
    };
    let key_column = run(&|d| {
        uleb(d, key.len() as u64);
        d.extend_from_slice(key.as_bytes());
    });
    let mut inserts = Vec::new();
    uleb(&mut inserts, n); // n times false
    let columns = vec![
        ((1 << 4) | 5, key_column),           // key string
        ((3 << 4) | 4, inserts),              // insert: no
        ((4 << 4) | 2, run(&|d| uleb(d, 1))), // action: put
        ((5 << 4) | 6, run(&|d| uleb(d, 0))), // value metadata: null
        ((7 << 4), run(&|d| uleb(d, 0))),     // predecessor count: 0
    ];
    change_chunk(header, &columns)
}

pub fn uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

pub fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0);
        if done {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A raw deflate stream of `runs` × 258 zero bytes in one fixed-Huffman
/// block (a literal zero, then back-references of length 258 at distance
/// 1): about 160 bytes out for every byte in, with no compressor needed.
pub fn deflated_zeros(runs: usize) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.push(1, 1); // final block
    bits.push(1, 2); // fixed Huffman (BTYPE = 01, sent low bit first)
    bits.push_code(0b0011_0000, 8); // literal 0
    for _ in 0..runs {
        bits.push_code(0b1100_0101, 8); // length 258 (code 285)
        bits.push_code(0, 5); // distance 1 (code 0)
    }
    bits.push_code(0, 7); // end of block (code 256)
    bits.finish()
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    /// `len` bits of `value`, least significant first (header fields).
    fn push(&mut self, value: u32, len: u32) {
        for i in 0..len {
            self.bit((value >> i) & 1);
        }
    }

    /// A Huffman code of `len` bits, most significant first.
    fn push_code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.bit((code >> i) & 1);
        }
    }

    fn bit(&mut self, b: u32) {
        self.acc |= b << self.n;
        self.n += 1;
        if self.n == 8 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.n = 0;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}
