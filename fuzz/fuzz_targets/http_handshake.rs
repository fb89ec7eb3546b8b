//! The relay's HTTP request-head parser, upgrade checks and Referer decoding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpbridge::relay::handshake::{check_upgrade, mini_program, parse_head, switching_protocols};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(req)) = parse_head(data) {
        for require in [true, false] {
            if let Ok(up) = check_upgrade(&req, require) {
                let _ = switching_protocols(&up);
            }
        }
        if let Some(r) = req.header("Referer") {
            let _ = mini_program(r);
        }
    }
});
