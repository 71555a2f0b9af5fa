//! Creating messages: the request Twilio receives and the message we get back.

use std::time::Duration;

use test_support::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio};
use twilio_client::{Auth, SendMessage, TwilioError};

use crate::{FROM, TO, client, client_with, reply};

const MG: &str = "MG0d4f8b2e6a1c9e3f7b5d1a8c4e2f6b9d";
const HX: &str = "HXb5b62575e6e4ff6129ad7c8efe1f983e";

#[test]
fn send_posts_the_form_with_token_auth_and_returns_the_created_message() {
    let fake = FakeTwilio::start_blocking();
    let req = SendMessage {
        status_callback: Some("https://bot.example.com/api/v1/whatsapp/status".into()),
        ..reply("Hi Ana! We received your message: hello")
    };
    let message = client(&fake).send_message(&req).expect("sent");

    assert!(
        message.sid.starts_with("SM") && message.sid.len() == 34,
        "{}",
        message.sid
    );
    assert_eq!(message.to, TO);
    assert_eq!(message.from.as_deref(), Some(FROM));
    assert_eq!(message.status, "queued");
    assert_eq!(message.error_code, None);

    let sent = fake.sent_messages();
    assert_eq!(sent.len(), 1);
    let post = &sent[0];
    assert_eq!(
        post.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    assert_eq!(
        post.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        post.basic_auth(),
        Some((ACCOUNT_SID.to_owned(), AUTH_TOKEN.to_owned()))
    );
    assert_eq!(post.form_value("To"), Some(TO));
    assert_eq!(post.form_value("From"), Some(FROM));
    assert_eq!(
        post.form_value("Body"),
        Some("Hi Ana! We received your message: hello")
    );
    assert_eq!(
        post.form_value("StatusCallback"),
        Some("https://bot.example.com/api/v1/whatsapp/status")
    );
    assert_eq!(post.form_value("MessagingServiceSid"), None);
}

#[test]
fn every_send_gets_a_fresh_sid() {
    let fake = FakeTwilio::start_blocking();
    let client = client(&fake);
    let a = client.send_message(&reply("one")).expect("sent");
    let b = client.send_message(&reply("two")).expect("sent");
    assert_ne!(a.sid, b.sid);
}

#[test]
fn api_key_auth_sends_the_key_but_keeps_the_account_in_the_path() {
    let fake = FakeTwilio::start_blocking();
    let key = "SK0123456789abcdef0123456789abcdef";
    fake.require_basic_auth(key, "key-secret");
    let client = client_with(
        &fake,
        Auth::api_key(ACCOUNT_SID, key, "key-secret"),
        Duration::from_secs(10),
    );
    client
        .send_message(&reply("hi"))
        .expect("sent with the API key");
    let post = &fake.sent_messages()[0];
    assert_eq!(
        post.basic_auth(),
        Some((key.to_owned(), "key-secret".to_owned()))
    );
    assert!(post.path.contains(ACCOUNT_SID), "{}", post.path);
}

#[test]
fn repeated_media_urls_survive_form_encoding_in_order() {
    let fake = FakeTwilio::start_blocking();
    let urls = vec![
        "https://cdn.example.com/a b.jpg?sig=x+y&size=2".to_owned(),
        "https://cdn.example.com/ção.png".to_owned(),
    ];
    let req = SendMessage {
        body: Some("a + b = c & d".into()),
        media_urls: urls.clone(),
        ..reply("")
    };
    let message = client(&fake).send_message(&req).expect("sent");
    assert!(
        message.sid.starts_with("MM"),
        "media messages are MM: {}",
        message.sid
    );
    assert_eq!(message.num_media.as_deref(), Some("2"));

    let post = &fake.sent_messages()[0];
    assert_eq!(post.form_values("MediaUrl"), urls);
    assert_eq!(post.form_value("Body"), Some("a + b = c & d"));
    assert_eq!(post.body.matches("MediaUrl=").count(), 2, "{}", post.body);
    assert!(
        post.body.contains("Body=a+%2B+b+%3D+c+%26+d"),
        "{}",
        post.body
    );
}

#[test]
fn template_through_a_messaging_service() {
    let fake = FakeTwilio::start_blocking();
    let req = SendMessage {
        to: TO.into(),
        messaging_service_sid: Some(MG.into()),
        content_sid: Some(HX.into()),
        content_variables: Some(r#"{"1":"Ana","2":"12:30"}"#.into()),
        ..SendMessage::default()
    };
    let message = client(&fake).send_message(&req).expect("sent");
    assert_eq!(message.messaging_service_sid.as_deref(), Some(MG));
    assert_eq!(message.status, "accepted");

    let post = &fake.sent_messages()[0];
    assert_eq!(post.form_value("From"), None);
    assert_eq!(post.form_value("Body"), None);
    assert_eq!(post.form_value("MessagingServiceSid"), Some(MG));
    assert_eq!(post.form_value("ContentSid"), Some(HX));
    assert_eq!(
        post.form_value("ContentVariables"),
        Some(r#"{"1":"Ana","2":"12:30"}"#)
    );
}

#[test]
fn an_invalid_message_is_refused_before_any_request() {
    let fake = FakeTwilio::start_blocking();
    let no_sender = SendMessage {
        from: None,
        ..reply("hi")
    };
    let err = client(&fake)
        .send_message(&no_sender)
        .expect_err("needs a sender");
    assert!(matches!(err, TwilioError::InvalidRequest(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn usable_from_async_code_through_spawn_blocking() {
    let fake = FakeTwilio::start().await;
    let client = client(&fake);
    let message = tokio::task::spawn_blocking(move || client.send_message(&reply("async")))
        .await
        .expect("join")
        .expect("sent");
    assert_eq!(message.body.as_deref(), Some("async"));
    assert_eq!(fake.sent_messages().len(), 1);
}
