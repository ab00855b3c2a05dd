#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fieldsync_core::fuzzing::request_auth(data));
