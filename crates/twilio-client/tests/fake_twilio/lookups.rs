//! Read-only calls the CLI and the retry loop rely on: messages, account, credentials,
//! numbers, Messaging Service, WhatsApp sender.

use std::time::Duration;

use test_support::{ACCOUNT_SID, FakeTwilio, fixture};
use twilio_client::{Auth, TwilioError, hint_for_code};

use crate::{FROM, TO, client, client_with, reply};

const FAILED_SID: &str = "SM2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d1c";
const WEBHOOK: &str = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook";

fn api_key_client(fake: &FakeTwilio) -> twilio_client::Client {
    client_with(
        fake,
        Auth::api_key(ACCOUNT_SID, "SK0123456789abcdef0123456789abcdef", "s"),
        Duration::from_secs(10),
    )
}

#[test]
fn fetch_message_shows_a_later_whatsapp_failure_with_its_hint() {
    let fake = FakeTwilio::start_blocking();
    let message = client(&fake).fetch_message(FAILED_SID).expect("fetched");
    assert!(message.is_failed());
    assert_eq!(message.error_code, Some(63016));
    let hint = message.error_code.and_then(hint_for_code).expect("hint");
    assert!(
        hint.contains("use an approved template (ContentSid) outside the 24-hour window"),
        "{hint}"
    );
    assert_eq!(
        fake.requests()[0].path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{FAILED_SID}.json")
    );
}

#[test]
fn fetch_message_follows_status_changes_and_unknown_sids_are_not_found() {
    let fake = FakeTwilio::start_blocking();
    let client = client(&fake);
    let sent = client.send_message(&reply("hi")).expect("sent");
    fake.set_message_status(&sent.sid, "undelivered", Some(63024));
    let fetched = client.fetch_message(&sent.sid).expect("fetched");
    assert_eq!(
        (fetched.status.as_str(), fetched.error_code),
        ("undelivered", Some(63024))
    );

    let err = client
        .fetch_message("SM00000000000000000000000000000000")
        .expect_err("unknown");
    assert!(matches!(err, TwilioError::NotFound(_)), "{err:?}");
    assert_eq!(err.code(), Some(20404));
    let err = client.fetch_message("../Calls").expect_err("unsafe sid");
    assert!(matches!(err, TwilioError::InvalidRequest(_)), "{err:?}");
}

#[test]
fn list_messages_filters_by_to_and_from() {
    let fake = FakeTwilio::start_blocking();
    let client = client(&fake);
    client.send_message(&reply("first")).expect("sent");
    client
        .send_message(&twilio_client::SendMessage::text(
            "whatsapp:+15559990000",
            FROM,
            "other person",
        ))
        .expect("sent");
    client.send_message(&reply("second")).expect("sent");

    let listed = client
        .list_messages(TO, Some(FROM), Some("2025-10-14"))
        .expect("listed");
    let bodies: Vec<_> = listed.iter().filter_map(|m| m.body.as_deref()).collect();
    assert_eq!(
        bodies,
        ["second", "first"],
        "newest first, only this recipient"
    );

    let list = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "GET")
        .expect("list request");
    assert_eq!(list.query_value("To"), Some(TO));
    assert_eq!(list.query_value("From"), Some(FROM));
    assert_eq!(list.query_value("DateSent"), Some("2025-10-14"));
    let raw = list.raw_query.unwrap_or_default();
    assert!(raw.contains("To=whatsapp%3A%2B15551234567"), "{raw}");
}

#[test]
fn fetch_account_with_token_and_refused_for_api_keys() {
    let fake = FakeTwilio::start_blocking();
    let account = client(&fake).fetch_account().expect("account");
    assert_eq!(account.sid, ACCOUNT_SID);
    assert!(account.is_active());
    assert!(!account.is_trial());

    let err = api_key_client(&fake)
        .fetch_account()
        .expect_err("API keys cannot read /Accounts");
    assert!(matches!(err, TwilioError::Authentication(_)), "{err:?}");
    assert!(err.to_string().contains("API key"), "{err}");
}

#[test]
fn suspended_account_is_reported() {
    let fake = FakeTwilio::start_blocking();
    fake.set_fixture(
        "account.json",
        &fixture("account.json").replace("\"active\"", "\"suspended\""),
    );
    let account = client(&fake).fetch_account().expect("account");
    assert!(!account.is_active());
}

#[test]
fn check_credentials_works_with_api_keys_and_asks_for_one_number() {
    let fake = FakeTwilio::start_blocking();
    api_key_client(&fake).check_credentials().expect("accepted");
    let req = &fake.requests()[0];
    assert_eq!(
        req.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json")
    );
    assert_eq!(req.query_value("PageSize"), Some("1"));

    fake.require_basic_auth(ACCOUNT_SID, "the-right-token");
    let err = client(&fake).check_credentials().expect_err("wrong token");
    assert!(matches!(err, TwilioError::Authentication(_)), "{err:?}");
}

#[test]
fn find_incoming_number_strips_the_whatsapp_prefix_and_reads_sms_url() {
    let fake = FakeTwilio::start_blocking();
    let client = client(&fake);
    let number = client
        .find_incoming_number("whatsapp:+14155550100")
        .expect("looked up")
        .expect("found");
    assert_eq!(number.phone_number, "+14155550100");
    assert_eq!(number.webhook_url(), Some(WEBHOOK));
    assert_eq!(number.sms_method.as_deref(), Some("POST"));
    let raw = fake.requests()[0].raw_query.clone().unwrap_or_default();
    assert_eq!(raw, "PhoneNumber=%2B14155550100");

    let missing = client
        .find_incoming_number("whatsapp:+14155238886")
        .expect("looked up");
    assert_eq!(missing, None, "the Sandbox number is not in the account");
}

#[test]
fn messaging_service_and_whatsapp_sender_webhooks() {
    let fake = FakeTwilio::start_blocking();
    let client = client(&fake);
    assert_eq!(
        client.messaging_base_url(),
        fake.base_url(),
        "a non-Twilio base URL serves the Messaging API too"
    );
    let mg = "MG0d4f8b2e6a1c9e3f7b5d1a8c4e2f6b9d";
    let service = client.fetch_messaging_service(mg).expect("service");
    assert_eq!(service.sid, mg);
    assert_eq!(service.webhook_url(), Some(WEBHOOK));
    assert!(!service.use_inbound_webhook_on_number);

    let xe = "XE6a2d8f4b0c7e1a5d9f3b6c2e8a4d0f7b";
    let sender = client.fetch_whatsapp_sender(xe).expect("sender");
    assert_eq!(sender.webhook_url(), Some(WEBHOOK));
    assert_eq!(sender.status.as_deref(), Some("ONLINE"));

    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/v1/Services/{mg}"),
            format!("/v2/Channels/Senders/{xe}")
        ]
    );

    let err = client
        .fetch_messaging_service("MG1/../x")
        .expect_err("bad sid");
    assert!(matches!(err, TwilioError::InvalidRequest(_)), "{err:?}");
    assert_eq!(fake.requests().len(), 2, "refused before sending");
}

#[test]
fn explicit_messaging_base_url_is_used() {
    let api = FakeTwilio::start_blocking();
    let messaging = FakeTwilio::start_blocking();
    let client = client(&api)
        .with_messaging_base_url(&messaging.base_url())
        .expect("valid url");
    client
        .fetch_messaging_service("MG0d4f8b2e6a1c9e3f7b5d1a8c4e2f6b9d")
        .expect("service");
    assert!(api.requests().is_empty());
    assert_eq!(messaging.requests().len(), 1);
}

#[test]
fn a_whatsapp_sender_is_found_by_its_number_across_pages() {
    let fake = FakeTwilio::start_blocking();
    // First page: another sender and a link to the next page (on the same host); the second
    // page is the fixture, whose sender is +14155550123.
    let next = format!(
        "{}/v2/Channels/Senders?Channel=whatsapp&PageSize=50&PageToken=PT2",
        fake.base_url()
    );
    let first = serde_json::json!({
        "senders": [{"sid": "XE00000000000000000000000000000001", "status": "ONLINE",
                     "sender_id": "whatsapp:+15550001111", "webhook": null}],
        "meta": {"page": 0, "page_size": 50, "next_page_url": next, "key": "senders"}
    });
    fake.fail_next_with_body(1, 200, &first.to_string());
    let client = client(&fake);

    let sender = client
        .find_whatsapp_sender("whatsapp:+14155550123")
        .expect("listing works")
        .expect("found on the second page");
    assert_eq!(sender.sid, "XE1c5e9a3d7b2f6c0a4e8d2b6f0a3c7e1d");
    assert_eq!(sender.webhook_url(), Some(WEBHOOK));
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/v2/Channels/Senders");
    assert_eq!(requests[0].query_value("Channel"), Some("whatsapp"));
    assert_eq!(requests[1].query_value("PageToken"), Some("PT2"));

    // A number without a sender: None, not an error.
    assert_eq!(
        client
            .find_whatsapp_sender("+14155550100")
            .expect("listing works"),
        None
    );
}

#[test]
fn a_next_page_on_another_host_is_not_followed() {
    let fake = FakeTwilio::start_blocking();
    let page = serde_json::json!({
        "senders": [],
        "meta": {"next_page_url": "https://attacker.example/v2/Channels/Senders?PageToken=x"}
    });
    fake.fail_next_with_body(1, 200, &page.to_string());
    let found = client(&fake)
        .find_whatsapp_sender("+14155550123")
        .expect("listing works");
    assert_eq!(found, None);
    assert_eq!(
        fake.requests().len(),
        1,
        "the credentials stay on the Messaging host"
    );
}

/// The lookup for an interrupted send reads every page back to when the send began: a chatty
/// conversation can push the reply we look for off the newest page of 50, and missing it
/// would mean sending it a second time.
#[test]
fn a_lookup_finds_a_send_beyond_the_newest_page() {
    let fake = FakeTwilio::start_blocking();
    let c = client(&fake);
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    let wanted = reply("the one we lost");
    let sent = c.send_message(&wanted).expect("created");
    for i in 0..120 {
        c.send_message(&reply(&format!("later message {i}")))
            .expect("created");
    }
    let found = c
        .find_sent(&wanted, started)
        .expect("lookup works")
        .expect("found on a later page");
    assert_eq!(found.sid, sent.sid);
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/Messages.json"))
        .count();
    assert_eq!(pages, 3, "121 messages at 50 a page");
}

/// More candidates than the lookup will read: it fails (the send stays in doubt) instead of
/// answering "not sent" from part of the list.
#[test]
fn a_lookup_that_cannot_read_back_far_enough_fails_instead_of_saying_not_sent() {
    let fake = FakeTwilio::start_blocking();
    let c = client(&fake);
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    for i in 0..1_010 {
        c.send_message(&reply(&format!("message {i}")))
            .expect("created");
    }
    let err = c
        .find_sent(&reply("never sent"), started)
        .expect_err("inconclusive");
    assert!(err.to_string().contains("cannot tell"), "{err}");
}
