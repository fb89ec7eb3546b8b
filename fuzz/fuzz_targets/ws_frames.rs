//! The passthrough frame observer over arbitrary bytes in arbitrary chunks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpbridge::relay::frames::FrameObserver;
use mpbridge::relay::inspect::PacketStream;

fuzz_target!(|data: &[u8]| {
    let mut obs = FrameObserver::new(1 << 16, PacketStream::capturing_first());
    let mut seen = Vec::new();
    let step = data.first().map_or(1, |b| usize::from(*b % 32) + 1);
    for chunk in data.chunks(step) {
        obs.feed(chunk, &mut seen, &mut |_| {});
    }
});
