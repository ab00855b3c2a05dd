use std::io::Cursor;

use super::*;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn seal_bytes(key: &CaseKey, plain: &[u8]) -> (Vec<u8>, Sealed) {
    let mut blob = Vec::new();
    let sealed = seal(
        key,
        "photo.jpg",
        "image/jpeg",
        Some("2016-05-21T10:41:00+06:00".into()),
        &mut Cursor::new(plain),
        &mut blob,
    )
    .unwrap();
    (blob, sealed)
}

fn open_bytes(key: &CaseKey, blob: &[u8]) -> Result<(Vec<u8>, AttachmentMeta), EnvelopeError> {
    let key = key.clone();
    let mut out = Vec::new();
    let meta = open(
        &move |e| (e == key.epoch).then(|| key.clone()),
        &mut Cursor::new(blob),
        &mut out,
    )?;
    Ok((out, meta))
}

fn header_end(blob: &[u8]) -> usize {
    24 + u32::from_be_bytes(blob[20..24].try_into().unwrap()) as usize
}

#[test]
fn files_of_every_boundary_size_round_trip() {
    let key = CaseKey::generate(1).unwrap();
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
        let plain = pattern(len);
        let (blob, sealed) = seal_bytes(&key, &plain);
        let chunks = len / CHUNK + usize::from(len % CHUNK != 0 || len == 0);
        assert_eq!(
            blob.len(),
            header_end(&blob) + len + chunks * TAG,
            "len {len}"
        );
        assert_eq!(sealed.blob_len, blob.len() as u64);
        assert_eq!(
            sealed.blob_id,
            hex::encode(ring::digest::digest(&SHA256, &blob))
        );
        let (out, meta) = open_bytes(&key, &blob).unwrap();
        assert_eq!(out, plain, "len {len}");
        assert_eq!(meta.size, len as u64);
        assert_eq!(meta.name, "photo.jpg");
    }
}

#[test]
fn nothing_in_the_clear_says_what_the_file_is() {
    let key = CaseKey::generate(1).unwrap();
    let plain = b"MARKER-STRING-0123456789 the plate was kz380KP02".repeat(50);
    let (blob, _) = seal_bytes(&key, &plain);
    for needle in [
        &b"MARKER-STRING-0123456789"[..],
        b"photo.jpg",
        b"image/jpeg",
        b"2016-05-21",
    ] {
        assert!(
            !blob.windows(needle.len()).any(|w| w == needle),
            "{:?} in clear",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn the_head_a_report_carries_tells_name_and_type_only_with_the_key() {
    let key = CaseKey::generate(3).unwrap();
    let (blob, sealed) = seal_bytes(&key, &pattern(200_000));
    assert_eq!(sealed.head, blob[..header_end(&blob)]);
    assert_eq!(head_epoch(&sealed.head).unwrap(), 3);
    let holder = key.clone();
    let meta = read_meta(
        &move |e| (e == holder.epoch).then(|| holder.clone()),
        &mut Cursor::new(&sealed.head),
    )
    .unwrap();
    assert_eq!(meta, sealed.meta);
    assert_eq!(meta.name, "photo.jpg");
    let other = CaseKey::generate(3).unwrap();
    assert!(matches!(
        read_meta(
            &move |_| Some(other.clone()),
            &mut Cursor::new(&sealed.head)
        ),
        Err(EnvelopeError::Header)
    ));
    assert!(matches!(
        read_meta(&|_| None, &mut Cursor::new(&sealed.head)),
        Err(EnvelopeError::UnknownEpoch(3))
    ));
}

/// A file that changes between the first read and the second, like a
/// recording still being written.
struct Growing {
    data: Vec<u8>,
    pos: usize,
    reads_from_start: u32,
}

impl std::io::Read for Growing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl std::io::Seek for Growing {
    fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = 0;
        self.reads_from_start += 1;
        self.data.extend_from_slice(b"more audio");
        Ok(0)
    }
}

#[test]
fn a_file_that_changes_while_it_is_sealed_is_refused() {
    let key = CaseKey::generate(1).unwrap();
    let mut file = Growing {
        data: pattern(100_000),
        pos: 0,
        reads_from_start: 0,
    };
    let mut blob = Vec::new();
    let result = seal(&key, "a.m4a", "audio/mp4", None, &mut file, &mut blob);
    assert_eq!(file.reads_from_start, 1);
    assert!(matches!(result, Err(EnvelopeError::Changed)), "{result:?}");
}

#[test]
fn every_kind_of_damage_is_an_error_never_wrong_data() {
    let key = CaseKey::generate(1).unwrap();
    let plain = pattern(3 * CHUNK + 100);
    let (blob, _) = seal_bytes(&key, &plain);
    let start = header_end(&blob);
    let sealed_chunk = CHUNK + TAG;
    let chunk = |i: usize| start + i * sealed_chunk..start + (i + 1) * sealed_chunk;

    let mut flipped = blob.clone();
    flipped[start + 70_000] ^= 1;
    let mut swapped = blob.clone();
    let (a, b) = (blob[chunk(0)].to_vec(), blob[chunk(1)].to_vec());
    swapped[chunk(0)].copy_from_slice(&b);
    swapped[chunk(1)].copy_from_slice(&a);
    let mut duplicated = blob[..chunk(1).end].to_vec();
    duplicated.extend_from_slice(&blob[chunk(1)]);
    duplicated.extend_from_slice(&blob[chunk(1).end..]);
    let truncated_at_boundary = blob[..chunk(2).end].to_vec();
    let truncated_mid = blob[..blob.len() - 5].to_vec();
    let mut extended = blob.clone();
    extended.extend_from_slice(&[0u8; 40]);
    let mut header_flipped = blob.clone();
    header_flipped[30] ^= 1;

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bit flip", flipped, "altered"),
        ("swapped chunks", swapped, "altered"),
        ("duplicated chunk", duplicated, "altered"),
        (
            "truncated at a chunk boundary",
            truncated_at_boundary,
            "truncated or altered",
        ),
        ("truncated mid-chunk", truncated_mid, "truncated"),
        ("bytes appended", extended, "truncated or altered"),
        ("header altered", header_flipped, "header"),
        ("empty", vec![], "not a fieldsync attachment"),
    ];
    for (name, damaged, says) in cases {
        let err = open_bytes(&key, &damaged).unwrap_err();
        assert!(err.to_string().contains(says), "{name}: {err}");
    }
    let other = CaseKey::from_bytes(1, [7u8; 32]);
    assert!(matches!(
        open_bytes(&other, &blob).unwrap_err(),
        EnvelopeError::Header
    ));
    let newer = CaseKey::generate(2).unwrap();
    assert!(matches!(
        open_bytes(&newer, &blob).unwrap_err(),
        EnvelopeError::UnknownEpoch(1)
    ));
}

#[test]
fn a_failed_decryption_leaves_no_file_behind() {
    let key = CaseKey::generate(1).unwrap();
    let (mut blob, _) = seal_bytes(&key, &pattern(2 * CHUNK));
    let last = blob.len() - 1;
    blob[last] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("photo.jpg");
    let k = key.clone();
    let err = open_to_path(&move |_| Some(k.clone()), &mut Cursor::new(&blob), &out).unwrap_err();
    assert!(matches!(err, EnvelopeError::Final), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a partial file was left"
    );
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Vector {
    description: String,
    case_key: String,
    key_epoch: u32,
    content_key: String,
    nonce_prefix: String,
    header_nonce: String,
    plaintext: String,
    plaintext_len: usize,
    ciphertext: String,
    blob_sha256: String,
}

fn vector(description: &str, plain: &[u8], plaintext: String, full_ciphertext: bool) -> Vector {
    let case_key = CaseKey::from_bytes(1, [0x11; 32]);
    let content_key = [0x22; 32];
    let prefix = [0x33; 7];
    let header_nonce = [0x44; 12];
    let meta = AttachmentMeta {
        name: "vector.bin".into(),
        media_type: "application/octet-stream".into(),
        size: plain.len() as u64,
        sha256: hex::encode(ring::digest::digest(&SHA256, plain)),
        captured_at: None,
    };
    let mut blob = Vec::new();
    let sealed = seal_with(
        &case_key,
        &content_key,
        &prefix,
        &header_nonce,
        meta,
        &mut Cursor::new(plain),
        &mut blob,
    )
    .unwrap();
    Vector {
        description: description.into(),
        case_key: hex::encode(case_key.bytes()),
        key_epoch: 1,
        content_key: hex::encode(content_key),
        nonce_prefix: hex::encode(prefix),
        header_nonce: hex::encode(header_nonce),
        plaintext,
        plaintext_len: plain.len(),
        ciphertext: if full_ciphertext {
            hex::encode(&blob)
        } else {
            hex::encode(&blob[..header_end(&blob) + 64])
        },
        blob_sha256: sealed.blob_id,
    }
}

fn vectors() -> Vec<Vector> {
    let small = b"fieldsync test vector\n";
    vec![
        vector("one short chunk; ciphertext is the whole blob", small, hex::encode(small), true),
        vector(
            "two chunks: plaintext byte i = i mod 251, 65,636 bytes; ciphertext is the first 64 bytes after the header, blob_sha256 covers all",
            &pattern(CHUNK + 100),
            "pattern: byte i = i mod 251".into(),
            false,
        ),
    ]
}

#[test]
fn the_shipped_test_vectors_match_this_build() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/envelope-v1.json"
    );
    let expected = vectors();
    if std::env::var_os("FIELDSYNC_WRITE_VECTORS").is_some() {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&expected).unwrap() + "\n",
        )
        .unwrap();
    }
    let shipped: Vec<Vector> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(shipped, expected);
}

#[test]
fn a_chunk_decrypts_with_plain_aes_gcm_from_the_documented_layout() {
    // What a browser does with WebCrypto: no fieldsync code, just the
    // layout from the module doc and AES-256-GCM.
    let v = &vectors()[0];
    let blob = hex::decode(&v.ciphertext).unwrap();
    let start = header_end(&blob);
    let mut nonce = hex::decode(&v.nonce_prefix).unwrap();
    nonce.extend_from_slice(&0u32.to_be_bytes());
    nonce.push(1); // the only chunk is the last
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &hex::decode(&v.content_key).unwrap()).unwrap(),
    );
    let mut chunk = blob[start..].to_vec();
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(&nonce).unwrap(),
            Aad::empty(),
            &mut chunk,
        )
        .unwrap();
    assert_eq!(hex::encode(plain), v.plaintext);
}
