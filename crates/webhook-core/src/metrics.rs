//! Prometheus metrics served at `GET /metrics`.
//!
//! Counters are cheap atomics updated on the request path; the queue depth is read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// All metrics of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    signature_failures: Counter,
    sends: Family<OutcomeLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    queue_depth: Gauge,
    duplicates: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("whatsapp_webhook");
        let requests = Family::<RouteLabels, Counter>::default();
        let signature_failures = Counter::default();
        let sends = Family::<OutcomeLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 100 µs .. ~6.5 s
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        let queue_depth = Gauge::default();
        let duplicates = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status code",
            requests.clone(),
        );
        registry.register(
            "signature_failures",
            "Requests rejected because X-Twilio-Signature did not verify",
            signature_failures.clone(),
        );
        registry.register(
            "duplicate_deliveries",
            "Inbound webhooks for a MessageSid that was already recorded",
            duplicates.clone(),
        );
        registry.register(
            "sends",
            "Outbound replies by outcome (sent, dry_run, failed, in_doubt, skipped)",
            sends.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request start to response, by route and status",
            latency.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs waiting in the work queue",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            requests,
            signature_failures,
            sends,
            latency,
            queue_depth,
            duplicates,
        }
    }

    /// Counts one finished request.
    pub fn observe_request(&self, route: &'static str, status: u16, seconds: f64) {
        let labels = RouteLabels { route, status };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// Counts one signature failure.
    pub fn signature_failure(&self) {
        self.signature_failures.inc();
    }

    /// Counts one duplicate delivery.
    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    /// Counts one reply outcome.
    pub fn send_outcome(&self, outcome: &'static str) {
        self.sends.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Records the current queue depth.
    pub fn set_queue_depth(&self, depth: u64) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `elapsed` in milliseconds rounded to the microsecond, for log lines: `latency_ms=2.235`
/// rather than `2.2347159999999997` (still a number in JSON logs).
pub fn latency_ms(elapsed: std::time::Duration) -> f64 {
    (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_logged_to_the_microsecond() {
        let d = std::time::Duration::from_nanos(2_234_716);
        assert_eq!(latency_ms(d), 2.235);
        assert_eq!(format!("{:?}", latency_ms(d)), "2.235");
    }

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.observe_request("webhook", 200, 0.002);
        m.observe_request("webhook", 403, 0.001);
        m.signature_failure();
        m.send_outcome("dry_run");
        m.set_queue_depth(7);
        let text = m.render();
        assert!(
            text.contains(
                r#"whatsapp_webhook_http_requests_total{route="webhook",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("whatsapp_webhook_signature_failures_total 1"));
        assert!(text.contains(r#"whatsapp_webhook_sends_total{outcome="dry_run"} 1"#));
        assert!(text.contains("whatsapp_webhook_queue_depth 7"));
        assert!(text.contains("whatsapp_webhook_request_duration_seconds_bucket"));
    }
}
