//! The `patch_merge` target; what it checks is `tinykube_fuzz::patch_merge`'s business.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinykube_fuzz::check("patch_merge", data));
