//! placeholder until the runtime lands
pub use queue_core::Queue as Consumer;
