//! Bounds on an Automerge change, read from its raw bytes before Automerge
//! parses anything.
//!
//! Automerge trusts what a change declares: a run-length column may say its
//! value repeats 2^62 times, and a compressed chunk may inflate to
//! gigabytes. Parsing either takes unbounded time and memory (a 386-byte
//! change once held the server's write lock indefinitely). So every change
//! from outside passes [`check`] first, which walks the chunk header and
//! the column metadata and sums the run lengths without expanding them:
//! time linear in the bytes, no allocation proportional to a declared count.
//!
//! What is refused:
//! - any chunk but an uncompressed change (devices never send compressed
//!   changes, documents or bundles as changes);
//! - columns that are compressed (Automerge refuses them in changes too, but
//!   only after reading them), out of order or past the end;
//! - more operations than the change's bytes can honestly carry:
//!   [`max_ops`]. Inserts and puts carry at least a byte each, so they are
//!   held to a multiple of the change's length. Deletes of consecutive
//!   characters compress to a few bytes however many they are, so they get a
//!   fixed allowance: the longest text a report may hold
//!   ([`crate::model::MAX_DESCRIPTION_BYTES`]) deleted in one change.
//! - more predecessors in all than that allowance, and any column that
//!   declares more rows than the operations it describes could use;
//! - an actor index past the change's actors, on which Automerge's
//!   `Change::decode` panics.
//!
//! The layout followed is Automerge's binary format: chunk header (magic,
//! checksum, type, length), then for a change: dependencies, actor, seq,
//! start op, time, message, other actors, column metadata, column data.

use crate::model::MAX_DESCRIPTION_BYTES;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED: u8 = 2;
/// Automerge's change format has fewer than twenty columns.
const MAX_COLUMNS: u64 = 64;
/// Column specification bits: `id << 4 | deflate (8) | type (0..=7)`.
const DEFLATE_BIT: u32 = 8;
/// The action column (id 4, unsigned integers).
const ACTION_COLUMN: u32 = (4 << 4) | 2;
const ACTION_DELETE: u64 = 3;
/// Deletes one change may make beyond what its bytes pay for: replacing the
/// longest description, plus room for the other fields.
pub const DELETE_ALLOWANCE: u64 = MAX_DESCRIPTION_BYTES as u64 + 16 * 1024;

/// What a change declares, as read from its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeShape {
    pub ops: u64,
    pub deletes: u64,
    /// Predecessors of all ops together.
    pub preds: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("the bytes are not an Automerge change chunk: {0}")]
    NotAChange(&'static str),
    #[error("the change is compressed; send changes uncompressed (as Automerge makes them)")]
    Compressed,
    #[error("the change declares {declared} operations ({what}) but a change of {len} bytes may carry at most {limit}")]
    TooManyOps {
        what: &'static str,
        declared: u64,
        limit: u64,
        len: usize,
    },
    #[error("the change is truncated or malformed: {0}")]
    Malformed(&'static str),
}

/// The most non-delete operations a change of `len` bytes may declare.
pub fn max_ops(len: usize) -> u64 {
    // Every put or insert costs at least one byte in some column; two per
    // byte leaves room for run-length encoding of repeated values.
    (len as u64).saturating_mul(2).saturating_add(4096)
}

/// What a stored change chunk's header says, read without Automerge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeHeader {
    /// Automerge's hash of the change: SHA-256 of the chunk from its type
    /// byte on, so the bytes are, byte for byte, the change with this hash.
    pub hash: automerge::ChangeHash,
    /// The changes it depends on, in the order it names them.
    pub deps: Vec<automerge::ChangeHash>,
}

/// The hash and dependencies of `bytes` when they are one whole
/// uncompressed change chunk: its declared length is its length, and its
/// checksum is the start of its hash (two changes stored together are not
/// one). A device reads its own stored changes so, without Automerge, to
/// tell whether they are in causal order; nothing past the dependencies is
/// read or checked.
pub fn change_header(bytes: &[u8]) -> Result<ChangeHeader, LimitError> {
    let mut r = Reader { bytes, pos: 0 };
    r.change_chunk()?;
    let count = r.uleb()?;
    // Bounded by the bytes before anything is allocated for it.
    if count > (bytes.len() - r.pos) as u64 / 32 {
        return Err(LimitError::Malformed("a field runs past the end"));
    }
    let deps = (0..count)
        .map(|_| {
            let hash = r.take(32)?;
            automerge::ChangeHash::try_from(hash)
                .map_err(|_| LimitError::Malformed("a dependency is not a hash"))
        })
        .collect::<Result<_, _>>()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes[8..]);
    if digest.as_ref()[..4] != bytes[4..8] {
        return Err(LimitError::Malformed(
            "the checksum is not the change's hash",
        ));
    }
    let hash = automerge::ChangeHash::try_from(digest.as_ref())
        .map_err(|_| LimitError::Malformed("a hash of another length"))?;
    Ok(ChangeHeader { hash, deps })
}

/// Checks `bytes` against the bounds above without expanding anything.
pub fn check(bytes: &[u8]) -> Result<ChangeShape, LimitError> {
    let len = bytes.len();
    let mut r = Reader { bytes, pos: 0 };
    r.change_chunk()?; // the checksum is left to Automerge
    let deps = r.uleb()?;
    for _ in 0..deps {
        r.take(32)?;
    }
    r.bytes_prefixed()?; // actor
    r.uleb()?; // seq
    r.uleb()?; // start op
    r.leb_any()?; // time
    r.bytes_prefixed()?; // message
    let others = r.uleb()?;
    for _ in 0..others {
        r.bytes_prefixed()?;
    }
    // Actor columns index the change's actor (0) and its other actors.
    let actors = others.saturating_add(1);
    let columns = r.uleb()?;
    if columns > MAX_COLUMNS {
        return Err(LimitError::Malformed("too many columns"));
    }
    let mut specs = Vec::with_capacity(columns as usize);
    for _ in 0..columns {
        let spec = u32::try_from(r.uleb()?)
            .map_err(|_| LimitError::Malformed("a column specification past 32 bits"))?;
        let col_len = r.uleb()?;
        if spec & DEFLATE_BIT != 0 {
            return Err(LimitError::Compressed);
        }
        specs.push((spec, col_len));
    }
    let mut shape = ChangeShape::default();
    let mut max_rows = 0u64;
    for (spec, col_len) in specs {
        let col_len = usize::try_from(col_len)
            .map_err(|_| LimitError::Malformed("a column past the end of the change"))?;
        let data = r.take(col_len)?;
        let rows = Column::scan(spec, data, actors, &mut shape)?;
        max_rows = max_rows.max(rows);
    }
    let non_deletes = shape.ops - shape.deletes;
    let put_limit = max_ops(len);
    if non_deletes > put_limit {
        return Err(LimitError::TooManyOps {
            what: "inserts and puts",
            declared: non_deletes,
            limit: put_limit,
            len,
        });
    }
    if shape.deletes > DELETE_ALLOWANCE {
        return Err(LimitError::TooManyOps {
            what: "deletes",
            declared: shape.deletes,
            limit: DELETE_ALLOWANCE,
            len,
        });
    }
    let all = put_limit.saturating_add(DELETE_ALLOWANCE);
    if shape.preds > all {
        return Err(LimitError::TooManyOps {
            what: "predecessors",
            declared: shape.preds,
            limit: all,
            len,
        });
    }
    // A column longer than every op and predecessor together is never read
    // to its end by an honest parser; refuse it rather than reason about
    // what a parser might do with it.
    if max_rows > shape.ops.max(shape.preds).saturating_add(1) {
        return Err(LimitError::TooManyOps {
            what: "rows of one column",
            declared: max_rows,
            limit: shape.ops.max(shape.preds),
            len,
        });
    }
    Ok(shape)
}

struct Column;

impl Column {
    /// Sums the rows a column declares. Records the ops (action column) and
    /// predecessors (group columns) in `shape`.
    fn scan(
        spec: u32,
        data: &[u8],
        actors: u64,
        shape: &mut ChangeShape,
    ) -> Result<u64, LimitError> {
        let mut r = Reader {
            bytes: data,
            pos: 0,
        };
        let mut rows = 0u64;
        match spec & 7 {
            // Boolean: alternating run lengths.
            4 => {
                while !r.done() {
                    rows = rows.saturating_add(r.uleb()?);
                }
            }
            // Raw values: their length comes from the metadata column.
            7 => {}
            kind => {
                let is_action = spec == ACTION_COLUMN;
                let is_group = kind == 0;
                // Automerge unwraps an actor index past the change's actors
                // when it decodes the change (a panic the fuzzer found).
                let check_actor = |value: u64| {
                    if kind == 1 && value >= actors {
                        Err(LimitError::Malformed(
                            "an actor index past the change's actors",
                        ))
                    } else {
                        Ok(value)
                    }
                };
                while !r.done() {
                    let count = r.sleb()?;
                    if count > 0 {
                        let n = count as u64;
                        rows = rows.saturating_add(n);
                        let value = check_actor(r.value(kind)?)?;
                        if is_action && value == ACTION_DELETE {
                            shape.deletes = shape.deletes.saturating_add(n);
                        }
                        if is_group {
                            shape.preds = shape.preds.saturating_add(n.saturating_mul(value));
                        }
                    } else if count < 0 {
                        let n = count.unsigned_abs();
                        for _ in 0..n {
                            // Each literal costs bytes, so this loop is
                            // bounded by the column's length.
                            let value = check_actor(r.value(kind)?)?;
                            rows += 1;
                            if is_action && value == ACTION_DELETE {
                                shape.deletes += 1;
                            }
                            if is_group {
                                shape.preds = shape.preds.saturating_add(value);
                            }
                        }
                    } else {
                        rows = rows.saturating_add(r.uleb()?); // a run of nulls
                    }
                }
                if is_action {
                    shape.ops = shape.ops.saturating_add(rows);
                }
            }
        }
        Ok(rows)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads the chunk header up to the change's body: magic, checksum
    /// (skipped), type (one uncompressed change) and a length that is the
    /// rest of the bytes.
    fn change_chunk(&mut self) -> Result<(), LimitError> {
        if self.take(4)? != MAGIC {
            return Err(LimitError::NotAChange("bad magic bytes"));
        }
        self.take(4)?;
        match self.byte()? {
            CHUNK_CHANGE => {}
            CHUNK_COMPRESSED => return Err(LimitError::Compressed),
            _ => return Err(LimitError::NotAChange("not a change chunk")),
        }
        let body_len = self.uleb()?;
        if body_len != (self.bytes.len() - self.pos) as u64 {
            return Err(LimitError::Malformed(
                "the chunk length does not match its bytes",
            ));
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], LimitError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(LimitError::Malformed("a field runs past the end"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, LimitError> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64, LimitError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(LimitError::Malformed("an integer past 64 bits"));
            }
            value |= part << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(LimitError::Malformed("an integer past 64 bits"))
    }

    fn sleb(&mut self) -> Result<i64, LimitError> {
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return Err(LimitError::Malformed("an integer past 64 bits"));
            }
            value |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
    }

    /// Skips any LEB128 number.
    fn leb_any(&mut self) -> Result<(), LimitError> {
        for _ in 0..10 {
            if self.byte()? & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(LimitError::Malformed("an integer past 64 bits"))
    }

    fn bytes_prefixed(&mut self) -> Result<&'a [u8], LimitError> {
        let n = usize::try_from(self.uleb()?)
            .map_err(|_| LimitError::Malformed("a length past the end"))?;
        self.take(n)
    }

    /// Reads one value of a run-length column of `kind`; unsigned ones are
    /// returned (for the action and group columns), others skipped.
    fn value(&mut self, kind: u32) -> Result<u64, LimitError> {
        match kind {
            3 => self.sleb().map(|_| 0),           // delta
            5 => self.bytes_prefixed().map(|_| 0), // string
            _ => self.uleb(),
        }
    }
}

#[doc(hidden)]
pub mod craft;
#[cfg(test)]
mod tests;
