//! Opening any bytes as a certificate file (PEM, DER, PKCS#12, zip) and judging what was
//! found never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut opened = mpbridge::certs::Opened::default();
    mpbridge::certs::open::open_bytes("fuzz", data, Some("pw"), &mut opened);
    let req = mpbridge::certs::Request {
        trust: mpbridge::certs::Trust {
            os_store: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let _ = mpbridge::certs::analyze(&opened, &req);
});
