//! Claims and the sweep: one worker per message, and nothing recorded is forgotten after a crash.

use std::time::Duration;

use store::InboundState;

use crate::on_both_backends;
use crate::support::{TestDb, TestDbExt, inbound, sid};

async fn concurrent_claims_give_a_message_to_exactly_one_worker(db: &TestDb) {
    let store = db.default_store().await;
    for round in 0..10 {
        let s = sid(&format!("SM{round}c"));
        store.record_inbound(inbound(&s)).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..16 {
            let store = store.clone();
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .claim_inbound(&s, &format!("worker-{w}"), Duration::from_secs(60))
                    .await
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(row) = t.await.unwrap().unwrap() {
                winners.push(row);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        let row = &winners[0];
        assert_eq!(row.state, InboundState::Processing);
        assert_eq!(row.attempts, 1);
        assert!(row.lease_until.is_some());
        assert_eq!(
            store.get_inbound(&s).await.unwrap().unwrap().claimed_by,
            row.claimed_by
        );
    }
}
on_both_backends!(
    claim_race,
    concurrent_claims_give_a_message_to_exactly_one_worker
);

async fn the_sweep_finds_work_left_by_a_crashed_worker(db: &TestDb) {
    let store = db.default_store().await;
    let untouched = sid("SMu");
    let crashed = sid("SMc");
    let answered = sid("SMa");
    for s in [&untouched, &crashed, &answered] {
        store.record_inbound(inbound(s)).await.unwrap();
    }

    // Nothing is "unanswered" while it is younger than the grace period.
    assert!(
        store
            .unanswered_inbound(Duration::from_secs(3600), 100)
            .await
            .unwrap()
            .is_empty()
    );

    // One worker claims with a short lease and "crashes" (never finishes); another finishes.
    let lease = Duration::from_millis(300);
    assert!(
        store
            .claim_inbound(&crashed, "w1", lease)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .claim_inbound(&answered, "w1", Duration::from_secs(60))
            .await
            .unwrap()
            .is_some()
    );
    store
        .finish_inbound(&answered, InboundState::Answered)
        .await
        .unwrap();

    // While the lease runs, the claimed message is not handed out again.
    let found = store.unanswered_inbound(Duration::ZERO, 100).await.unwrap();
    assert_eq!(found, vec![untouched.clone()]);
    assert!(
        store
            .claim_inbound(&crashed, "w2", lease)
            .await
            .unwrap()
            .is_none()
    );

    tokio::time::sleep(lease + Duration::from_millis(200)).await;

    // The lease expired: the sweep sees it and another worker takes it over.
    let mut found = store.unanswered_inbound(Duration::ZERO, 100).await.unwrap();
    found.sort();
    let mut expected = vec![untouched.clone(), crashed.clone()];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(
        store
            .unanswered_inbound(Duration::ZERO, 1)
            .await
            .unwrap()
            .len(),
        1
    );

    let taken = store
        .claim_inbound(&crashed, "w2", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("expired lease is taken over");
    assert_eq!(taken.claimed_by.as_deref(), Some("w2"));
    assert_eq!(taken.attempts, 2);

    // Finished messages are never claimed again.
    assert!(
        store
            .claim_inbound(&answered, "w3", lease)
            .await
            .unwrap()
            .is_none()
    );
    // Releasing (state received) makes a message claimable again.
    store
        .finish_inbound(&crashed, InboundState::Received)
        .await
        .unwrap();
    assert!(
        store
            .claim_inbound(&crashed, "w3", lease)
            .await
            .unwrap()
            .is_some()
    );
}
on_both_backends!(
    sweep_after_crash,
    the_sweep_finds_work_left_by_a_crashed_worker
);

async fn finishing_an_unknown_or_processing_message_is_refused(db: &TestDb) {
    let store = db.default_store().await;
    let err = store
        .finish_inbound("SMnope", InboundState::Answered)
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    let s = sid("SM");
    store.record_inbound(inbound(&s)).await.unwrap();
    let err = store
        .finish_inbound(&s, InboundState::Processing)
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(
        store
            .claim_inbound("SMnope", "w", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );
}
on_both_backends!(
    finish_rules,
    finishing_an_unknown_or_processing_message_is_refused
);
