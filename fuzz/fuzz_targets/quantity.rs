//! The `quantity` target; what it checks is `tinykube_fuzz::quantity`'s business.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinykube_fuzz::check("quantity", data));
