#!/usr/bin/env bash
# Lays out the portable Linux archive's folder (what install.sh installs from):
#   dist/linux/stage.sh <mpbridge binary> <licence file> <folder>
# Used by dist/build.sh for the .tar.gz and by tests/dist.rs for install.sh's round trip.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:?usage: stage.sh <binary> <licence file> <folder>}"
licence="${2:?usage: stage.sh <binary> <licence file> <folder>}"
t="${3:?usage: stage.sh <binary> <licence file> <folder>}"
rm -rf "$t"
install -Dm755 "$bin" "$t/bin/mpbridge"
install -Dm644 "$root/dist/linux/mpbridge.desktop" "$t/share/applications/mpbridge.desktop"
for s in 16 24 32 48 64 128 256 512; do
  install -Dm644 "$root/assets/icons/mpbridge-$s.png" "$t/share/icons/hicolor/${s}x${s}/apps/mpbridge.png"
done
install -Dm644 "$root/assets/icons/mpbridge.svg" "$t/share/icons/hicolor/scalable/apps/mpbridge.svg"
install -Dm644 "$licence" "$t/share/doc/mpbridge/copyright"
install -Dm644 "$root/README.md" "$t/share/doc/mpbridge/README.md"
install -Dm644 "$root/assets/examples/relay.toml" "$t/share/doc/mpbridge/examples/relay.toml"
install -Dm644 "$root/dist/mpbridge-relay.service" "$t/share/doc/mpbridge/examples/mpbridge-relay.service"
install -Dm755 "$root/dist/linux/install.sh" "$t/install.sh"
