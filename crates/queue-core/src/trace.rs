//! Trace context propagation: a task's execution joins the trace of the span that enqueued it.
//!
//! When a task is enqueued, [`inject_current`] writes the OpenTelemetry context of the current
//! `tracing` span into the envelope's `trace` map ([`Envelope::trace`](crate::Envelope::trace))
//! as W3C Trace Context headers (`traceparent`, and `tracestate` when there is one). The consumer
//! calls [`set_parent`] on the `task` span of each execution, so the execution becomes a child of
//! the span that enqueued it: a request and the background work it started show up as one trace.
//!
//! [`Queue`](crate::Queue) does the first for every envelope it stores whose `trace` map is
//! still empty; the Skiff consumer does the second. Periodic fires have no enqueuing span and
//! start traces of their own.
//!
//! # The `opentelemetry` feature
//!
//! Everything here is behind the `opentelemetry` cargo feature (`skiff/opentelemetry`). Without
//! it both functions are no-ops with the same signatures, so callers need no `cfg`, and default
//! builds carry no OpenTelemetry dependency. With it:
//!
//! * the context is read from `tracing` spans through `tracing-opentelemetry`, so the
//!   subscriber must include a `tracing_opentelemetry` layer (otherwise there is no context and
//!   nothing is written);
//! * the format is that of the global propagator
//!   (`opentelemetry::global::set_text_map_propagator`). If none was set (the global one is
//!   the no-op propagator, which handles no fields), W3C Trace Context
//!   (`opentelemetry_sdk::propagation::TraceContextPropagator`) is used, so propagation works
//!   without further setup. Producers and consumers must agree on the format.
//!
//! Skiff is built against `opentelemetry` 0.33 and `tracing-opentelemetry` 0.34; the
//! application's tracer provider must use the same versions.
//!
//! # Wiring it up
//!
//! ```ignore
//! use opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
//! use tracing_subscriber::prelude::*;
//!
//! // Any exporter will do; this one sends spans to an OTLP collector.
//! let provider = SdkTracerProvider::builder()
//!     .with_batch_exporter(opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?)
//!     .build();
//! opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
//! tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("my-service")))
//!     .with(tracing_subscriber::fmt::layer())
//!     .init();
//!
//! // In a request handler: the `task` span of the execution will be a child of this span.
//! async {
//!     send_welcome_email::call((user_id,)).enqueue(&queue).await?;
//! }
//! .instrument(tracing::info_span!("http_request"))
//! .await;
//! ```
//!
//! The same subscriber setup on the worker side (with `skiff`'s `opentelemetry` feature on)
//! exports each execution's `task{id, task, attempt, queue}` span under the request's trace.

use std::collections::BTreeMap;

/// Writes the trace context of the current `tracing` span into `map` (W3C `traceparent` and
/// friends, in the global propagator's format).
///
/// Writes nothing when there is no valid OpenTelemetry context: without the `opentelemetry`
/// feature, outside any span, or without a `tracing_opentelemetry` layer.
#[inline]
pub fn inject_current(map: &mut BTreeMap<String, String>) {
    #[cfg(feature = "opentelemetry")]
    otel::inject_current(map);
    #[cfg(not(feature = "opentelemetry"))]
    let _ = map;
}

/// Makes the trace context in `map` (as written by [`inject_current`]) the OpenTelemetry
/// parent of `span`. Call it right after creating the span, before it is entered.
///
/// Does nothing when `map` holds no valid context (empty, or unreadable values), when `span`
/// is not recorded by a `tracing_opentelemetry` layer, or without the `opentelemetry` feature.
/// Never panics.
#[inline]
pub fn set_parent(span: &tracing::Span, map: &BTreeMap<String, String>) {
    #[cfg(feature = "opentelemetry")]
    otel::set_parent(span, map);
    #[cfg(not(feature = "opentelemetry"))]
    let _ = (span, map);
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use std::collections::BTreeMap;

    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry::Context;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    pub(super) fn inject_current(map: &mut BTreeMap<String, String>) {
        let span = tracing::Span::current();
        if span.is_disabled() {
            return;
        }
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return;
        }
        with_propagator(|propagator| propagator.inject_context(&cx, &mut MapInjector(map)));
    }

    pub(super) fn set_parent(span: &tracing::Span, map: &BTreeMap<String, String>) {
        if map.is_empty() || span.is_disabled() {
            return;
        }
        // Extract into an empty context: an unreadable map must not make the execution a child
        // of whatever context happens to be current on the consumer.
        let cx = with_propagator(|propagator| {
            propagator.extract_with_context(&Context::new(), &MapExtractor(map))
        });
        if !cx.span().span_context().is_valid() {
            return;
        }
        // Fails only when the subscriber has no OpenTelemetry layer or the span has already
        // started; either way the span keeps its `tracing` parent.
        if let Err(err) = span.set_parent(cx) {
            tracing::debug!(error = %err, "could not link the execution to its enqueuing trace");
        }
    }

    /// Runs `f` with the global propagator, or with W3C Trace Context when none was set.
    fn with_propagator<T>(mut f: impl FnMut(&dyn TextMapPropagator) -> T) -> T {
        let done = opentelemetry::global::get_text_map_propagator(|propagator| {
            // The default global propagator is the no-op one, which handles no fields.
            propagator.fields().next().is_some().then(|| f(propagator))
        });
        match done {
            Some(out) => out,
            None => f(&TraceContextPropagator::new()),
        }
    }

    struct MapInjector<'a>(&'a mut BTreeMap<String, String>);

    impl Injector for MapInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_ascii_lowercase(), value);
        }
    }

    struct MapExtractor<'a>(&'a BTreeMap<String, String>);

    impl Extractor for MapExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .get(key)
                .or_else(|| self.0.get(&key.to_ascii_lowercase()))
                .map(String::as_str)
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_context_writes_nothing() {
        let mut map = BTreeMap::new();
        inject_current(&mut map);
        assert!(map.is_empty());

        // A span, but no OpenTelemetry layer: still nothing.
        let subscriber = tracing::subscriber::NoSubscriber::default();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("enqueuer");
            let _entered = span.enter();
            inject_current(&mut map);
        });
        assert!(map.is_empty());
    }

    #[test]
    fn set_parent_ignores_garbage() {
        let span = tracing::info_span!("task");
        let garbage: BTreeMap<String, String> = [
            ("traceparent", "not-a-traceparent"),
            ("tracestate", "=,=,\u{0}"),
            ("", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        set_parent(&span, &garbage);
        set_parent(&span, &BTreeMap::new());
        set_parent(&tracing::Span::none(), &garbage);
        // A well-formed context, but no OpenTelemetry layer to take it.
        let valid: BTreeMap<String, String> = [(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        )]
        .into_iter()
        .collect();
        set_parent(&span, &valid);
    }
}
