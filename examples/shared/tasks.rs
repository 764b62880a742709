//! The tasks of the web example, shared by `examples/web.rs` (which enqueues them and also runs
//! a consumer in-process) and `examples/worker.rs` (a stand-alone worker for them).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiff::prelude::*;

/// What [`send_welcome_email`] returns.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WelcomeSent {
    /// The new user.
    pub(crate) user_id: u64,
    /// Where the email went.
    pub(crate) email: String,
    /// The mail server's id of the message.
    pub(crate) message_id: String,
}

/// Sends the welcome email of a new user (simulated: a short wait for the mail server).
#[skiff::task(retries = 3, retry_delay = "2s")]
pub(crate) async fn send_welcome_email(
    user_id: u64,
    email: String,
    name: String,
) -> Result<WelcomeSent, TaskError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    // No address or name at `info`: logs are kept and shipped far more widely than the data.
    tracing::info!(user_id, "welcome email sent");
    tracing::debug!(user_id, %email, %name, "welcome email sent to");
    Ok(WelcomeSent {
        user_id,
        message_id: format!("<welcome-{user_id}@skiff.example>"),
        email,
    })
}

/// What [`charge_payment`] returns.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Receipt {
    /// The payment.
    pub(crate) payment_id: u64,
    /// What was charged, in cents.
    pub(crate) amount_cents: u64,
    /// `"charged"`.
    pub(crate) status: String,
}

/// The most a card may be charged, in cents; larger payments are declined for good.
pub(crate) const CARD_LIMIT_CENTS: u64 = 1_000_000;

/// Charges a payment (simulated). Runs before everything else in the queue (priority 100). A
/// payment over the card limit fails without retry and goes to the dead-letter queue.
#[skiff::task(priority = 100, retries = 2, retry_delay = "1s")]
pub(crate) async fn charge_payment(
    payment_id: u64,
    amount_cents: u64,
) -> Result<Receipt, TaskError> {
    if amount_cents > CARD_LIMIT_CENTS {
        return Err(TaskError::fatal(format!(
            "card declined: {amount_cents} cents is over the limit of {CARD_LIMIT_CENTS}"
        )));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(Receipt {
        payment_id,
        amount_cents,
        status: "charged".into(),
    })
}

/// Every task of the example, for a consumer or a worker.
pub(crate) fn registry() -> skiff::Registry {
    let mut registry = skiff::Registry::new();
    registry
        .register_fn(send_welcome_email)
        .register_fn(charge_payment);
    registry
}
