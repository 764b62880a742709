//! The `#[task]` attribute macro of Skiff. (Being built.)

use proc_macro::TokenStream;

/// Turns an `async fn` into a Skiff task. (Being built.)
#[proc_macro_attribute]
pub fn task(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
