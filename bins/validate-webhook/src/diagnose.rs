//! What an answer to a signed test request means: one [`Check`] per request, mapping each
//! outcome to the seed's diagnosis flows (403 → token/URL mismatch, 404 → wrong path,
//! 502/ERR_NGROK → ngrok up but backend down, no connection → tunnel or host down).

use crate::http::{Answer, Failure, one_line};
use crate::report::{Check, Section};

/// Where the request went and what the fixes should mention.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The URL posted to.
    pub url: &'a str,
    /// `PORT`, for "start the server on PORT" and "ngrok http PORT".
    pub port: u16,
    /// Timeout used, in seconds.
    pub timeout_secs: u64,
}

impl Target<'_> {
    fn is_local(&self) -> bool {
        url::Url::parse(self.url)
            .ok()
            .and_then(|u| u.host_str().map(crate::http::is_loopback))
            .unwrap_or(false)
    }

    fn host(&self) -> String {
        url::Url::parse(self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| self.url.to_owned())
    }

    fn start_server(&self) -> String {
        format!(
            "start webhook-server (`cargo run --release -p webhook-server`) so it listens on PORT {}",
            self.port
        )
    }
}

/// The outcome of a correctly signed request.
pub fn signed(
    section: Section,
    name: &str,
    t: &Target<'_>,
    result: &Result<Answer, Failure>,
) -> Check {
    let answer = match result {
        Ok(a) => a,
        Err(f) => return unreachable(section, name, t, f),
    };
    let s = answer.status;
    let url = t.url;
    let err = |detail: String, fix: String| Check::error(section, name, detail, fix);
    match (s, answer.ngrok_error.as_deref()) {
        (200..=299, _) => Check::ok(
            section,
            name,
            format!("{url} answered {s}: the signature was accepted and the message recorded (it is marked as a test, so nobody gets a reply)"),
        ),
        (_, Some(code @ ("ERR_NGROK_3200" | "ERR_NGROK_3004"))) => err(
            format!("{url} answered {s} {code}: this ngrok URL is offline"),
            format!("Start ngrok (`ngrok http {}`) and put its new https URL, ending in /api/v1/whatsapp/webhook, in WEBHOOK_URL and in the Twilio Console.", t.port),
        ),
        (_, Some(code)) if s >= 500 || code == "ERR_NGROK_8012" => err(
            format!("{url} answered {s} {code}: ngrok is running but cannot reach the backend"),
            format!("{} and make sure ngrok forwards to that port (`ngrok http {}`).", capitalise(&t.start_server()), t.port),
        ),
        // webhook-server's body for a request it could not check at all (no token, a
        // placeholder, a shared key it lacks) is "signature not verified".
        (403, _) if answer.body.contains("signature not verified") => err(
            format!("{url} refused a correctly signed request (403) without checking its signature"),
            "The server has no key to check it with: its TWILIO_AUTH_TOKEN is not set (its log line for this request says what it lacks); set the Auth Token in the server's environment and restart it.".to_owned(),
        ),
        (403, _) => err(
            format!("{url} refused a correctly signed request (403)"),
            "The server validates signatures with a different TWILIO_AUTH_TOKEN or WEBHOOK_URL than this .env: give it the same values (WEBHOOK_URL exactly as Twilio calls it: https, same host and path) and restart it.".to_owned(),
        ),
        (404 | 405, _) => err(
            format!("{url} answered {s}: nothing handles inbound messages at this path"),
            wrong_place_fix(url),
        ),
        (300..=399, _) => err(
            format!(
                "{url} redirects ({s}) to {}",
                answer.location.as_deref().unwrap_or("another URL")
            ),
            "Twilio signs the URL it calls and does not follow redirects for you: set WEBHOOK_URL and the Twilio Console to the final https URL.".to_owned(),
        ),
        (502 | 504, None) => err(
            format!("{url} answered {s}: the proxy in front of the server cannot reach it"),
            if t.is_local() {
                format!("{}.", capitalise(&t.start_server()))
            } else {
                "The server behind this URL is down or still starting: check the deployment's logs and that it listens on the PORT the platform gives it.".to_owned()
            },
        ),
        (503, None) => err(
            format!("{url} answered 503: the server is up but its database is unavailable"),
            "GET /readyz on the server says what it waits for (it retries the database until it answers); check DATABASE_URL (`validate-webhook` has a Database section).".to_owned(),
        ),
        _ => err(
            format!("{url} answered {s}: {}", one_line(&answer.body, 120)),
            "Look at the server's log for this request; WEBHOOK_URL must point at webhook-server's /api/v1/whatsapp/webhook.".to_owned(),
        ),
    }
}

/// The fix for a 404 or 405 from `url`: the path, a prefix before it, or the server.
fn wrong_place_fix(url: &str) -> String {
    let path = url::Url::parse(url)
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    let hook = config::WEBHOOK_PATH;
    match path.strip_suffix(hook) {
        Some("") => "What answers at this host and port is not webhook-server: point the URL at webhook-server (WEBHOOK_URL and the Twilio Console alike).".to_owned(),
        Some(prefix) => format!("webhook-server serves {hook} at the root, and this URL has {prefix} before it: remove {prefix} (WEBHOOK_URL and the Twilio Console alike), unless a proxy in front is meant to strip it — then that proxy does not."),
        None => format!("The path must end in {hook}: fix the URL posted to (WEBHOOK_URL, or simulate's --url), point it at webhook-server, and use the same URL in the Twilio Console."),
    }
}

/// The outcome of the same request with a wrong signature.
pub fn tampered(
    section: Section,
    name: &str,
    t: &Target<'_>,
    result: &Result<Answer, Failure>,
) -> Check {
    match result {
        Ok(a) if a.status == 403 => Check::ok(
            section,
            name,
            format!(
                "{} refused the same request with a wrong signature (403)",
                t.url
            ),
        ),
        Ok(a) if (200..300).contains(&a.status) => Check::error(
            section,
            name,
            format!(
                "{} accepted a request with a wrong signature ({})",
                t.url, a.status
            ),
            "Whatever answers WEBHOOK_URL does not check X-Twilio-Signature: point WEBHOOK_URL at webhook-server.",
        ),
        Ok(a) => Check::error(
            section,
            name,
            format!(
                "{} answered {} to a wrongly signed request; expected 403",
                t.url, a.status
            ),
            "Look at the server's log for this request; webhook-server answers 403 to a bad signature.",
        ),
        Err(f) => unreachable(section, name, t, f),
    }
}

fn unreachable(section: Section, name: &str, t: &Target<'_>, f: &Failure) -> Check {
    let host = t.host();
    let (detail, fix) = match f {
        Failure::Refused if t.is_local() => (
            format!("cannot connect to {}: connection refused", t.url),
            format!("{}.", capitalise(&t.start_server())),
        ),
        Failure::Refused | Failure::Other(_) => (
            format!("cannot connect to {}: {}", t.url, f.describe()),
            tunnel_down(t.port),
        ),
        Failure::Dns => (
            format!("{host} does not resolve, so Twilio cannot reach WEBHOOK_URL either"),
            tunnel_down(t.port),
        ),
        Failure::Timeout => (
            format!("no answer from {} within {} s", t.url, t.timeout_secs),
            format!("Twilio gives up after 15 s: {} and check that the tunnel forwards to that port.", t.start_server()),
        ),
        Failure::Tls(d) => (
            format!("TLS with {host} failed: {d}"),
            "Twilio needs a valid public certificate: use the https URL that ngrok or your host gives you.".to_owned(),
        ),
    };
    Check::error(section, name, detail, fix)
}

fn tunnel_down(port: u16) -> String {
    format!(
        "The tunnel or host is down: start ngrok (`ngrok http {port}`) and put its https URL in WEBHOOK_URL and the Twilio Console, or check that the deployment is running."
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn answer(status: u16, ngrok: Option<&str>) -> Result<Answer, Failure> {
        Ok(Answer {
            status,
            body: String::new(),
            location: None,
            ngrok_error: ngrok.map(str::to_owned),
        })
    }

    const T: Target<'static> = Target {
        url: "https://a.ngrok-free.app/api/v1/whatsapp/webhook",
        port: 5000,
        timeout_secs: 5,
    };

    #[test]
    fn each_outcome_maps_to_its_flow() {
        let s = Section::Probe;
        assert_eq!(signed(s, "n", &T, &answer(200, None)).status, Status::Ok);
        let c = signed(s, "n", &T, &answer(403, None));
        assert!(
            c.detail
                .contains("refused a correctly signed request (403)"),
            "{c:?}"
        );
        let unchecked = Ok(Answer {
            status: 403,
            body: "forbidden: signature not verified\n".to_owned(),
            location: None,
            ngrok_error: None,
        });
        let c = signed(s, "n", &T, &unchecked);
        assert!(c.detail.contains("without checking its signature"), "{c:?}");
        assert!(
            c.hint
                .as_deref()
                .unwrap_or_default()
                .contains("TWILIO_AUTH_TOKEN is not set"),
            "{c:?}"
        );
        let c = signed(s, "n", &T, &answer(502, Some("ERR_NGROK_8012")));
        assert!(
            c.detail
                .contains("ngrok is running but cannot reach the backend"),
            "{c:?}"
        );
        assert!(
            c.hint
                .as_deref()
                .unwrap_or_default()
                .contains("ngrok http 5000")
        );
        let c = signed(s, "n", &T, &answer(404, Some("ERR_NGROK_3200")));
        assert!(c.detail.contains("offline"), "{c:?}");
        let c = signed(s, "n", &T, &answer(404, None));
        assert!(
            c.detail.contains("nothing handles inbound messages"),
            "{c:?}"
        );
        let hint = c.hint.unwrap_or_default();
        assert!(
            hint.starts_with("What answers at this host and port is not webhook-server"),
            "{hint}"
        );
        // A wrong path (in WEBHOOK_URL, or simulate's --url) is named as such.
        let wrong_path = Target {
            url: "http://127.0.0.1:5000/api/v1/whatsapp/webhookx",
            ..T
        };
        let hint = signed(s, "n", &wrong_path, &answer(404, None))
            .hint
            .unwrap_or_default();
        assert!(hint.starts_with("The path must end in /api/v1/whatsapp/webhook: fix the URL posted to (WEBHOOK_URL, or simulate's --url)"), "{hint}");
        let c = signed(s, "n", &T, &Err(Failure::Dns));
        assert!(c.detail.contains("does not resolve"), "{c:?}");
        assert_eq!(tampered(s, "t", &T, &answer(403, None)).status, Status::Ok);
        assert_eq!(
            tampered(s, "t", &T, &answer(200, None)).status,
            Status::Error
        );
    }
}
