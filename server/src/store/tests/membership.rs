//! Cases, invites, enrollment, revocation and nonces.

use super::*;

#[test]
fn case_names_are_unique_and_validated() {
    let (_dir, store) = open();
    store.create_case("rally").unwrap();
    assert!(matches!(
        store.create_case("rally"),
        Err(StoreError::CaseExists(_))
    ));
    for bad in ["", " padded ", "line\nbreak"] {
        assert!(
            matches!(store.create_case(bad), Err(StoreError::InvalidCaseName(_))),
            "{bad:?}"
        );
    }
    let err = store
        .create_invite("nope", DeviceRole::Reporter, DAY)
        .unwrap_err();
    assert_eq!(err.to_string(), "there is no case named nope");
    assert!(matches!(
        store.devices(Some("nope")),
        Err(StoreError::UnknownCase(_))
    ));
}

#[test]
fn a_case_keeps_its_time_zone_until_it_is_changed_or_cleared() {
    let (_dir, store) = open();
    let plain = store.create_case("plain").unwrap();
    assert_eq!(plain.timezone, None);
    assert_eq!(store.case_timezone(&plain.id).unwrap(), None);

    let almaty = store
        .create_case_in_zone("almaty", Some("Asia/Almaty"))
        .unwrap();
    assert_eq!(almaty.timezone.as_deref(), Some("Asia/Almaty"));
    assert_eq!(
        store.case_timezone(&almaty.id).unwrap().as_deref(),
        Some("Asia/Almaty")
    );
    let read = store.case_by_name("almaty").unwrap().unwrap();
    assert_eq!(read.timezone.as_deref(), Some("Asia/Almaty"));

    store.set_case_timezone("plain", Some("+03:00")).unwrap();
    assert_eq!(
        store.case_timezone(&plain.id).unwrap().as_deref(),
        Some("+03:00")
    );
    store.set_case_timezone("almaty", None).unwrap();
    assert_eq!(store.case_timezone(&almaty.id).unwrap(), None);
    assert!(matches!(
        store.set_case_timezone("nope", Some("UTC")),
        Err(StoreError::UnknownCase(_))
    ));
    let audit = store.audit_log().unwrap();
    assert_eq!(
        audit.iter().filter(|row| row.1 == "case-timezone").count(),
        2,
        "{audit:?}"
    );
}

#[test]
fn an_invited_device_enrolls_once_and_only_the_token_hash_is_stored() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let token = store
        .create_invite("rally", DeviceRole::Coordinator, DAY)
        .unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
    assert!(!store.dump().unwrap().contains(&token));
    let key = DeviceKey::generate().unwrap().public_key();
    let record = store.enroll(&token, &key).unwrap();
    assert_eq!(record.device_id, key.device_id());
    assert_eq!(record.case_id, case.id);
    assert_eq!(record.case_name, "rally");
    assert_eq!(record.role, DeviceRole::Coordinator);
    assert_eq!(record.public_key, key);
    assert_eq!(record.public_key_hex, hex::encode(key.as_bytes()));
    assert!(record.revoked_at.is_none());
    assert!(DateTime::parse_from_rfc3339(&record.enrolled_at).is_ok());
    let json = serde_json::to_value(&record).unwrap();
    assert!(json.get("public_key").is_none());
    assert_eq!(json["role"], "coordinator");

    assert_eq!(
        store.device(&key.device_id()).unwrap().unwrap().case_name,
        "rally"
    );
    assert_eq!(store.devices(Some("rally")).unwrap().len(), 1);
    assert_eq!(store.devices(None).unwrap().len(), 1);

    // The same device with a second invite: already enrolled, and that
    // invite stays usable by another device.
    let second = store
        .create_invite("rally", DeviceRole::Reporter, DAY)
        .unwrap();
    let err = store.enroll(&second, &key).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyEnrolled(_)), "{err:?}");
    let other = DeviceKey::generate().unwrap().public_key();
    assert_eq!(
        store.enroll(&second, &other).unwrap().role,
        DeviceRole::Reporter
    );
    let listed: Vec<DeviceId> = store
        .devices(Some("rally"))
        .unwrap()
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert_eq!(listed, vec![key.device_id(), other.device_id()]);

    let events: Vec<String> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(
        events,
        [
            "case-create",
            "invite",
            "enroll",
            "invite",
            "enroll-refused",
            "enroll"
        ]
    );
}

#[test]
fn the_same_key_enrolling_again_with_its_token_gets_the_same_answer_and_writes_nothing() {
    let (_dir, store) = open();
    store.create_case("rally").unwrap();
    let token = store
        .create_invite("rally", DeviceRole::Reporter, DAY)
        .unwrap();
    let phone = DeviceKey::generate().unwrap().public_key();
    let first = store.enroll(&token, &phone).unwrap();
    let before = store.dump().unwrap();
    // The answer was lost on the way; the phone asks again.
    let again = store.enroll(&token, &phone).unwrap();
    assert_eq!(again.device_id, first.device_id);
    assert_eq!(again.case_id, first.case_id);
    assert_eq!(store.dump().unwrap(), before);
    // Once revoked, the token opens nothing, not even for its own key.
    store.revoke(&first.device_id).unwrap();
    let err = store.enroll(&token, &phone).unwrap_err();
    assert!(matches!(err, StoreError::TokenUsed), "{err:?}");
}

#[test]
fn a_used_token_is_refused_and_the_attempt_audited() {
    let (_dir, store) = open();
    store.create_case("rally").unwrap();
    let token = store
        .create_invite("rally", DeviceRole::Reporter, DAY)
        .unwrap();
    let first = DeviceKey::generate().unwrap().public_key();
    store.enroll(&token, &first).unwrap();
    let before = store.dump().unwrap();
    let second = DeviceKey::generate().unwrap().public_key();
    let err = store.enroll(&token, &second).unwrap_err();
    assert!(matches!(err, StoreError::TokenUsed), "{err:?}");
    assert!(err.to_string().contains("new invite"), "{err}");
    assert_eq!(store.dump().unwrap(), before);
    assert!(store.device(&second.device_id()).unwrap().is_none());
    let last = store.audit_log().unwrap().pop().unwrap();
    assert_eq!(last.1, "enroll-refused");
    assert_eq!(last.2.as_deref(), Some(second.device_id().as_str()));
    assert_eq!(last.3, "token already used");

    // A made-up token is refused and leaves no row: anyone can send one.
    let rows = store.audit_log().unwrap().len();
    let err = store.enroll("not-a-token", &second).unwrap_err();
    assert!(matches!(err, StoreError::InvalidToken), "{err:?}");
    assert_eq!(store.audit_log().unwrap().len(), rows);
}

#[test]
fn an_expired_token_is_refused() {
    let (_dir, store) = open();
    store.create_case("rally").unwrap();
    let key = DeviceKey::generate().unwrap().public_key();
    let instant = store
        .create_invite("rally", DeviceRole::Reporter, Duration::ZERO)
        .unwrap();
    assert!(matches!(
        store.enroll(&instant, &key),
        Err(StoreError::TokenExpired)
    ));

    // A day-long invite whose expiry has passed.
    let token = store
        .create_invite("rally", DeviceRole::Reporter, DAY)
        .unwrap();
    let (created, expires): (String, String) = raw(&store)
        .query_row(
            "SELECT created_at, expires_at FROM invites WHERE token_hash = ?1",
            [token_hash(&token)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let lifetime = DateTime::parse_from_rfc3339(&expires).unwrap()
        - DateTime::parse_from_rfc3339(&created).unwrap();
    assert_eq!(lifetime, chrono::Duration::days(1));
    let past = time_text(Utc::now() - chrono::Duration::seconds(1));
    raw(&store)
        .execute(
            "UPDATE invites SET expires_at = ?2 WHERE token_hash = ?1",
            params![token_hash(&token), past],
        )
        .unwrap();
    let err = store.enroll(&token, &key).unwrap_err();
    assert!(matches!(err, StoreError::TokenExpired), "{err:?}");
    assert!(store.device(&key.device_id()).unwrap().is_none());
    assert_eq!(store.audit_log().unwrap().pop().unwrap().3, "token expired");
}

#[test]
fn a_revoked_device_keeps_its_first_revocation_time_and_is_refused_sync() {
    let (_dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    let id = reporter.record.device_id.clone();
    let revoked = store.revoke(&id).unwrap();
    let first = revoked.revoked_at.clone().unwrap();
    assert!(revoked.member().revoked);
    assert_eq!(store.revoke(&id).unwrap().revoked_at.unwrap(), first);
    assert_eq!(
        store.device(&id).unwrap().unwrap().revoked_at.unwrap(),
        first
    );
    let audit: Vec<String> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(audit.iter().filter(|e| *e == "revoke").count(), 2);

    let unknown: DeviceId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    assert!(matches!(
        store.revoke(&unknown),
        Err(StoreError::UnknownDevice(_))
    ));

    // The record the caller holds is stale; the store reads it afresh.
    reporter
        .replica
        .create_report(&new_report(
            &case.id,
            "after seizure",
            "2024-05-01T10:00:00Z",
        ))
        .unwrap();
    let plan = reporter
        .replica
        .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
        .unwrap();
    let before = store.dump().unwrap();
    let err = store
        .sync(&reporter.record, &plan.request, ServerLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, SyncStoreError::Sync(SyncError::Revoked)),
        "{err:?}"
    );
    assert_eq!(store.dump().unwrap(), before);
}

#[test]
fn a_replayed_nonce_is_detected_and_old_nonces_are_forgotten() {
    let (_dir, store) = open();
    let a: DeviceId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let b: DeviceId = "fedcba9876543210fedcba9876543210".parse().unwrap();
    let now = Utc::now().timestamp();
    assert!(store.use_nonce(&a, "n1", now, 300).unwrap());
    assert!(!store.use_nonce(&a, "n1", now, 300).unwrap());
    assert!(
        store.use_nonce(&b, "n1", now, 300).unwrap(),
        "nonces are per device"
    );
    assert!(store.use_nonce(&a, "n2", now, 300).unwrap());
    // Too old to remember: never taken as fresh.
    assert!(!store.use_nonce(&a, "n3", now - 601, 300).unwrap());
    raw(&store)
        .execute(
            "UPDATE nonces SET ts = ?1 WHERE nonce = 'n2'",
            [now - 10_000],
        )
        .unwrap();
    store.use_nonce(&a, "n4", now, 300).unwrap();
    let left: Vec<String> = raw(&store)
        .prepare("SELECT nonce FROM nonces WHERE device_id = ?1 ORDER BY nonce")
        .unwrap()
        .query_map([a.as_str()], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, ["n1", "n4"]);
}

#[test]
fn concurrent_writers_queue_for_the_lock_instead_of_failing() {
    let (_dir, store) = open();
    let device: DeviceId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let now = Utc::now().timestamp();
    std::thread::scope(|s| {
        for thread in 0..8 {
            let (store, device) = (&store, &device);
            s.spawn(move || {
                for i in 0..25 {
                    let nonce = format!("{thread}-{i}");
                    assert!(store.use_nonce(device, &nonce, now, 300).unwrap());
                    store.audit("test", Some(device), &nonce).unwrap();
                }
            });
        }
    });
    assert_eq!(store.audit_log().unwrap().len(), 200);
}
