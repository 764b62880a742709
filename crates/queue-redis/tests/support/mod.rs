//! Test harness: `queue_redis::testing` plus a raw client for inspecting keys.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub use queue_redis::testing::*;

/// A raw synchronous client on `url`, for inspecting keys.
pub fn raw_client(url: &str) -> redis::Client {
    redis::Client::open(url).expect("redis client")
}
