//! The compliance probe's parser of a TLS server's answer (ServerHello, Certificate, alerts),
//! fed the bytes so far after every chunk, as the probe reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpbridge::checks::tls_probe::parse_answer;

fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |b| usize::from(*b % 31) + 1);
    let mut so_far = Vec::new();
    for chunk in data.chunks(step) {
        so_far.extend_from_slice(chunk);
        let _ = parse_answer(&so_far);
    }
});
