use super::*;
use crate::case_key::CaseSecret;

/// Cheap, so the tests run fast; the defaults are checked separately.
const CHEAP: KdfCost = KdfCost {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn pass(text: &str) -> Passphrase {
    Passphrase::new(text.into()).unwrap()
}

fn source(text: &'static str) -> impl FnMut() -> Result<Passphrase, String> + Send {
    move || Ok(pass(text))
}

fn home_files(home: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(home).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The Ed25519 seed inside ring's PKCS#8 v2 document.
fn seed(pkcs8: &[u8]) -> Vec<u8> {
    pkcs8[16..48].to_vec()
}

fn protected_home() -> (tempfile::TempDir, CaseSecret, Vec<u8>) {
    let home = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(home.path()).unwrap();
    replica.init_identity().unwrap();
    let case_key = CaseSecret::Private(replica.new_case_key("almaty").unwrap());
    let device_seed = seed(replica.device_key().unwrap().unwrap().pkcs8());
    replica
        .set_passphrase(&pass("correct horse"), CHEAP)
        .unwrap();
    (home, case_key, device_seed)
}

#[test]
fn a_wrapped_key_opens_only_with_its_key_and_its_name() {
    let (record, kek) = PassphraseRecord::create(&pass("correct horse"), CHEAP).unwrap();
    let sealer = Sealer::Wrapped(kek);
    let what = Wrapped::CaseKey {
        case: "almaty",
        epoch: 1,
    };
    let stored = sealer
        .wrap(&what, b"a case key of 32 bytes, exactly")
        .unwrap();
    assert!(!contains(&stored, b"a case key"));
    assert_eq!(
        &sealer.unwrap(&what, &stored).unwrap()[..],
        b"a case key of 32 bytes, exactly"
    );
    for other in [
        Wrapped::CaseKey {
            case: "almaty",
            epoch: 2,
        },
        Wrapped::CaseKey {
            case: "bishkek",
            epoch: 1,
        },
        Wrapped::DeviceKey,
    ] {
        assert!(matches!(
            sealer.unwrap(&other, &stored),
            Err(SecretsError::Tampered(_))
        ));
    }
    for i in 0..stored.len() {
        let mut tampered = stored.clone();
        tampered[i] ^= 1;
        assert!(
            matches!(
                sealer.unwrap(&what, &tampered),
                Err(SecretsError::Tampered(_))
            ),
            "a flipped byte {i} went unnoticed"
        );
    }
    assert!(matches!(
        sealer.unwrap(&what, &stored[..stored.len() - 1]),
        Err(SecretsError::Tampered(_))
    ));
    let other_kek = record.derive(&pass("another passphrase")).unwrap();
    assert!(matches!(
        Sealer::Wrapped(other_kek).unwrap(&what, &stored),
        Err(SecretsError::Tampered(_))
    ));
}

#[test]
fn the_record_round_trips_its_parameters_and_refuses_a_wrong_passphrase() {
    let cost = KdfCost {
        memory_kib: 256,
        iterations: 2,
        parallelism: 2,
    };
    let (record, kek) = PassphraseRecord::create(&pass("correct horse"), cost).unwrap();
    let text = serde_json::to_string(&record).unwrap();
    let parsed = PassphraseRecord::parse(&text).unwrap();
    assert_eq!(parsed, record);
    assert_eq!(parsed.cost, cost);
    assert_eq!(parsed.salt().unwrap().len(), SALT_LEN);
    assert_eq!(*parsed.open(&pass("correct horse")).unwrap(), *kek);
    assert!(matches!(
        parsed.open(&pass("correct horsf")),
        Err(SecretsError::WrongPassphrase)
    ));
    let (again, _) = PassphraseRecord::create(&pass("correct horse"), cost).unwrap();
    assert_ne!(again.salt, record.salt, "every record has its own salt");
    let greedy = text.replace("\"memory_kib\":256", "\"memory_kib\":4294967295");
    assert!(matches!(
        PassphraseRecord::parse(&greedy),
        Err(SecretsError::BadRecord(_))
    ));
}

#[test]
fn the_default_cost_is_64_mib_three_passes_one_lane() {
    assert_eq!(
        KdfCost::DEFAULT,
        KdfCost {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 1
        }
    );
    assert!(KdfCost::DEFAULT.check().is_ok());
}

#[test]
fn a_passphrase_file_loses_one_trailing_newline_only() {
    let p = Passphrase::from_file_contents(b"correct horse\r\n".to_vec()).unwrap();
    assert_eq!(p.bytes(), b"correct horse");
    let p = Passphrase::from_file_contents(b"correct horse \n\n".to_vec()).unwrap();
    assert_eq!(p.bytes(), b"correct horse \n");
    assert!(Passphrase::from_file_contents(b"short\n".to_vec()).is_err());
}

#[test]
fn with_a_passphrase_no_key_stays_in_plain_form_in_the_replica_files() {
    let home = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(home.path()).unwrap();
    replica.init_identity().unwrap();
    let case_key = CaseSecret::Private(replica.new_case_key("almaty").unwrap());
    let device_seed = seed(replica.device_key().unwrap().unwrap().pkcs8());
    let before = home_files(home.path());
    assert!(
        contains(&before, case_key.bytes()),
        "the check can see a key"
    );
    assert!(contains(&before, &device_seed), "the check can see a key");
    replica
        .set_passphrase(&pass("correct horse"), CHEAP)
        .unwrap();
    // Still open: the write-ahead log is there too, and is read.
    assert!(home.path().join("replica.sqlite3-wal").exists());
    let files = home_files(home.path());
    assert!(contains(&files, b"argon2id"), "the record is in the home");
    assert!(
        !contains(&files, case_key.bytes()),
        "case key in plain form"
    );
    assert!(!contains(&files, &device_seed), "device key in plain form");
    drop(replica);
    let files = home_files(home.path());
    assert!(
        !contains(&files, case_key.bytes()),
        "case key in plain form"
    );
    assert!(!contains(&files, &device_seed), "device key in plain form");
}

#[test]
fn a_protected_home_opens_with_its_passphrase_only() {
    let (home, case_key, device_seed) = protected_home();
    let mut replica = Replica::open(home.path()).unwrap();
    assert!(matches!(
        replica.device_key(),
        Err(ReplicaError::Secrets(SecretsError::NoPassphrase(_)))
    ));
    replica.set_passphrase_source(source("wrong horse"));
    assert!(matches!(
        replica.case_keys("almaty"),
        Err(ReplicaError::Secrets(SecretsError::WrongPassphrase))
    ));
    replica.set_passphrase_source(source("correct horse"));
    assert_eq!(replica.case_keys("almaty").unwrap(), vec![case_key.clone()]);
    let key = replica.device_key().unwrap().unwrap();
    assert_eq!(seed(key.pkcs8()), device_seed);
    // Keys written now are wrapped as well.
    let second = CaseSecret::Private(replica.rotate_case_key("almaty").unwrap());
    drop(replica);
    assert!(!contains(&home_files(home.path()), second.bytes()));
    let mut replica = Replica::open(home.path()).unwrap();
    replica.set_passphrase_source(source("correct horse"));
    assert_eq!(replica.case_keys("almaty").unwrap(), vec![case_key, second]);
}

#[test]
fn a_tampered_wrapped_key_is_an_error_naming_it() {
    let (home, _, _) = protected_home();
    let mut replica = Replica::open(home.path()).unwrap();
    let mut stored: Vec<u8> = replica
        .conn
        .query_row("SELECT key FROM case_keys", [], |r| r.get(0))
        .unwrap();
    *stored.last_mut().unwrap() ^= 1;
    replica
        .conn
        .execute("UPDATE case_keys SET key = ?1", [stored])
        .unwrap();
    replica.set_passphrase_source(source("correct horse"));
    let err = replica.case_keys("almaty").unwrap_err();
    assert!(
        matches!(&err, ReplicaError::Secrets(SecretsError::Tampered(what)) if what.contains("almaty")),
        "{err}"
    );
    assert!(replica.device_key().unwrap().is_some());
}

#[test]
fn changing_and_removing_the_passphrase_keep_every_key() {
    let (home, case_key, device_seed) = protected_home();
    let mut replica = Replica::open(home.path()).unwrap();
    assert!(matches!(
        replica.set_passphrase(&pass("another one"), CHEAP),
        Err(ReplicaError::Secrets(SecretsError::AlreadySet))
    ));
    replica.set_passphrase_source(source("wrong horse"));
    assert!(matches!(
        replica.remove_passphrase(),
        Err(ReplicaError::Secrets(SecretsError::WrongPassphrase))
    ));
    replica.set_passphrase_source(source("correct horse"));
    let raised = KdfCost {
        memory_kib: 128,
        iterations: 2,
        parallelism: 1,
    };
    replica
        .change_passphrase(&pass("new passphrase"), raised)
        .unwrap();
    assert_eq!(replica.passphrase().unwrap().unwrap().cost, raised);
    drop(replica);
    let mut replica = Replica::open(home.path()).unwrap();
    replica.set_passphrase_source(source("correct horse"));
    assert!(replica.device_key().is_err());
    replica.set_passphrase_source(source("new passphrase"));
    replica.remove_passphrase().unwrap();
    assert!(replica.passphrase().unwrap().is_none());
    drop(replica);
    let replica = Replica::open(home.path()).unwrap();
    assert_eq!(replica.case_keys("almaty").unwrap(), vec![case_key]);
    assert_eq!(
        seed(replica.device_key().unwrap().unwrap().pkcs8()),
        device_seed
    );
    assert!(matches!(
        Replica::open(home.path()).unwrap().remove_passphrase(),
        Err(ReplicaError::Secrets(SecretsError::NotSet))
    ));
}
