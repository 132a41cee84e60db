//! Fuzzes `safety::chat_template::judge`, the Jinja2 chat-template analysis, on arbitrary text
//! (bytes read as UTF-8, invalid sequences replaced). It must return, never panic, overflow the
//! stack, hang or allocate past the bounds.
#![no_main]

use aiscout_agent::safety::chat_template;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chat_template::judge(&String::from_utf8_lossy(data));
});
