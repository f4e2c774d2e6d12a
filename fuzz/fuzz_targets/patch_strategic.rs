//! The `patch_strategic` target; what it checks is `tinykube_fuzz::patch_strategic`'s business.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinykube_fuzz::check("patch_strategic", data));
