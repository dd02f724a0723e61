//! Fuzz target `extract`: see `lrci::fuzzing::extract` for what it feeds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lrci::fuzzing::extract(data));
