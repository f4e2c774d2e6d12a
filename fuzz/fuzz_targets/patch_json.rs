//! The `patch_json` target; what it checks is `tinykube_fuzz::patch_json`'s business.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinykube_fuzz::check("patch_json", data));
