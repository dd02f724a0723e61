//! Fuzz target `lr_events`: see `lrci::fuzzing::lr_events` for what it feeds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lrci::fuzzing::lr_events(data));
