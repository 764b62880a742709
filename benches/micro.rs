//! Criterion micro-benchmarks of Skiff's per-task costs:
//!
//! * envelope encode / decode (msgpack), with an empty and a 1 KiB argument;
//! * one enqueue -> fetch -> complete cycle on the memory store (the store-independent floor of
//!   the hot path);
//! * signing and encryption (`skiff::seal`): sealing and opening one envelope, and the memory
//!   cycle with every task signed and encrypted.
//!
//! ```text
//! cargo bench --bench micro
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use skiff::seal::{Keyring, SealedStorage, Sealing, KEY_LEN};
use skiff::{Completion, Envelope, MemoryStorage, Outcome, Storage};

fn envelope(arg_bytes: usize) -> Envelope {
    let args = skiff::to_msgpack(&(vec![7u8; arg_bytes],)).unwrap();
    Envelope::new("default", "noop", args, Utc::now())
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    for bytes in [0usize, 1024] {
        let env = envelope(bytes);
        let raw = env.encode().unwrap();
        group.bench_function(format!("encode/{bytes}B"), |b| {
            b.iter(|| std::hint::black_box(&env).encode().unwrap())
        });
        group.bench_function(format!("decode/{bytes}B"), |b| {
            b.iter(|| Envelope::decode(std::hint::black_box(&raw)).unwrap())
        });
    }
    group.finish();
}

fn sealings() -> [(&'static str, Sealing); 3] {
    let keys = Keyring::new([("bench", vec![7u8; KEY_LEN])]).unwrap();
    [
        ("sign", Sealing::new().signing(keys.clone())),
        ("encrypt", Sealing::new().encryption(keys.clone())),
        (
            "both",
            Sealing::new().signing(keys.clone()).encryption(keys),
        ),
    ]
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Elements(1));
    for bytes in [0usize, 1024] {
        for (name, sealing) in sealings() {
            group.bench_function(format!("seal/{name}/{bytes}B"), |b| {
                b.iter_batched(
                    || envelope(bytes),
                    |mut env| {
                        sealing.seal(&mut env).unwrap();
                        env
                    },
                    BatchSize::SmallInput,
                )
            });
            let mut sealed = envelope(bytes);
            sealing.seal(&mut sealed).unwrap();
            group.bench_function(format!("open/{name}/{bytes}B"), |b| {
                b.iter_batched(
                    || sealed.clone(),
                    |mut env| {
                        sealing.open(&mut env).unwrap();
                        env
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn cycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = MemoryStorage::new();
    let lease = Duration::from_secs(30);
    let ttl = Some(Duration::from_secs(3600));
    let mut group = c.benchmark_group("memory_store");
    group.throughput(Throughput::Elements(1));
    group.bench_function("enqueue_fetch_complete", |b| {
        b.to_async(&rt).iter_batched(
            || envelope(0),
            |env| async {
                store.enqueue(vec![env]).await.unwrap();
                let mut got = store.fetch("default", 1, lease).await.unwrap();
                let d = got.pop().unwrap();
                let done = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, ttl);
                store.complete(vec![done]).await.unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("enqueue_fetch_complete_x100", |b| {
        b.to_async(&rt).iter_batched(
            || (0..100).map(|_| envelope(0)).collect::<Vec<_>>(),
            |envs| async {
                store.enqueue(envs).await.unwrap();
                let got = store.fetch("default", 100, lease).await.unwrap();
                let done = got
                    .into_iter()
                    .map(|d| Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, ttl))
                    .collect();
                store.complete(done).await.unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    let [_, _, (_, both)] = sealings();
    let sealed = SealedStorage::new(Arc::new(MemoryStorage::new()), Arc::new(both));
    group.bench_function("enqueue_fetch_complete_sealed", |b| {
        b.to_async(&rt).iter_batched(
            || envelope(0),
            |env| async {
                sealed.enqueue(vec![env]).await.unwrap();
                let mut got = sealed.fetch("default", 1, lease).await.unwrap();
                let d = got.pop().unwrap();
                let done = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, ttl);
                sealed.complete(vec![done]).await.unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    rt.block_on(sealed.flush()).unwrap();
    // Results pile up in the store between iterations; start each run from empty.
    rt.block_on(store.flush()).unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = codec, seal, cycle
}
criterion_main!(benches);
