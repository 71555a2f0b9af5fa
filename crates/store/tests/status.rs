//! Status callbacks: every event stored, status only forward, whatever the arrival order.

use store::{NewStatusEvent, OutboundUpdate, StatusApplied, Store};

use crate::on_both_backends;
use crate::outbound::reply_to;
use crate::support::{TestDb, TestDbExt, inbound, sid};

fn event(message_sid: &str, status: &str, error_code: Option<i64>) -> NewStatusEvent {
    NewStatusEvent {
        message_sid: message_sid.to_owned(),
        status: status.to_owned(),
        error_code,
        error_message: None,
        params_json: format!(r#"{{"MessageSid":"{message_sid}","MessageStatus":"{status}"}}"#),
        idempotency_token: Some(format!("tok-{status}")),
        callback_marker: None,
    }
}

/// An outbound message that Twilio accepted as `twilio_sid`.
async fn sent_message(store: &Store) -> (i64, String) {
    let s = sid("SMi");
    store.record_inbound(inbound(&s)).await.unwrap();
    let row = store.create_outbound(reply_to(&s)).await.unwrap();
    let twilio_sid = sid("SMo");
    store
        .update_outbound(row.id, OutboundUpdate::sent(&twilio_sid, "accepted", 1))
        .await
        .unwrap();
    (row.id, twilio_sid)
}

/// A status and its error code.
type Event = (&'static str, Option<i64>);

fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first.clone());
            out.push(p);
        }
    }
    out
}

async fn every_arrival_order_ends_in_the_same_status(db: &TestDb) {
    let store = db.default_store().await;
    let cases: [(&[Event], &str, Option<i64>); 3] = [
        (
            &[
                ("queued", None),
                ("sent", None),
                ("delivered", None),
                ("read", None),
            ],
            "read",
            None,
        ),
        (
            &[
                ("queued", None),
                ("sent", None),
                ("undelivered", Some(63016)),
            ],
            "undelivered",
            Some(63016),
        ),
        (
            &[("sending", None), ("failed", Some(63016))],
            "failed",
            Some(63016),
        ),
    ];
    for (events, final_status, final_code) in cases {
        for order in permutations(events) {
            let (id, msid) = sent_message(&store).await;
            for (status, code) in &order {
                store
                    .record_status(event(&msid, status, *code))
                    .await
                    .unwrap();
            }
            let row = store.get_outbound(id).await.unwrap().unwrap();
            assert_eq!(row.status, final_status, "order {order:?}");
            assert_eq!(row.error_code, final_code, "order {order:?}");
            assert_eq!(
                store.status_events(&msid).await.unwrap().len(),
                order.len(),
                "every event is stored"
            );
        }
    }
}
on_both_backends!(
    shuffled_callbacks,
    every_arrival_order_ends_in_the_same_status
);

async fn concurrent_callbacks_never_move_backwards(db: &TestDb) {
    let store = db.default_store().await;
    for _ in 0..5 {
        let (id, msid) = sent_message(&store).await;
        let mut tasks = Vec::new();
        for status in [
            "queued",
            "sending",
            "sent",
            "delivered",
            "read",
            "sent",
            "queued",
        ] {
            let store = store.clone();
            let ev = event(&msid, status, None);
            tasks.push(tokio::spawn(async move { store.record_status(ev).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            store.get_outbound(id).await.unwrap().unwrap().status,
            "read"
        );
    }
}
on_both_backends!(
    concurrent_callbacks,
    concurrent_callbacks_never_move_backwards
);

async fn terminal_and_stale_events_follow_the_rules(db: &TestDb) {
    let store = db.default_store().await;

    // A delivered message stays delivered when a late error arrives.
    let (id, msid) = sent_message(&store).await;
    assert_eq!(
        store
            .record_status(event(&msid, "delivered", None))
            .await
            .unwrap(),
        StatusApplied::Advanced
    );
    assert_eq!(
        store
            .record_status(event(&msid, "undelivered", Some(30008)))
            .await
            .unwrap(),
        StatusApplied::Stale
    );
    assert_eq!(
        store
            .record_status(event(&msid, "sent", None))
            .await
            .unwrap(),
        StatusApplied::Stale
    );
    let row = store.get_outbound(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.error_code), ("delivered", None));

    // Nothing replaces a terminal status.
    let (id, msid) = sent_message(&store).await;
    store
        .record_status(event(&msid, "failed", Some(63016)))
        .await
        .unwrap();
    store
        .record_status(event(&msid, "read", None))
        .await
        .unwrap();
    let row = store.get_outbound(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.error_code),
        ("failed", Some(63016))
    );

    // The send response's late "queued" does not undo a callback that came first.
    let (id, msid) = sent_message(&store).await;
    store
        .record_status(event(&msid, "delivered", None))
        .await
        .unwrap();
    store
        .update_outbound(id, OutboundUpdate::sent(&msid, "queued", 0))
        .await
        .unwrap();
    assert_eq!(
        store.get_outbound(id).await.unwrap().unwrap().status,
        "delivered"
    );

    // Unknown statuses are stored but change nothing.
    store
        .record_status(event(&msid, "partially_delivered", None))
        .await
        .unwrap();
    assert_eq!(
        store.get_outbound(id).await.unwrap().unwrap().status,
        "delivered"
    );
    assert_eq!(store.status_events(&msid).await.unwrap().len(), 2);
}
on_both_backends!(terminal_rules, terminal_and_stale_events_follow_the_rules);

async fn callbacks_before_the_sid_is_known_are_applied_later(db: &TestDb) {
    let store = db.default_store().await;

    // The callback beats the send response: stored, then applied when the SID is recorded.
    let s = sid("SMi");
    store.record_inbound(inbound(&s)).await.unwrap();
    let row = store.create_outbound(reply_to(&s)).await.unwrap();
    let msid = sid("SMo");
    assert_eq!(
        store
            .record_status(event(&msid, "sent", None))
            .await
            .unwrap(),
        StatusApplied::UnknownMessage
    );
    store
        .update_outbound(row.id, OutboundUpdate::sent(&msid, "queued", 1))
        .await
        .unwrap();
    assert_eq!(
        store.get_outbound(row.id).await.unwrap().unwrap().status,
        "sent"
    );

    // The send response was lost entirely: the callback marker finds the row.
    let s = sid("SMi");
    store.record_inbound(inbound(&s)).await.unwrap();
    let row = store.create_outbound(reply_to(&s)).await.unwrap();
    store
        .update_outbound(row.id, OutboundUpdate::sending())
        .await
        .unwrap();
    let msid = sid("SMo");
    let mut ev = event(&msid, "delivered", None);
    ev.callback_marker = Some(row.callback_marker.clone());
    assert_eq!(
        store.record_status(ev).await.unwrap(),
        StatusApplied::Advanced
    );
    let r = store.get_outbound(row.id).await.unwrap().unwrap();
    assert_eq!(r.message_sid.as_deref(), Some(msid.as_str()));
    assert_eq!(r.status, "delivered");
    assert!(r.is_final());
}
on_both_backends!(
    early_callbacks,
    callbacks_before_the_sid_is_known_are_applied_later
);

/// A reply in doubt whose marker arrives with a SID another (identical) reply already recorded:
/// the event is stored and applied to the row holding the SID, not refused on the unique index
/// (which answered Twilio 500 and lost the status).
async fn a_marker_for_a_sid_another_reply_holds_is_applied_there(db: &TestDb) {
    let store = db.default_store().await;
    let (held_by, msid) = sent_message(&store).await;
    let s = sid("SMi");
    store.record_inbound(inbound(&s)).await.unwrap();
    let in_doubt = store.create_outbound(reply_to(&s)).await.unwrap();
    store
        .update_outbound(in_doubt.id, OutboundUpdate::sending())
        .await
        .unwrap();
    let mut ev = event(&msid, "delivered", None);
    ev.callback_marker = Some(in_doubt.callback_marker.clone());
    assert_eq!(
        store.record_status(ev).await.unwrap(),
        StatusApplied::Advanced
    );
    assert_eq!(
        store.get_outbound(held_by).await.unwrap().unwrap().status,
        "delivered"
    );
    let r = store.get_outbound(in_doubt.id).await.unwrap().unwrap();
    assert_eq!(r.message_sid, None, "still in doubt, for its own lookup");
    assert_eq!(store.status_events(&msid).await.unwrap().len(), 1);
}
on_both_backends!(
    marker_conflict,
    a_marker_for_a_sid_another_reply_holds_is_applied_there
);
