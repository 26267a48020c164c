use super::*;

const CLUSTER: &str = "Lq6c0FmwTfiBPD2sxFvTAQ";
const TIMEOUT: Duration = Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS);

fn registry() -> BrokerRegistry {
    BrokerRegistry::new(CLUSTER, TIMEOUT)
}

fn request(id: i32, incarnation: Uuid) -> RegisterBroker {
    RegisterBroker {
        id: BrokerId(id),
        incarnation,
        cluster_id: CLUSTER.into(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: format!("broker-{id}"),
            port: 9092,
        }],
        rack: Some("r1".into()),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fenced(registry: &BrokerRegistry, id: i32) -> bool {
    registry.broker(BrokerId(id)).unwrap().fenced
}

#[test]
fn registration_hands_out_increasing_epochs_and_starts_fenced() {
    let mut r = registry();
    let e1 = r.register(request(1, Uuid::new_v4())).unwrap();
    let e2 = r.register(request(2, Uuid::new_v4())).unwrap();
    assert_eq!((e1, e2), (BrokerEpoch(1), BrokerEpoch(2)));
    let b1 = r.broker(BrokerId(1)).unwrap();
    assert_eq!(b1.epoch, e1);
    assert_eq!(b1.listeners, [Listener::new("PLAINTEXT", "broker-1", 9092)]);
    assert_eq!(b1.rack.as_deref(), Some("r1"));
    assert!(b1.fenced);
    assert!(!b1.in_controlled_shutdown);
    assert_eq!(r.registrations().last_epoch, e2);
}

#[test]
fn registration_keeps_every_listener_in_order() {
    let mut r = registry();
    let mut req = request(1, Uuid::new_v4());
    req.listeners = vec![
        Listener::new("INTERNAL", "pod-1.weir.svc", 9092),
        Listener::new("EXTERNAL", "kafka-1.example.com", 31000),
    ];
    r.register(req.clone()).unwrap();
    let broker = r.broker(BrokerId(1)).unwrap();
    assert_eq!(broker.listeners, req.listeners);
    let external = ListenerName::new("EXTERNAL");
    let endpoint = broker.listener(&external).unwrap();
    assert_eq!(
        (endpoint.host.as_str(), endpoint.port),
        ("kafka-1.example.com", 31000)
    );
    assert!(broker.listener(&ListenerName::new("PLAINTEXT")).is_none());
}

#[test]
fn registration_with_a_listener_name_twice_is_refused() {
    let mut r = registry();
    let mut req = request(4, Uuid::new_v4());
    req.listeners
        .push(Listener::new("PLAINTEXT", "10.0.0.4", 19092));
    let err = r.register(req).unwrap_err();
    assert_eq!(
        err,
        RegistryError::DuplicateListener {
            broker: BrokerId(4),
            listener: "PLAINTEXT".into()
        }
    );
    assert!(err.to_string().contains("'PLAINTEXT'"), "{err}");
    assert!(r.broker(BrokerId(4)).is_none());
}

#[test]
fn registration_without_listeners_is_refused() {
    let mut r = registry();
    let mut req = request(3, Uuid::new_v4());
    req.listeners.clear();
    let err = r.register(req).unwrap_err();
    assert_eq!(
        err,
        RegistryError::NoListeners {
            broker: BrokerId(3)
        }
    );
    assert!(err.to_string().contains("broker 3"), "{err}");
    assert!(r.broker(BrokerId(3)).is_none());
    assert_eq!(r.registrations().last_epoch, BrokerEpoch(0));
}

#[test]
fn same_incarnation_retry_gets_its_epoch_back_with_amended_endpoint() {
    let mut r = registry();
    let incarnation = Uuid::new_v4();
    let epoch = r.register(request(1, incarnation)).unwrap();
    let t0 = Instant::now();
    r.heartbeat(BrokerId(1), epoch, t0).unwrap();
    let mut retry = request(1, incarnation);
    retry.listeners[0].port = 19092;
    retry
        .listeners
        .push(Listener::new("EXTERNAL", "kafka-1.example.com", 31000));
    retry.rack = Some("r2".into());
    assert_eq!(r.register(retry).unwrap(), epoch);
    assert_eq!(r.registrations().last_epoch, epoch);
    let broker = r.broker(BrokerId(1)).unwrap();
    assert_eq!(
        broker.listeners,
        [
            Listener::new("PLAINTEXT", "broker-1", 19092),
            Listener::new("EXTERNAL", "kafka-1.example.com", 31000)
        ]
    );
    assert_eq!(broker.rack.as_deref(), Some("r2"));
    // A retry does not disturb the live session.
    assert!(!fenced(&r, 1));
    assert_eq!(r.tick(t0 + ms(8999)), vec![]);
}

#[test]
fn new_incarnation_gets_a_higher_epoch_and_fences_the_old_one() {
    let mut r = registry();
    let t0 = Instant::now();
    let old = r.register(request(1, Uuid::new_v4())).unwrap();
    r.heartbeat(BrokerId(1), old, t0).unwrap();
    r.register(request(2, Uuid::new_v4())).unwrap();

    let new = r.register(request(1, Uuid::new_v4())).unwrap();
    assert!(new > old);
    assert_eq!(new, BrokerEpoch(3));
    assert!(fenced(&r, 1));
    assert_eq!(
        r.heartbeat(BrokerId(1), old, t0 + ms(1)),
        Err(RegistryError::StaleBrokerEpoch {
            broker: BrokerId(1),
            requested: old,
            current: new,
        })
    );
    // The old incarnation's session went with it: nothing left to expire.
    assert_eq!(r.tick(t0 + TIMEOUT), vec![]);
    r.heartbeat(BrokerId(1), new, t0 + ms(2)).unwrap();
    assert!(!fenced(&r, 1));
}

#[test]
fn register_reports_whether_it_fenced_a_live_incarnation() {
    let mut brokers = BTreeMap::new();
    let mut last = BrokerEpoch(0);
    let first = register(CLUSTER, &mut brokers, &mut last, request(1, Uuid::new_v4())).unwrap();
    assert!(first.new_incarnation && !first.fenced_previous);
    unfence(&mut brokers, BrokerId(1));
    brokers
        .get_mut(&BrokerId(1))
        .unwrap()
        .in_controlled_shutdown = true;

    let second = register(CLUSTER, &mut brokers, &mut last, request(1, Uuid::new_v4())).unwrap();
    assert!(second.new_incarnation && second.fenced_previous);
    let broker = &brokers[&BrokerId(1)];
    assert!(broker.fenced);
    assert!(
        !broker.in_controlled_shutdown,
        "a new incarnation starts afresh"
    );
}

#[test]
fn registration_with_another_cluster_id_is_refused_naming_both_ids() {
    let mut r = registry();
    let mut wrong = request(1, Uuid::new_v4());
    wrong.cluster_id = "other-cluster".into();
    let err = r.register(wrong).unwrap_err();
    assert_eq!(
        err,
        RegistryError::ClusterIdMismatch {
            broker: BrokerId(1),
            requested: "other-cluster".into(),
            expected: CLUSTER.into(),
        }
    );
    let message = err.to_string();
    assert!(message.contains("'other-cluster'"), "{message}");
    assert!(message.contains(CLUSTER), "{message}");
    assert!(r.broker(BrokerId(1)).is_none());
    assert_eq!(r.registrations().last_epoch, BrokerEpoch(0));
}

#[test]
fn heartbeat_extends_the_session_by_the_timeout() {
    let mut r = registry();
    let t0 = Instant::now();
    let epoch = r.register(request(1, Uuid::new_v4())).unwrap();
    r.heartbeat(BrokerId(1), epoch, t0).unwrap();
    r.heartbeat(BrokerId(1), epoch, t0 + ms(5000)).unwrap();
    // Without the second heartbeat the session would have ended at t0 + 9000.
    assert_eq!(r.tick(t0 + ms(13_999)), vec![]);
    assert!(!fenced(&r, 1));
    assert_eq!(r.tick(t0 + ms(14_000)), vec![BrokerId(1)]);
}

#[test]
fn expired_sessions_are_fenced_once_and_stay_registered() {
    let mut r = registry();
    let t0 = Instant::now();
    let e1 = r.register(request(1, Uuid::new_v4())).unwrap();
    let e2 = r.register(request(2, Uuid::new_v4())).unwrap();
    r.heartbeat(BrokerId(1), e1, t0).unwrap();
    r.heartbeat(BrokerId(2), e2, t0 + ms(100)).unwrap();

    assert_eq!(r.tick(t0 + ms(8999)), vec![]);
    assert_eq!(r.tick(t0 + ms(9000)), vec![BrokerId(1)]);
    assert!(fenced(&r, 1));
    assert!(!fenced(&r, 2));
    assert_eq!(r.tick(t0 + ms(60_000)), vec![BrokerId(2)]);
    assert_eq!(r.tick(t0 + ms(120_000)), vec![]);
    assert_eq!(r.broker(BrokerId(1)).unwrap().epoch, e1);
}

#[test]
fn heartbeat_with_a_stale_epoch_is_refused() {
    let mut r = registry();
    let t0 = Instant::now();
    let epoch = r.register(request(1, Uuid::new_v4())).unwrap();
    let stale = BrokerEpoch(epoch.0 - 1);
    let err = r.heartbeat(BrokerId(1), stale, t0).unwrap_err();
    assert_eq!(
        err,
        RegistryError::StaleBrokerEpoch {
            broker: BrokerId(1),
            requested: stale,
            current: epoch,
        }
    );
    assert!(err.to_string().contains("epoch 0"), "{err}");
    assert!(fenced(&r, 1));
}

#[test]
fn heartbeat_from_an_unknown_broker_is_refused() {
    let mut r = registry();
    let err = r
        .heartbeat(BrokerId(7), BrokerEpoch(1), Instant::now())
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::UnknownBroker {
            broker: BrokerId(7)
        }
    );
    assert_eq!(err.to_string(), "broker 7 is not registered");
}

#[test]
fn a_broker_written_before_registration_existed_must_register() {
    // Epoch 0 and no incarnation: the shape of brokers in old metadata files.
    let mut brokers = BTreeMap::from([(
        BrokerId(0),
        BrokerInfo::new(
            BrokerId(0),
            None,
            vec![Listener::new("PLAINTEXT", "127.0.0.1", 9092)],
        ),
    )]);
    assert_eq!(
        check_epoch(&brokers, BrokerId(0), BrokerEpoch(0)).unwrap_err(),
        RegistryError::UnknownBroker {
            broker: BrokerId(0)
        }
    );
    let mut last = BrokerEpoch(0);
    let outcome = register(CLUSTER, &mut brokers, &mut last, request(0, Uuid::new_v4())).unwrap();
    assert_eq!(outcome.epoch, BrokerEpoch(1));
    assert!(outcome.fenced_previous, "the old entry was unfenced");
    assert!(check_epoch(&brokers, BrokerId(0), BrokerEpoch(1)).is_ok());
}

#[test]
fn fenced_broker_is_unfenced_by_a_valid_heartbeat() {
    let mut r = registry();
    let t0 = Instant::now();
    let epoch = r.register(request(1, Uuid::new_v4())).unwrap();
    r.heartbeat(BrokerId(1), epoch, t0).unwrap();
    assert_eq!(r.tick(t0 + ms(10_000)), vec![BrokerId(1)]);

    r.heartbeat(BrokerId(1), epoch, t0 + ms(11_000)).unwrap();
    assert!(!fenced(&r, 1));
    assert_eq!(r.broker(BrokerId(1)).unwrap().epoch, epoch);
    assert_eq!(r.tick(t0 + ms(19_999)), vec![]);
    assert_eq!(r.tick(t0 + ms(20_000)), vec![BrokerId(1)]);
}

#[test]
fn heartbeat_does_not_unfence_a_broker_in_controlled_shutdown() {
    let mut brokers = BTreeMap::new();
    let mut last = BrokerEpoch(0);
    let epoch = register(CLUSTER, &mut brokers, &mut last, request(1, Uuid::new_v4()))
        .unwrap()
        .epoch;
    let first = heartbeat(&brokers, BrokerId(1), epoch).unwrap();
    assert_eq!(
        first,
        HeartbeatOutcome {
            unfences: true,
            has_session: true,
            live: true
        }
    );
    assert!(brokers[&BrokerId(1)].fenced, "heartbeat only decides");
    assert!(unfence(&mut brokers, BrokerId(1)));
    assert!(!unfence(&mut brokers, BrokerId(1)), "already unfenced");
    let steady = heartbeat(&brokers, BrokerId(1), epoch).unwrap();
    assert_eq!(
        steady,
        HeartbeatOutcome {
            unfences: false,
            has_session: true,
            live: true
        }
    );
    assert_eq!(
        begin_controlled_shutdown(&mut brokers, BrokerId(1), epoch),
        Ok(true)
    );
    assert_eq!(
        begin_controlled_shutdown(&mut brokers, BrokerId(1), epoch),
        Ok(false),
        "a repeated call changes nothing"
    );
    let draining = heartbeat(&brokers, BrokerId(1), epoch).unwrap();
    assert_eq!(
        draining,
        HeartbeatOutcome {
            unfences: false,
            has_session: true,
            live: false
        }
    );
    assert!(fence(&mut brokers, BrokerId(1)));
    assert!(!fence(&mut brokers, BrokerId(1)), "already fenced");
    let fenced = heartbeat(&brokers, BrokerId(1), epoch).unwrap();
    assert_eq!(
        fenced,
        HeartbeatOutcome {
            unfences: false,
            has_session: false,
            live: false
        }
    );
}

#[test]
fn controlled_shutdown_checks_the_broker_epoch() {
    let mut brokers = BTreeMap::new();
    let mut last = BrokerEpoch(0);
    register(CLUSTER, &mut brokers, &mut last, request(1, Uuid::new_v4())).unwrap();
    assert!(matches!(
        begin_controlled_shutdown(&mut brokers, BrokerId(1), BrokerEpoch(9)),
        Err(RegistryError::StaleBrokerEpoch { .. })
    ));
    assert!(matches!(
        begin_controlled_shutdown(&mut brokers, BrokerId(2), BrokerEpoch(1)),
        Err(RegistryError::UnknownBroker { .. })
    ));
    assert!(!brokers[&BrokerId(1)].in_controlled_shutdown);
}

#[test]
fn expired_sessions_stay_until_ended() {
    let t0 = Instant::now();
    let mut sessions = Sessions::new(TIMEOUT);
    sessions.extend(BrokerId(1), t0);
    sessions.extend(BrokerId(2), t0 + ms(10));
    assert_eq!(sessions.expired(t0 + TIMEOUT), vec![BrokerId(1)]);
    assert_eq!(sessions.expired(t0 + TIMEOUT), vec![BrokerId(1)]);
    sessions.end(BrokerId(1));
    assert_eq!(sessions.expired(t0 + TIMEOUT), vec![]);
    assert_eq!(sessions.deadline(BrokerId(2)), Some(t0 + ms(10) + TIMEOUT));
}

#[test]
fn restored_registrations_keep_epochs_monotonic_and_sessions_fresh() {
    let mut r = registry();
    let t0 = Instant::now();
    r.register(request(1, Uuid::new_v4())).unwrap();
    r.register(request(2, Uuid::new_v4())).unwrap();
    let live = r.register(request(1, Uuid::new_v4())).unwrap();
    r.heartbeat(BrokerId(1), live, t0).unwrap();
    assert_eq!(live, BrokerEpoch(3));

    let json = serde_json::to_string(r.registrations()).unwrap();
    let state: BrokerRegistrations = serde_json::from_str(&json).unwrap();
    assert_eq!(&state, r.registrations());

    let t1 = t0 + ms(60_000);
    let mut restored = BrokerRegistry::restore(CLUSTER, TIMEOUT, state, t1);
    assert_eq!(restored.registrations(), r.registrations());
    let next = restored.register(request(4, Uuid::new_v4())).unwrap();
    assert_eq!(next, BrokerEpoch(4));
    // The unfenced broker's session restarted at t1 (the one from t0 would
    // have run out long before); the fenced one stays fenced.
    assert!(!fenced(&restored, 1));
    assert!(fenced(&restored, 2));
    assert_eq!(restored.tick(t1 + ms(8999)), vec![]);
    assert_eq!(restored.tick(t1 + TIMEOUT), vec![BrokerId(1)]);
}

#[test]
fn restore_never_reuses_an_epoch_held_by_a_broker() {
    let mut state = BrokerRegistrations::default();
    let mut r = registry();
    r.register(request(1, Uuid::new_v4())).unwrap();
    state.brokers = r.registrations().brokers.clone();
    state.brokers.get_mut(&BrokerId(1)).unwrap().epoch = BrokerEpoch(41);
    let mut restored = BrokerRegistry::restore(CLUSTER, TIMEOUT, state, Instant::now());
    let epoch = restored.register(request(2, Uuid::new_v4())).unwrap();
    assert_eq!(epoch, BrokerEpoch(42));
}
