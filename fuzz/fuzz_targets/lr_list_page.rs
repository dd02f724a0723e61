//! Fuzz target `lr_list_page`: see `lrci::fuzzing::lr_list_page` for what it feeds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lrci::fuzzing::lr_list_page(data));
