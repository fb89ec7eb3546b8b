#!/usr/bin/env python3
"""Builds assets/fonts/cjk-subset.ttf: Droid Sans Fallback (Apache-2.0, Debian package
fonts-droid-fallback) cut down to GB2312 plus CJK punctuation and full-width forms, and
assets/fonts/cjk-subset.chars listing every character it covers (read by ui::fonts).

Needs: apt-get install fonts-droid-fallback; pip install fonttools.
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
