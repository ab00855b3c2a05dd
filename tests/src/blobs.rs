//! Where a test server keeps attachment ciphertext, for scenarios that
//! look at it (or tamper with it) directly: its data directory, or, when
//! `FIELDSYNC_TEST_S3_ENDPOINT` is set, its own prefix of the test bucket
//! on that S3 server. Names are the same in both: `blobs/<case>/<blob>`,
//! and `uploads/<upload id>` (a file) or `uploads/<upload id>/…` (a
//! bucket's marker and parts).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The environment variable that runs every server on S3.
pub const S3_ENDPOINT_VAR: &str = "FIELDSYNC_TEST_S3_ENDPOINT";
/// The bucket the test servers share, each under a prefix of its own.
pub const TEST_BUCKET: &str = "fieldsync-test";

/// The S3 endpoint the scenarios run against, if any.
pub fn s3_endpoint() -> Option<String> {
    std::env::var(S3_ENDPOINT_VAR)
        .ok()
        .filter(|e| !e.trim().is_empty())
}

/// The `AWS_*` environment a server (and this module) reaches the test S3
/// server with: dummy credentials, as a local S3 server takes any.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "fieldsync-test".into()),
        ("AWS_SECRET_ACCESS_KEY", "fieldsync-test-secret".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// Creates the test bucket once per test process (an S3 `CreateBucket`;
/// "already yours" is fine).
pub fn ensure_test_bucket(endpoint: &str) {
    static CREATED: OnceLock<()> = OnceLock::new();
    CREATED.get_or_init(|| {
        let url = format!("{}/{TEST_BUCKET}", endpoint.trim_end_matches('/'));
        match ureq::put(&url).call() {
            Ok(_) => {}
            Err(ureq::Error::Status(409, _)) => {}
            Err(e) => panic!("cannot create the test bucket at {url}: {e}"),
        }
    });
}

/// A fresh prefix for one server's blobs in the test bucket.
pub fn fresh_prefix() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let a = RandomState::new().build_hasher().finish();
    let b = RandomState::new().build_hasher().finish();
    format!("run-{a:016x}{b:016x}")
}

/// A server's blobs, wherever they are.
pub enum BlobPlace {
    /// The data directory.
    Dir(PathBuf),
    /// A prefix of the test bucket.
    Bucket(Bucket),
}

/// A prefix of the test bucket, read and written with object_store.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    runtime: tokio::runtime::Runtime,
}

impl BlobPlace {
    /// The blobs of a server with this data directory and, on S3, prefix.
    pub fn of(data: &Path, prefix: Option<&str>) -> BlobPlace {
        match (prefix, s3_endpoint()) {
            (Some(prefix), Some(endpoint)) => {
                let mut builder = AmazonS3Builder::new().with_bucket_name(TEST_BUCKET);
                for (key, value) in aws_env(&endpoint) {
                    builder = builder.with_config(key.to_ascii_lowercase().parse().unwrap(), value);
                }
                BlobPlace::Bucket(Bucket {
                    store: Arc::new(builder.build().expect("an S3 client")),
                    prefix: Key::from(prefix),
                    runtime: tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime"),
                })
            }
            _ => BlobPlace::Dir(data.to_owned()),
        }
    }

    pub fn is_bucket(&self) -> bool {
        matches!(self, BlobPlace::Bucket(_))
    }

    /// Every name stored under `blobs/` and `uploads/`, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self {
            BlobPlace::Dir(data) => ["blobs", "uploads"]
                .iter()
                .flat_map(|top| files_under(data, &data.join(top)))
                .collect(),
            BlobPlace::Bucket(b) => b.runtime.block_on(async {
                let metas: Vec<_> = b
                    .store
                    .list(Some(&b.prefix))
                    .try_collect()
                    .await
                    .expect("list the test bucket");
                metas
                    .into_iter()
                    .filter_map(|m| {
                        let rest: Vec<String> = m
                            .location
                            .prefix_match(&b.prefix)?
                            .map(|p| p.as_ref().to_owned())
                            .collect();
                        Some(rest.join("/"))
                    })
                    .collect()
            }),
        };
        names.sort();
        names
    }

    /// Where a name is, for messages.
    pub fn describe(&self, name: &str) -> String {
        match self {
            BlobPlace::Dir(data) => data.join(name).display().to_string(),
            BlobPlace::Bucket(b) => format!("s3://{TEST_BUCKET}/{}/{name}", b.prefix),
        }
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        match self {
            BlobPlace::Dir(data) => std::fs::read(data.join(name)).expect("read a stored file"),
            BlobPlace::Bucket(b) => b.runtime.block_on(async {
                let got = b.store.get(&b.key(name)).await.expect("get an object");
                got.bytes().await.expect("read an object").to_vec()
            }),
        }
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        match self {
            BlobPlace::Dir(data) => {
                let path = data.join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).expect("write a stored file");
            }
            BlobPlace::Bucket(b) => b
                .runtime
                .block_on(b.store.put(&b.key(name), PutPayload::from(bytes.to_vec())))
                .map(|_| ())
                .expect("put an object"),
        }
    }

    pub fn remove(&self, name: &str) {
        match self {
            BlobPlace::Dir(data) => std::fs::remove_file(data.join(name)).expect("remove a file"),
            BlobPlace::Bucket(b) => b
                .runtime
                .block_on(b.store.delete(&b.key(name)))
                .expect("delete an object"),
        }
    }

    /// The names holding an upload's bytes (the partial file, or the
    /// marker and parts).
    pub fn partial_names(&self, upload: &str) -> Vec<String> {
        let file = format!("uploads/{upload}");
        let dir = format!("uploads/{upload}/");
        self.names()
            .into_iter()
            .filter(|n| *n == file || n.starts_with(&dir))
            .collect()
    }

    /// Whether an upload has stored bytes or a marker.
    pub fn has_partial(&self, upload: &str) -> bool {
        !self.partial_names(upload).is_empty()
    }

    /// The bytes an upload holds so far, in order.
    pub fn partial_bytes(&self, upload: &str) -> Vec<u8> {
        // Part names are zero-padded offsets, so sorted names are in order;
        // a bucket's marker is empty.
        self.partial_names(upload)
            .iter()
            .flat_map(|n| self.read(n))
            .collect()
    }

    /// The name of a stored blob of any case.
    pub fn find_blob(&self, blob: &str) -> Option<String> {
        self.names()
            .into_iter()
            .find(|n| n.starts_with("blobs/") && n.ends_with(&format!("/{blob}")))
    }
}

impl Bucket {
    fn key(&self, name: &str) -> Key {
        let mut key = self.prefix.clone();
        key.extend(name.split('/'));
        key
    }
}

/// Files under `dir`, named relative to `base` with `/`.
fn files_under(base: &Path, dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(files_under(base, &path));
        } else {
            let rel = path.strip_prefix(base).expect("under the base");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    out
}
