//! With the `opentelemetry` feature, an execution's `task` span joins the trace of the span that
//! enqueued the task.
#![cfg(feature = "opentelemetry")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::future::BoxFuture;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use queue_core::{Queue, Task, TaskContext, TaskError};
use queue_runtime::Consumer;
use tracing::Instrument;
use tracing_subscriber::prelude::*;

struct Double;

impl Task for Double {
    const NAME: &'static str = "double";
    type Args = (i64,);
    type Output = i64;
    fn run(_: TaskContext, (n,): (i64,)) -> BoxFuture<'static, Result<i64, TaskError>> {
        Box::pin(async move { Ok(n * 2) })
    }
}

fn finished(exporter: &InMemorySpanExporter, name: &str) -> Option<SpanData> {
    exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|span| span.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_span_is_a_child_of_the_enqueuing_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("skiff-test")))
        .init();

    let queue = Queue::memory();
    let request = tracing::info_span!("http_request");
    let handle = async { Double::call((21,)).enqueue(&queue).await.unwrap() }
        .instrument(request.clone())
        .await;
    drop(request);

    let consumer = Consumer::builder(queue.clone())
        .workers(2)
        .register_task::<Double>()
        .build()
        .unwrap();
    let running = consumer.spawn();
    assert_eq!(handle.get(Duration::from_secs(60)).await.unwrap(), 42);

    // The `task` span ends when the execution's future is dropped, just after the outcome.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let task = loop {
        provider.force_flush().unwrap();
        if let Some(span) = finished(&exporter, "task") {
            break span;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `task` span exported"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    running.shutdown(Duration::from_secs(60)).await.unwrap();
    provider.force_flush().unwrap();

    let request = finished(&exporter, "http_request").expect("the request span was exported");
    let request_cx = &request.span_context;
    assert_ne!(request_cx.trace_id(), TraceId::INVALID);
    assert_ne!(request_cx.span_id(), SpanId::INVALID);
    assert_eq!(task.span_context.trace_id(), request_cx.trace_id());
    assert_eq!(task.parent_span_id, request_cx.span_id());
    assert!(task.parent_span_is_remote);
}
