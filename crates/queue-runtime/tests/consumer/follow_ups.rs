//! Follow-ups are enqueued with the outcome, with the previous output (or failure) as argument.

use queue_core::Task as _;
use queue_core::{FollowUp, FollowUpInput, FollowUpWhen, TaskError, TaskFailure, TaskOptions};

use crate::common::{builder, queue, WAIT};

task!(Double, "double", (n: i64) -> i64, TaskOptions::new(), |ctx| {
    if n < 0 {
        return Err(TaskError::fatal("negative"));
    }
    Ok(n * 2)
});
task!(Describe, "describe", (n: i64) -> String, TaskOptions::new(), |ctx| {
    Ok(format!("got {n}"))
});
task!(OnError, "on_error", (f: TaskFailure) -> String, TaskOptions::new(), |ctx| {
    Ok(format!("{}: {}", f.kind, f.message))
});

#[tokio::test(flavor = "multi_thread")]
async fn success_follow_ups_get_the_output_and_failure_ones_the_failure() {
    let q = queue();
    let now = q.clock().now();
    let mut first = Double::call((21,)).into_envelope(now).unwrap();
    let next = Describe::call((0,)).into_envelope(now).unwrap();
    let never = OnError::call((TaskFailure::new(queue_core::FailureKind::Error, "", 0),))
        .into_envelope(now)
        .unwrap();
    let (next_id, never_id) = (next.id, never.id);
    first.follow_ups = vec![
        FollowUp {
            when: FollowUpWhen::Success,
            input: FollowUpInput::Output,
            envelope: next,
        },
        FollowUp {
            when: FollowUpWhen::Failure,
            input: FollowUpInput::Failure,
            envelope: never,
        },
    ];
    q.enqueue_envelope(first).await.unwrap();

    let mut failing = Double::call((-1,)).into_envelope(now).unwrap();
    let handler = OnError::call((TaskFailure::new(queue_core::FailureKind::Error, "", 0),))
        .into_envelope(now)
        .unwrap();
    let handler_id = handler.id;
    failing.follow_ups = vec![FollowUp {
        when: FollowUpWhen::Failure,
        input: FollowUpInput::Failure,
        envelope: handler,
    }];
    q.enqueue_envelope(failing).await.unwrap();

    let running = builder(&q)
        .register_task::<Double>()
        .register_task::<Describe>()
        .register_task::<OnError>()
        .build()
        .unwrap()
        .spawn();
    assert_eq!(
        q.handle::<String>(next_id).get(WAIT).await.unwrap(),
        "got 42"
    );
    assert_eq!(
        q.handle::<String>(handler_id).get(WAIT).await.unwrap(),
        "error: negative"
    );
    assert!(q
        .handle::<String>(never_id)
        .try_get()
        .await
        .unwrap()
        .is_none());
    assert!(
        q.storage().get_task(never_id).await.unwrap().is_none(),
        "never enqueued"
    );
    running.shutdown(WAIT).await.unwrap();
}
