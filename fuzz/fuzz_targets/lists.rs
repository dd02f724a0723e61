//! Fuzz target `lists`: see `lrci::fuzzing::lists` for what it feeds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lrci::fuzzing::lists(data));
