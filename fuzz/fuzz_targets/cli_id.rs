//! Task id parsing as `skiff` (the CLI) does it: `id.trim().parse::<TaskId>()`. Never panics;
//! an id that parses prints back as the same id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use queue_core::TaskId;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.trim().parse::<TaskId>() {
        Ok(id) => {
            let shown = id.to_string();
            assert_eq!(shown.parse::<TaskId>().ok(), Some(id), "display round trip");
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
