//! The `selectors` target; what it checks is `tinykube_fuzz::selectors`'s business.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinykube_fuzz::check("selectors", data));
