//! Fuzz target `ci_response`: see `lrci::fuzzing::ci_response` for what it feeds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lrci::fuzzing::ci_response(data));
