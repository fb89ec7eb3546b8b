#!/usr/bin/env bash
# Makes every icon file the packages need from assets/icons/mpbridge.svg: the hicolor PNG
# sizes (Linux, the window icon), mpbridge.ico (Windows: the installer and its shortcuts) and
# mpbridge.icns (macOS). The results are committed, so a package build needs none of the tools
# below; run this again after editing the SVG.
# Needs: librsvg2-bin (rsvg-convert), icnsutils (png2icns), python3.
set -euo pipefail
cd "$(dirname "$0")/../assets/icons"
for size in 16 24 32 48 64 128 256 512; do
  rsvg-convert -w "$size" -h "$size" mpbridge.svg -o "mpbridge-$size.png"
done
# ICO: a directory of PNG images (Windows Vista and later read PNG entries at every size).
python3 - <<'PY'
import struct
sizes = [16, 24, 32, 48, 64, 128, 256]
images = [open(f"mpbridge-{s}.png", "rb").read() for s in sizes]
offset = 6 + 16 * len(sizes)
out = struct.pack("<HHH", 0, 1, len(sizes))
for s, data in zip(sizes, images):
    dim = 0 if s == 256 else s  # 0 means 256
    out += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
    offset += len(data)
open("mpbridge.ico", "wb").write(out + b"".join(images))
PY
png2icns mpbridge.icns mpbridge-16.png mpbridge-32.png mpbridge-48.png mpbridge-128.png \
  mpbridge-256.png mpbridge-512.png >/dev/null
ls -l mpbridge*
