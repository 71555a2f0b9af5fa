//! Prometheus metrics served at `GET /metrics`.
//!
//! Counters are cheap atomics updated on the request path; the queue depth is read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    status: &'static str,
    /// Twilio's error code, `none` without one.
    error_code: String,
}

/// The lifecycle statuses Twilio reports for a message; anything else is counted as `other`,
/// so the label's values stay few.
const DELIVERY_STATUSES: [&str; 9] = [
    "accepted",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "failed",
    "canceled",
];

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
    deliveries: Family<DeliveryLabels, Counter>,
    paced: Counter<f64, AtomicU64>,
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
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let paced = Counter::<f64, AtomicU64>::default();
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
            "Outbound replies by outcome (sent, dry_run, failed, in_doubt, deferred, skipped)",
            sends.clone(),
        );
        registry.register(
            "delivery_statuses",
            "Delivery status callbacks received, by status and Twilio error code",
            deliveries.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request start to response, by route and status",
            latency.clone(),
        );
        registry.register(
            "worker_paced_seconds",
            "Time the reply worker waited so that acknowledgements could go first (a burst of webhooks)",
            paced.clone(),
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
            deliveries,
            paced,
        }
    }

    /// Adds time the reply worker spent waiting for acknowledgements.
    pub fn worker_paced(&self, waited: std::time::Duration) {
        if !waited.is_zero() {
            self.paced.inc_by(waited.as_secs_f64());
        }
    }

    /// Counts one delivery status callback.
    pub fn delivery_status(&self, status: &str, error_code: Option<i64>) {
        let status = DELIVERY_STATUSES
            .iter()
            .find(|s| **s == status)
            .copied()
            .unwrap_or("other");
        let error_code = error_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        self.deliveries
            .get_or_create(&DeliveryLabels { status, error_code })
            .inc();
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

    /// The OpenMetrics text exposition of every metric (what Prometheus asks for).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The same metrics in the classic Prometheus text format 0.0.4, for scrapers and parsers
    /// that do not speak OpenMetrics (see [`to_text_004`]).
    pub fn render_text_004(&self) -> String {
        to_text_004(&self.render())
    }
}

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4. The two differ where a classic
/// parser would misread the OpenMetrics form: a counter family is named without `_total` in
/// its `# HELP`/`# TYPE` lines while its samples carry it (a 0.0.4 parser then sees an empty
/// counter and untyped `_total` samples), `# UNIT` lines, and the closing `# EOF`.
///
/// ```
/// let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total 3\n# EOF\n";
/// assert_eq!(
///     webhook_core::metrics::to_text_004(om),
///     "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total 3\n"
/// );
/// ```
pub fn to_text_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
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
    fn text_004_names_counter_families_as_their_samples() {
        let m = Metrics::new();
        m.observe_request("webhook", 200, 0.002);
        m.signature_failure();
        let text = m.render_text_004();
        for line in [
            "# TYPE whatsapp_webhook_http_requests_total counter",
            "# TYPE whatsapp_webhook_signature_failures_total counter",
            "whatsapp_webhook_signature_failures_total 1",
            "# TYPE whatsapp_webhook_request_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        // Every sample belongs to a family declared under its own name (or a histogram's).
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                families.iter().any(|f| name == *f
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{f}{s}"))),
                "{name} has no family in\n{text}"
            );
        }
    }

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.observe_request("webhook", 200, 0.002);
        m.observe_request("webhook", 403, 0.001);
        m.signature_failure();
        m.send_outcome("dry_run");
        m.set_queue_depth(7);
        m.worker_paced(std::time::Duration::from_millis(250));
        m.worker_paced(std::time::Duration::from_millis(500));
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
        assert!(
            text.contains("whatsapp_webhook_worker_paced_seconds_total 0.75"),
            "paced time adds up in seconds: {text}"
        );
        assert!(text.contains("whatsapp_webhook_request_duration_seconds_bucket"));
    }
}
