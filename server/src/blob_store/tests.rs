//! The blob backends against one another: what `tus.rs` relies on holds
//! for the data directory and for a bucket alike (object_store's
//! in-memory store stands in for S3 here; the scenarios run against a real
//! S3 server with `FIELDSYNC_TEST_S3_ENDPOINT`).

use std::path::Path;
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::*;

#[test]
fn ids_from_outside_are_validated() {
    let blob = BlobId::of(b"ciphertext");
    assert_eq!(blob.as_str().parse::<BlobId>().unwrap(), blob);
    for bad in [
        "",
        "../etc/passwd",
        &blob.as_str().to_uppercase(),
        &blob.as_str()[1..],
    ] {
        assert!(bad.parse::<BlobId>().is_err(), "{bad:?}");
    }
    let upload = UploadId::random().unwrap();
    assert_eq!(upload.as_str().len(), 32);
    assert_ne!(upload, UploadId::random().unwrap());
    assert!("0123456789abcdef0123456789ABCDEF"
        .parse::<UploadId>()
        .is_err());
}

#[test]
fn blobs_takes_a_bucket_and_a_plain_prefix_only() {
    let bucket = |b: &str, p: &str| BlobLocation::Bucket {
        bucket: b.into(),
        prefix: p.into(),
    };
    assert_eq!(
        "s3://fieldsync/prod".parse(),
        Ok(bucket("fieldsync", "prod"))
    );
    assert_eq!(
        "s3://my.bucket-1/a/b_c/".parse(),
        Ok(bucket("my.bucket-1", "a/b_c"))
    );
    assert_eq!("s3://fieldsync".parse(), Ok(bucket("fieldsync", "")));
    for bad in [
        "fieldsync/prod",
        "https://fieldsync/prod",
        "s3://Upper/prod",
        "s3://ab/prod",
        "s3://fieldsync/a//b",
        "s3://fieldsync/../b",
        "s3://fieldsync/a b",
    ] {
        let refused = bad.parse::<BlobLocation>().unwrap_err();
        assert!(refused.to_string().contains("s3://BUCKET/PREFIX"), "{bad}");
    }
}

/// A store over each backend, with a way to look at what it keeps.
fn backends(dir: &Path) -> Vec<(&'static str, BlobStore)> {
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    vec![
        (
            "files",
            BlobStore::with_backend(Box::new(FileBackend::open(dir).unwrap())),
        ),
        (
            "bucket",
            BlobStore::with_backend(Box::new(BucketBackend::new(memory, "test/run"))),
        ),
    ]
}

fn read_all(store: &BlobStore, case: &CaseId, blob: &BlobId, start: u64) -> Vec<u8> {
    let (mut reader, len) = store.open_blob(case, blob, start).unwrap();
    reader.read_chunk((len - start) as usize).unwrap()
}

#[test]
fn the_partial_is_the_offset_and_sealing_stores_it_in_its_case() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in backends(dir.path()) {
        let id = UploadId::random().unwrap();
        assert_eq!(store.partial_len(&id).unwrap(), 0, "{name}");
        assert!(!store.has_partial(&id).unwrap(), "{name}");
        store.create_partial(&id).unwrap();
        assert!(store.has_partial(&id).unwrap(), "{name}");
        let lock = store.lock_upload(&id).unwrap();
        assert!(store.lock_upload(&id).is_none(), "one writer at a time");
        let mut w = store.append(&lock).unwrap();
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        w.sync().unwrap();
        assert_eq!(store.partial_len(&id).unwrap(), 11, "{name}");
        // A refused PATCH takes back what it wrote.
        w.truncate(6).unwrap();
        assert_eq!(store.partial_len(&id).unwrap(), 6, "{name}");
        drop(w);
        let mut w = store.append(&lock).unwrap();
        assert_eq!(w.len(), 6, "{name}");
        w.write_all(b"there").unwrap();
        drop(w);

        let case = CaseId::random().unwrap();
        let other = BlobId::of(b"something else");
        assert_eq!(
            store.seal(&lock, &case, &other, None).unwrap(),
            Sealed::Mismatch,
            "{name}"
        );
        assert_eq!(store.partial_len(&id).unwrap(), 11, "{name}: kept");
        assert_eq!(store.stored_blob_id(&case, &other).unwrap(), None);

        let blob = BlobId::of(b"hello there");
        assert_eq!(
            store.seal(&lock, &case, &blob, None).unwrap(),
            Sealed::Stored
        );
        drop(lock);
        assert!(store.lock_upload(&id).is_some(), "a dropped lock is free");
        assert_eq!(store.partial_len(&id).unwrap(), 0, "{name}");
        assert!(!store.has_partial(&id).unwrap(), "{name}");
        assert_eq!(
            store.stored_blob_id(&case, &blob).unwrap(),
            Some(blob.clone())
        );
        assert_eq!(read_all(&store, &case, &blob, 0), b"hello there");
        assert_eq!(read_all(&store, &case, &blob, 6), b"there", "{name}");
        // Another case does not hold it.
        let elsewhere = CaseId::random().unwrap();
        assert_eq!(store.stored_blob_id(&elsewhere, &blob).unwrap(), None);
        assert!(store.open_blob(&elsewhere, &blob, 0).is_err());

        // A second upload of the same bytes, once the case holds them.
        let again = UploadId::random().unwrap();
        store.create_partial(&again).unwrap();
        let lock = store.lock_upload(&again).unwrap();
        store
            .append(&lock)
            .unwrap()
            .write_all(b"hello there")
            .unwrap();
        assert_eq!(
            store.seal(&lock, &case, &blob, None).unwrap(),
            Sealed::Stored
        );
        assert!(!store.has_partial(&again).unwrap(), "{name}");
        assert_eq!(read_all(&store, &case, &blob, 0), b"hello there");
    }
}

#[test]
fn the_sweep_sees_uploads_and_strays_and_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in backends(dir.path()) {
        let id = UploadId::random().unwrap();
        store.create_partial(&id).unwrap();
        let lock = store.lock_upload(&id).unwrap();
        store.append(&lock).unwrap().write_all(b"bytes").unwrap();
        let listed: Vec<UploadId> = store
            .partial_entries()
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                PartialEntry::Upload(id) => Some(id),
                PartialEntry::Stray(_) => None,
            })
            .collect();
        // The bucket leaves out what is too recent to tell from an upload
        // another process is creating.
        let expected = if name == "files" {
            vec![id.clone()]
        } else {
            vec![]
        };
        assert_eq!(listed, expected, "{name}");
        assert!(store.remove_partial(&id).unwrap(), "{name}");
        assert!(!store.remove_partial(&id).unwrap(), "{name}");
        assert_eq!(store.partial_len(&id).unwrap(), 0, "{name}");
        assert!(!store.has_partial(&id).unwrap(), "{name}");
    }
}

fn memory_bucket() -> (Arc<dyn ObjectStore>, BlobStore) {
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = BlobStore::with_backend(Box::new(BucketBackend::new(memory.clone(), "p")));
    (memory, store)
}

fn keys(memory: &Arc<dyn ObjectStore>) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut keys: Vec<String> = runtime.block_on(async {
        use futures_util::TryStreamExt;
        let metas: Vec<_> = memory.list(None).try_collect().await.unwrap();
        metas.into_iter().map(|m| m.location.to_string()).collect()
    });
    keys.sort();
    keys
}

#[test]
fn in_a_bucket_each_batch_is_a_part_named_by_its_offset_and_a_blob_one_object() {
    let (memory, store) = memory_bucket();
    let id = UploadId::random().unwrap();
    store.create_partial(&id).unwrap();
    let lock = store.lock_upload(&id).unwrap();
    let mut w = store.append(&lock).unwrap();
    w.write_all(b"first ").unwrap();
    w.write_all(b"second").unwrap();
    let dir = format!("p/uploads/{id}");
    assert_eq!(
        keys(&memory),
        [
            format!("{dir}/00000000000000000000"),
            format!("{dir}/00000000000000000006"),
            format!("{dir}/upload"),
        ]
    );
    let case = CaseId::random().unwrap();
    let blob = BlobId::of(b"first second");
    assert_eq!(
        store.seal(&lock, &case, &blob, None).unwrap(),
        Sealed::Stored
    );
    assert_eq!(keys(&memory), [format!("p/blobs/{case}/{blob}")]);
}

#[test]
fn two_writers_at_one_offset_one_wins_and_the_other_is_told_its_offset_is_stale() {
    // As two server processes would: each with its own lock table.
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let one = BlobStore::with_backend(Box::new(BucketBackend::new(memory.clone(), "p")));
    let two = BlobStore::with_backend(Box::new(BucketBackend::new(memory.clone(), "p")));
    let id = UploadId::random().unwrap();
    one.create_partial(&id).unwrap();
    let (lock_one, lock_two) = (one.lock_upload(&id).unwrap(), two.lock_upload(&id).unwrap());
    let mut first = one.append(&lock_one).unwrap();
    let mut second = two.append(&lock_two).unwrap();
    assert_eq!((first.len(), second.len()), (0, 0));
    first.write_all(b"aaaa").unwrap();
    let lost = second.write_all(b"bbbbbbbb").unwrap_err();
    assert!(lost.is_taken(), "{lost}");
    assert_eq!(second.len(), 0, "the loser wrote nothing");
    first.write_all(b"cc").unwrap();
    assert_eq!(two.partial_len(&id).unwrap(), 6);
    // The loser resumes from the offset it reads again.
    drop(second);
    let mut second = two.append(&lock_two).unwrap();
    assert_eq!(second.len(), 6);
    second.write_all(b"dd").unwrap();
    assert_eq!(one.partial_len(&id).unwrap(), 8);
    let case = CaseId::random().unwrap();
    let blob = BlobId::of(b"aaaaccdd");
    assert_eq!(
        two.seal(&lock_two, &case, &blob, None).unwrap(),
        Sealed::Stored
    );
    assert_eq!(read_all(&one, &case, &blob, 0), b"aaaaccdd");
}

#[test]
fn a_blob_larger_than_a_multipart_chunk_is_assembled_in_order() {
    let (memory, store) = memory_bucket();
    let id = UploadId::random().unwrap();
    store.create_partial(&id).unwrap();
    let lock = store.lock_upload(&id).unwrap();
    let mut w = store.append(&lock).unwrap();
    let bytes: Vec<u8> = (0..(11 << 20) + 17).map(|i| (i % 251) as u8).collect();
    for batch in bytes.chunks(1 << 20) {
        w.write_all(batch).unwrap();
    }
    let case = CaseId::random().unwrap();
    let blob = BlobId::of(&bytes);
    assert_eq!(
        store.seal(&lock, &case, &blob, None).unwrap(),
        Sealed::Stored
    );
    assert!(read_all(&store, &case, &blob, 0) == bytes);
    assert_eq!(keys(&memory).len(), 1);
}

#[test]
fn a_stray_in_a_buckets_uploads_area_is_listed_once_old() {
    let (memory, store) = memory_bucket();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(memory.put(&Key::from("p/uploads/junk"), PutPayload::from_static(b"x")))
        .unwrap();
    // Written just now: another process may be creating it.
    assert!(store.partial_entries().unwrap().is_empty());
    assert!(store.remove_stray(&"junk".into()).unwrap());
    assert!(keys(&memory).is_empty());
}

#[test]
fn a_bucket_is_reached_from_the_blocking_threads_of_another_runtime() {
    // actix's `web::block` runs blob calls on tokio's blocking pool of the
    // worker's runtime; the bucket's calls wait there on a runtime of
    // their own.
    let (_memory, store) = memory_bucket();
    let actix_like = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let len = actix_like.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let id = UploadId::random().unwrap();
            store.create_partial(&id).unwrap();
            let lock = store.lock_upload(&id).unwrap();
            store.append(&lock).unwrap().write_all(b"abc").unwrap();
            store.partial_len(&id).unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(len, 3);
}

#[cfg(unix)]
#[test]
fn partial_uploads_blobs_and_their_directories_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    let dir = tempfile::tempdir().unwrap();
    let files = FileBackend::open(dir.path()).unwrap();
    let store = BlobStore::with_backend(Box::new(FileBackend::open(dir.path()).unwrap()));
    let id = UploadId::random().unwrap();
    store.create_partial(&id).unwrap();
    assert_eq!(mode(&files.partial_path(&id)), 0o600);
    let lock = store.lock_upload(&id).unwrap();
    let mut w = store.append(&lock).unwrap();
    w.write_all(b"sealed bytes").unwrap();
    drop(w);
    let blob = BlobId::of(b"sealed bytes");
    let case = CaseId::random().unwrap();
    assert_eq!(
        store.seal(&lock, &case, &blob, None).unwrap(),
        Sealed::Stored
    );
    let stored = files.blob_path(&case, &blob);
    assert_eq!(mode(&stored), 0o600);
    assert_eq!(mode(stored.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join(BLOBS_DIR)), 0o700);
    assert_eq!(mode(&dir.path().join(UPLOADS_DIR)), 0o700);
    // A partial file made by an older build keeps no wider mode once
    // appended to: append never creates it wider, and the data
    // directory is tightened at start (`data_dir.rs`).
    let old = UploadId::random().unwrap();
    std::fs::write(files.partial_path(&old), b"x").unwrap();
    std::fs::set_permissions(
        files.partial_path(&old),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let reported = crate::data_dir::secure_data_dir(dir.path()).unwrap();
    assert!(
        reported
            .iter()
            .any(|t| t.path == files.partial_path(&old) && t.was == 0o644),
        "{reported:?}"
    );
    assert_eq!(mode(&files.partial_path(&old)), 0o600);
}
