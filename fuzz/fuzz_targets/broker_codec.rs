//! The embedded broker's packet decoders (rmqtt's MQTT 3.1.1 and 5 codecs) over arbitrary
//! bytes, fed in two parts as a socket would.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpbridge::sandbox::broker::fuzz::decode_all;

fuzz_target!(|data: &[u8]| {
    decode_all(data);
});
