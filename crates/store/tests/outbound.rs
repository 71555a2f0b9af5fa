//! Outbound rows: one reply per inbound message, created before the send.

use store::{NewOutbound, OutboundUpdate, outbound_status};

use crate::on_both_backends;
use crate::support::{TestDb, TestDbExt, inbound, sid};

pub(crate) fn reply_to(inbound_sid: &str) -> NewOutbound {
    NewOutbound {
        inbound_message_sid: inbound_sid.to_owned(),
        to: "whatsapp:+15551234567".to_owned(),
        from: "whatsapp:+14155238886".to_owned(),
        body: "Hi Ana! We received your message".to_owned(),
    }
}

async fn concurrent_creates_share_one_row(db: &TestDb) {
    let store = db.default_store().await;
    let s = sid("SM");
    store.record_inbound(inbound(&s)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let new = reply_to(&s);
        tasks.push(tokio::spawn(
            async move { store.create_outbound(new).await },
        ));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one reply row per inbound message");

    let row = store.outbound_for_inbound(&s).await.unwrap().unwrap();
    assert_eq!(row.status, outbound_status::PENDING);
    assert_eq!(row.attempts, 0);
    assert!(!row.is_final());
    assert!(!row.is_in_doubt());
    assert_eq!(
        store
            .outbound_by_marker(&row.callback_marker)
            .await
            .unwrap()
            .unwrap()
            .id,
        row.id
    );
}
on_both_backends!(one_reply_per_inbound, concurrent_creates_share_one_row);

async fn a_reply_to_an_unknown_message_is_a_constraint_error(db: &TestDb) {
    let store = db.default_store().await;
    let err = store
        .create_outbound(reply_to("SMunknown"))
        .await
        .unwrap_err();
    assert!(err.is_constraint(), "{err}");
}
on_both_backends!(
    unknown_inbound,
    a_reply_to_an_unknown_message_is_a_constraint_error
);

async fn updates_record_the_send_and_its_errors(db: &TestDb) {
    let store = db.default_store().await;
    let s = sid("SM");
    store.record_inbound(inbound(&s)).await.unwrap();
    let row = store.create_outbound(reply_to(&s)).await.unwrap();

    store
        .update_outbound(row.id, OutboundUpdate::sending())
        .await
        .unwrap();
    let r = store.get_outbound(row.id).await.unwrap().unwrap();
    assert!(
        r.is_in_doubt(),
        "a send without an answer must be looked up, not resent"
    );

    // An earlier try's error (Twilio unreachable) is on the row until the message is sent.
    store
        .update_outbound(
            row.id,
            OutboundUpdate {
                error_message: Some("cannot reach twilio: connection refused".to_owned()),
                ..OutboundUpdate::default()
            },
        )
        .await
        .unwrap();
    let twilio_sid = sid("SMt");
    store
        .update_outbound(row.id, OutboundUpdate::sent(&twilio_sid, "queued", 2))
        .await
        .unwrap();
    let r = store.get_outbound(row.id).await.unwrap().unwrap();
    assert_eq!(r.message_sid.as_deref(), Some(twilio_sid.as_str()));
    assert_eq!(
        r.error_message, None,
        "the sent reply carries no stale error"
    );
    assert_eq!(r.status, "queued");
    assert_eq!(r.attempts, 2);
    assert!(r.is_final());
    assert_eq!(
        store
            .outbound_by_message_sid(&twilio_sid)
            .await
            .unwrap()
            .unwrap()
            .id,
        row.id
    );

    // A later send's SID does not replace the recorded one (the row keeps describing the
    // first message; a callback marker may have attached it before the send's response).
    store
        .update_outbound(row.id, OutboundUpdate::sent(&sid("SMx"), "queued", 1))
        .await
        .unwrap();
    let r = store.get_outbound(row.id).await.unwrap().unwrap();
    assert_eq!(r.message_sid.as_deref(), Some(twilio_sid.as_str()));

    // A second reply row for the same inbound is the same row, still final.
    assert!(
        store
            .create_outbound(reply_to(&s))
            .await
            .unwrap()
            .is_final()
    );

    // A failed send on another message keeps Twilio's code and message.
    let s2 = sid("SM2");
    store.record_inbound(inbound(&s2)).await.unwrap();
    let row2 = store.create_outbound(reply_to(&s2)).await.unwrap();
    store
        .update_outbound(
            row2.id,
            OutboundUpdate::failed(Some(21211), "invalid 'To' phone number", 1),
        )
        .await
        .unwrap();
    let r2 = store.get_outbound(row2.id).await.unwrap().unwrap();
    assert_eq!(r2.status, "failed");
    assert_eq!(r2.error_code, Some(21211));
    assert_eq!(
        r2.error_message.as_deref(),
        Some("invalid 'To' phone number")
    );
    assert!(r2.is_final());

    // Dry run.
    let s3 = sid("SM3");
    store.record_inbound(inbound(&s3)).await.unwrap();
    let row3 = store.create_outbound(reply_to(&s3)).await.unwrap();
    store
        .update_outbound(row3.id, OutboundUpdate::dry_run())
        .await
        .unwrap();
    assert!(
        store
            .get_outbound(row3.id)
            .await
            .unwrap()
            .unwrap()
            .is_final()
    );

    let err = store
        .update_outbound(i64::MAX, OutboundUpdate::dry_run())
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
}
on_both_backends!(send_updates, updates_record_the_send_and_its_errors);
