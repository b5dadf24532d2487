//! HTTP/1.1 answers as the closed-loop client reads them: any bytes are an answer or a failure class,
//! never a panic or an overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = loadgen::client::decode_answer(data, false, 1 << 16);
    let _ = loadgen::client::decode_answer(data, true, 0);
});
