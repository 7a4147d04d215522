//! W3C trace context in NATS headers, so a trace follows an event from the service that
//! appended it to every consumer.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header that names a message's trace and parent span.
pub const TRACEPARENT: &str = "traceparent";

struct HeaderInjector<'a>(&'a mut HeaderMap);
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

fn propagator() -> opentelemetry_sdk::propagation::TraceContextPropagator {
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
}

/// Adds `traceparent` for the current span, if it belongs to a trace.
pub fn inject(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        propagator().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// Makes `span` a child of the trace named in `headers`, if any.
pub fn follow(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(h) = headers {
        let cx = propagator().extract(&HeaderExtractor(h));
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn trace_context_travels_in_headers() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = HeaderMap::new();
            let producer = tracing::info_span!("append");
            let trace_id = producer.in_scope(|| {
                inject(&mut headers);
                tracing::Span::current().context().span().span_context().trace_id()
            });
            let traceparent = headers.get("traceparent").expect("traceparent header").as_str().to_string();
            assert!(traceparent.contains(&trace_id.to_string()), "{traceparent}");
            let consumer = tracing::info_span!("apply");
            follow(&consumer, Some(&headers));
            assert_eq!(consumer.context().span().span_context().trace_id(), trace_id);
            // No trace, no header.
            let mut empty = HeaderMap::new();
            inject(&mut empty);
            assert!(empty.get("traceparent").is_none());
        });
    }
}
