//! Claims and the sweep: one worker per message, and nothing recorded is forgotten after a crash.

use std::time::Duration;

use store::{InboundState, OutboundUpdate};

use crate::on_both_backends;
use crate::outbound::reply_to;
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

async fn batch_claims_take_only_free_messages_and_survive_a_retry(db: &TestDb) {
    let store = db.default_store().await;
    let sids: Vec<String> = (0..5).map(|i| sid(&format!("SM{i}b"))).collect();
    for s in &sids {
        store.record_inbound(inbound(s)).await.unwrap();
    }
    // sids[0] is already answered, sids[1] is held by a live claim of another worker.
    store
        .finish_inbound(&sids[0], InboundState::Answered)
        .await
        .unwrap();
    store
        .claim_inbound(&sids[1], "other", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let mut asked: Vec<&str> = sids.iter().map(String::as_str).collect();
    asked.push("SMunknown");

    let claimed = store
        .claim_inbound_many(&asked, "w#1", Duration::from_secs(60))
        .await
        .unwrap();
    let mut got: Vec<&str> = claimed.iter().map(|m| m.message_sid.as_str()).collect();
    got.sort();
    let mut want: Vec<&str> = sids[2..].iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want, "only received messages are claimed");
    for m in &claimed {
        assert_eq!(m.state, InboundState::Processing);
        assert_eq!(m.claimed_by.as_deref(), Some("w#1"));
        assert_eq!(m.attempts, 1);
        assert_eq!(m.from, "whatsapp:+15551234567", "rows come back whole");
    }

    // A retry under the same name (its first answer was lost) gets the same rows back…
    let again = store
        .claim_inbound_many(&asked, "w#1", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    // …while another worker gets nothing.
    assert!(
        store
            .claim_inbound_many(&asked, "w#2", Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_inbound_many(&[], "w#2", Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
}
on_both_backends!(
    batch_claim,
    batch_claims_take_only_free_messages_and_survive_a_retry
);

async fn concurrent_batch_claims_give_each_message_to_one_worker(db: &TestDb) {
    let store = db.default_store().await;
    let sids: Vec<String> = (0..40).map(|i| sid(&format!("SM{i}r"))).collect();
    for s in &sids {
        store.record_inbound(inbound(s)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        // Overlapping windows: every SID is asked for by several workers.
        let mine: Vec<String> = sids.iter().cycle().skip(w * 5).take(20).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let refs: Vec<&str> = mine.iter().map(String::as_str).collect();
            store
                .claim_inbound_many(&refs, &format!("w{w}"), Duration::from_secs(60))
                .await
                .unwrap()
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap().into_iter().map(|m| m.message_sid));
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "no message was claimed twice");
    assert_eq!(all.len(), 40, "every message was claimed by someone");
}
on_both_backends!(
    batch_claim_race,
    concurrent_batch_claims_give_each_message_to_one_worker
);

async fn batch_outcomes_record_dry_runs_and_states_in_one_go(db: &TestDb) {
    use store::{NewOutbound, OutboundUpdate};
    let store = db.default_store().await;
    let [fresh, pending, sent, skipped, failed] = ["SMf", "SMp", "SMs", "SMk", "SMx"].map(sid);
    for s in [&fresh, &pending, &sent, &skipped, &failed] {
        store.record_inbound(inbound(s)).await.unwrap();
    }
    let reply = |s: &str| NewOutbound {
        inbound_message_sid: s.to_owned(),
        to: "whatsapp:+15551234567".to_owned(),
        from: "whatsapp:+14155238886".to_owned(),
        body: format!("re {s}"),
    };
    // An earlier attempt created `pending`'s row; `sent`'s reply was accepted by Twilio.
    store.create_outbound(reply(&pending)).await.unwrap();
    let sent_row = store.create_outbound(reply(&sent)).await.unwrap();
    store
        .update_outbound(sent_row.id, OutboundUpdate::sent("SMtwilio1", "queued", 1))
        .await
        .unwrap();

    let finished = [
        (fresh.as_str(), InboundState::DryRun),
        (pending.as_str(), InboundState::DryRun),
        (sent.as_str(), InboundState::DryRun),
        (skipped.as_str(), InboundState::Answered),
        (failed.as_str(), InboundState::Failed),
    ];
    let sids = finished.map(|(s, _)| s);
    let outcome = |m: &store::InboundMessage| {
        let (_, state) = finished
            .iter()
            .find(|(s, _)| *s == m.message_sid)
            .expect("asked for");
        let dry_run = (*state == InboundState::DryRun).then(|| reply(&m.message_sid));
        (*state, dry_run)
    };
    store
        .answer_inbound_many(&sids, "w#1", outcome)
        .await
        .unwrap();
    // Twice is the same as once (a retry after a lost commit answer).
    store
        .answer_inbound_many(&sids, "w#1", outcome)
        .await
        .unwrap();

    for (s, state) in finished {
        let row = store.get_inbound(s).await.unwrap().unwrap();
        assert_eq!(row.state, state, "{s}");
        assert_eq!(row.lease_until, None, "claim released for {s}");
    }
    let f = store.outbound_for_inbound(&fresh).await.unwrap().unwrap();
    assert_eq!(f.status, "dry_run");
    assert_eq!(f.body, format!("re {fresh}"));
    assert_eq!(f.from.as_deref(), Some("whatsapp:+14155238886"));
    assert!(f.is_final());
    let p = store.outbound_for_inbound(&pending).await.unwrap().unwrap();
    assert_eq!(
        p.status, "dry_run",
        "an unsent earlier row becomes the dry run"
    );
    let s = store.outbound_for_inbound(&sent).await.unwrap().unwrap();
    assert_eq!(s.status, "queued", "a reply Twilio accepted is left alone");
    assert_eq!(s.message_sid.as_deref(), Some("SMtwilio1"));
    assert!(
        store
            .outbound_for_inbound(&skipped)
            .await
            .unwrap()
            .is_none()
    );

    // Claimed messages finished as a batch, twice (a retry after a lost commit answer).
    let [quiet, broken] = ["SMq", "SMb"].map(sid);
    for s in [&quiet, &broken] {
        store.record_inbound(inbound(s)).await.unwrap();
    }
    let claimed = store
        .claim_inbound_many(&[&quiet, &broken], "w#2", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let states = [
        (quiet.as_str(), InboundState::Answered),
        (broken.as_str(), InboundState::Failed),
    ];
    store.finish_inbound_many(&states).await.unwrap();
    store.finish_inbound_many(&states).await.unwrap();
    for (s, state) in states {
        let row = store.get_inbound(s).await.unwrap().unwrap();
        assert_eq!(row.state, state, "{s}");
        assert_eq!(row.lease_until, None, "claim released for {s}");
    }

    let err = store
        .finish_inbound_many(&[(fresh.as_str(), InboundState::Processing)])
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    store.finish_inbound_many(&[]).await.unwrap();
}
on_both_backends!(
    batch_outcomes,
    batch_outcomes_record_dry_runs_and_states_in_one_go
);

async fn answering_a_batch_claims_and_finishes_in_one_transaction(db: &TestDb) {
    use store::NewOutbound;
    let store = db.default_store().await;
    let [reply, quiet, done, held] = ["SMy", "SMq", "SMd", "SMh"].map(sid);
    for s in [&reply, &quiet, &done, &held] {
        store.record_inbound(inbound(s)).await.unwrap();
    }
    store
        .finish_inbound(&done, InboundState::Answered)
        .await
        .unwrap();
    store
        .claim_inbound(&held, "other", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let asked = [reply.as_str(), quiet.as_str(), done.as_str(), held.as_str()];

    // An outcome of `processing` is refused and changes nothing.
    let err = store
        .answer_inbound_many(&asked, "w#1", |_| (InboundState::Processing, None))
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert_eq!(
        store.get_inbound(&reply).await.unwrap().unwrap().state,
        InboundState::Received
    );

    let mut seen = Vec::new();
    let mut outcomes = store
        .answer_inbound_many(&asked, "w#2", |m| {
            seen.push((m.message_sid.clone(), m.attempts));
            if m.message_sid == reply {
                let out = NewOutbound {
                    inbound_message_sid: m.message_sid.clone(),
                    to: m.from.clone(),
                    from: m.to.clone(),
                    body: "hello".to_owned(),
                };
                (InboundState::DryRun, Some(out))
            } else {
                (InboundState::Answered, None)
            }
        })
        .await
        .unwrap();
    seen.sort();
    let mut want = vec![(reply.clone(), 1), (quiet.clone(), 1)];
    want.sort();
    assert_eq!(
        seen, want,
        "only claimable rows are decided, attempts counts this one"
    );
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (reply.clone(), InboundState::DryRun),
        (quiet.clone(), InboundState::Answered),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(outcomes, want);

    let r = store.get_inbound(&reply).await.unwrap().unwrap();
    assert_eq!(r.state, InboundState::DryRun);
    assert_eq!(r.claimed_by.as_deref(), Some("w#2"));
    assert_eq!(r.attempts, 1);
    assert_eq!(r.lease_until, None);
    let out = store.outbound_for_inbound(&reply).await.unwrap().unwrap();
    assert_eq!(
        (out.status.as_str(), out.body.as_str()),
        ("dry_run", "hello")
    );
    assert!(store.outbound_for_inbound(&quiet).await.unwrap().is_none());
    assert_eq!(
        store
            .get_inbound(&held)
            .await
            .unwrap()
            .unwrap()
            .claimed_by
            .as_deref(),
        Some("other"),
        "a live claim is not touched"
    );

    // Answered messages are not answered again.
    let again = store
        .answer_inbound_many(&asked, "w#3", |_| panic!("nothing is left to decide"))
        .await
        .unwrap();
    assert!(again.is_empty());
}
on_both_backends!(
    answer_batch,
    answering_a_batch_claims_and_finishes_in_one_transaction
);

async fn concurrent_batch_answers_decide_each_message_once(db: &TestDb) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let store = db.default_store().await;
    let sids: Vec<String> = (0..60).map(|i| sid(&format!("SM{i}a"))).collect();
    for s in &sids {
        store.record_inbound(inbound(s)).await.unwrap();
    }
    let decided = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (store, decided) = (store.clone(), decided.clone());
        let mine: Vec<String> = sids.iter().cycle().skip(w * 10).take(30).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let refs: Vec<&str> = mine.iter().map(String::as_str).collect();
            store
                .answer_inbound_many(&refs, &format!("w{w}"), |_| {
                    decided.fetch_add(1, Ordering::Relaxed);
                    (InboundState::Answered, None)
                })
                .await
                .unwrap()
                .len()
        }));
    }
    let mut answered = 0;
    for t in tasks {
        answered += t.await.unwrap();
    }
    assert_eq!(answered, 60, "every message answered by exactly one batch");
    assert_eq!(decided.load(Ordering::Relaxed), 60, "and decided once");
}
on_both_backends!(
    answer_batch_race,
    concurrent_batch_answers_decide_each_message_once
);

/// A dry-run reply without a sender (a Messaging Service picks it) stores `from_addr` as NULL,
/// and a message answered without a reply gets no reply row, in the same batch.
async fn batch_answers_store_a_missing_sender_as_null(db: &TestDb) {
    use store::NewOutbound;
    let store = db.default_store().await;
    let [with_reply, without] = ["SMr", "SMn"].map(sid);
    for s in [&with_reply, &without] {
        store.record_inbound(inbound(s)).await.unwrap();
    }
    let answered = store
        .answer_inbound_many(&[&with_reply, &without], "w#1", |m| {
            if m.message_sid == with_reply {
                let reply = NewOutbound {
                    inbound_message_sid: m.message_sid.clone(),
                    to: m.from.clone(),
                    from: String::new(),
                    body: "thanks".to_owned(),
                };
                (InboundState::DryRun, Some(reply))
            } else {
                (InboundState::Answered, None)
            }
        })
        .await
        .unwrap();
    assert_eq!(answered.len(), 2);
    let out = store
        .outbound_for_inbound(&with_reply)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.from, None);
    assert_eq!(
        (out.status.as_str(), out.body.as_str()),
        ("dry_run", "thanks")
    );
    assert_eq!(out.to, "whatsapp:+15551234567");
    assert!(
        store
            .outbound_for_inbound(&without)
            .await
            .unwrap()
            .is_none()
    );
    let row = store.get_inbound(&without).await.unwrap().unwrap();
    assert_eq!(row.state, InboundState::Answered);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.claimed_by.as_deref(), Some("w#1"));
}
on_both_backends!(
    answer_without_sender,
    batch_answers_store_a_missing_sender_as_null
);

/// A message given up as failed closes a reply that was left open, keeping its last error;
/// a reply that already had an outcome is left alone.
async fn giving_up_a_message_closes_its_open_reply(db: &TestDb) {
    let store = db.default_store().await;
    let open = sid("SMg");
    store.record_inbound(inbound(&open)).await.unwrap();
    let row = store.create_outbound(reply_to(&open)).await.unwrap();
    store
        .update_outbound(
            row.id,
            OutboundUpdate {
                add_attempts: 4,
                error_message: Some("cannot reach twilio: connection refused".to_owned()),
                ..OutboundUpdate::sending()
            },
        )
        .await
        .unwrap();
    let done = sid("SMd");
    store.record_inbound(inbound(&done)).await.unwrap();
    let failed = store.create_outbound(reply_to(&done)).await.unwrap();
    store
        .update_outbound(
            failed.id,
            OutboundUpdate::failed(Some(21211), "invalid 'To' phone number", 1),
        )
        .await
        .unwrap();
    store
        .finish_inbound_many(&[
            (open.as_str(), InboundState::Failed),
            (done.as_str(), InboundState::Failed),
        ])
        .await
        .unwrap();
    let r = store.get_outbound(row.id).await.unwrap().unwrap();
    assert_eq!(r.status, "failed");
    let text = r.error_message.unwrap_or_default();
    assert!(
        text.starts_with("given up") && text.ends_with("connection refused"),
        "{text}"
    );
    assert_eq!(r.attempts, 4);
    let f = store.get_outbound(failed.id).await.unwrap().unwrap();
    assert_eq!(
        f.error_message.as_deref(),
        Some("invalid 'To' phone number")
    );
}
on_both_backends!(given_up, giving_up_a_message_closes_its_open_reply);

/// A batch refused inside its transaction releases its row locks before the error returns: a
/// worker asking right after must not find the rows locked (with `SKIP LOCKED` it would pass
/// over them and leave them to the sweep). Dropping the failed transaction left its rollback to
/// a background task: then 2–8 of these 1,000 tries found the row still locked (3 runs of 3
/// failed; with 500 tries, 2 runs of 4), since the race needs that task to be late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_leaves_no_row_locked_behind() {
    use sea_orm::ConnectionTrait;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.default_store().await;
    let other = sea_orm::Database::connect(db.url()).await.unwrap();
    let mut locked = 0;
    for _ in 0..1000 {
        let s = sid("SMl");
        store.record_inbound(inbound(&s)).await.unwrap();
        let err = store
            .answer_inbound_many(&[&s], "w#1", |_| (InboundState::Processing, None))
            .await
            .unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        // One statement, its own transaction: the lock is taken and let go at once.
        let probe = other
            .execute_unprepared(&format!(
                "SELECT 1 FROM inbound_messages WHERE message_sid = '{s}' FOR UPDATE NOWAIT"
            ))
            .await;
        if probe.is_err() {
            locked += 1;
        }
    }
    assert_eq!(locked, 0, "rows still locked right after a refused batch");
}
