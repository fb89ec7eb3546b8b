#!/usr/bin/env python3
"""Builds the console's bundled fallback fonts.

assets/fonts/cjk-subset.ttf: Droid Sans Fallback (Apache-2.0, Debian package
fonts-droid-fallback) cut down to GB2312 plus CJK punctuation and full-width forms, and
assets/fonts/cjk-subset.chars listing every character it covers (read by ui::fonts).

assets/fonts/symbols-subset.ttf: DejaVu Sans (fonts-dejavu-core, Bitstream Vera licence) cut
down to Latin-1, general punctuation, arrows, box drawing, geometric shapes and miscellaneous
symbols (● ⚠ — … ° and friends), with assets/fonts/symbols-subset.chars.

Needs: apt-get install fonts-droid-fallback fonts-dejavu-core; pip install fonttools.
Run from the repository root: python3 tools/subset-cjk-font.py
"""
import subprocess, sys
from fontTools.ttLib import TTFont

SRC = "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"
OUT = "assets/fonts/cjk-subset.ttf"
CHARS = "assets/fonts/cjk-subset.chars"

chars = set()
for hi in range(0xA1, 0xF8):
    for lo in range(0xA1, 0xFF):
        try:
            chars.add(bytes([hi, lo]).decode("gb2312"))
        except UnicodeDecodeError:
            pass
chars.update(chr(c) for c in range(0x3000, 0x3040))   # CJK symbols and punctuation
chars.update(chr(c) for c in range(0xFF00, 0xFFF0))   # half-width and full-width forms
chars.update("·—‘’“”…‰※℃№")
cmap = TTFont(SRC)["cmap"].getBestCmap()
covered = sorted(c for c in chars if ord(c) in cmap and ord(c) > 0x7F)
with open("/tmp/cjk-chars.txt", "w", encoding="utf-8") as f:
    f.write("".join(covered))
subprocess.run([sys.executable, "-m", "fontTools.subset", SRC,
                "--text-file=/tmp/cjk-chars.txt", f"--output-file={OUT}",
                "--layout-features=*", "--no-hinting", "--notdef-outline"], check=True)
with open(CHARS, "w", encoding="utf-8") as f:
    f.write("".join(covered))
print(f"{OUT}: {len(covered)} characters")

SYM_SRC = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SYM_OUT = "assets/fonts/symbols-subset.ttf"
SYM_CHARS = "assets/fonts/symbols-subset.chars"
ranges = [(0xA0, 0x100), (0x2010, 0x2060), (0x2070, 0x20C0), (0x2100, 0x2150), (0x2190, 0x2200),
          (0x2200, 0x2300), (0x2300, 0x23FF), (0x2500, 0x2600), (0x2600, 0x2700), (0x2700, 0x27C0)]
sym_cmap = TTFont(SYM_SRC)["cmap"].getBestCmap()
sym = sorted(chr(c) for lo, hi in ranges for c in range(lo, hi) if c in sym_cmap)
with open("/tmp/sym-chars.txt", "w", encoding="utf-8") as f:
    f.write("".join(sym))
subprocess.run([sys.executable, "-m", "fontTools.subset", SYM_SRC,
                "--text-file=/tmp/sym-chars.txt", f"--output-file={SYM_OUT}",
                "--layout-features=*", "--no-hinting", "--notdef-outline"], check=True)
with open(SYM_CHARS, "w", encoding="utf-8") as f:
    f.write("".join(sym))
print(f"{SYM_OUT}: {len(sym)} characters")
