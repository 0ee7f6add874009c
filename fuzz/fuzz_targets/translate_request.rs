#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| izzi::fuzzing::translate_request(data));
