//! The `decode_body` target; what it checks is `tinykube_fuzz::decode_body`'s business.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinykube_fuzz::check("decode_body", data));
