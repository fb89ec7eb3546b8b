#!/usr/bin/env python3
"""Writes the licence file every mpbridge package carries: mpbridge's own terms, the bundled
fonts, and every Rust crate linked into the binary for one target (name, version, SPDX
expression), followed by the licence texts those crates ship, each text once.

    dist/licenses.py --target x86_64-unknown-linux-gnu --out target/dist/copyright
    dist/licenses.py --target x86_64-unknown-linux-gnu --list assets/licenses/crates.txt

`--list` writes only the crate list the console shows in Settings → About; it is committed,
and `tests/dist.rs` checks that it names every crate `cargo metadata` resolves.
Reads `cargo metadata` (no network when Cargo.lock is complete); writes nothing else.
"""

import argparse
import hashlib
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LICENCE_NAMES = ("license", "licence", "copying", "notice", "copyright", "unlicense")


def linked_crates(target):
    """Packages reachable from mpbridge through normal dependencies (what the binary links)."""
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--filter-platform", target],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if None in kinds:  # a normal dependency (not dev-only, not build-only)
                todo.append(dep["pkg"])
    seen.discard(root)
    return packages[root], sorted(
        (packages[p] for p in seen), key=lambda p: (p["name"], p["version"])
    )


def licence_files(package):
    folder = pathlib.Path(package["manifest_path"]).parent
    found = []
    if package.get("license_file"):
        found.append(folder / package["license_file"])
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.name.lower().startswith(LICENCE_NAMES) and f not in found:
            found.append(f)
    return found


def crate_line(p):
    return f"{p['name']} {p['version']} — {p.get('license') or 'see its licence file'}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--out", help="the full licence file")
    ap.add_argument("--list", help="only the crate list (for Settings → About)")
    args = ap.parse_args()
    me, crates = linked_crates(args.target)

    if args.list:
        pathlib.Path(args.list).write_text(
            "".join(crate_line(p) + "\n" for p in crates), encoding="utf-8"
        )
    if not args.out:
        return

    texts = {}  # hash → (text, [crate names])
    without = []
    for p in crates:
        files = licence_files(p)
        if not files:
            without.append(p)
        for f in files:
            text = f.read_text(encoding="utf-8", errors="replace").strip()
            key = hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
            texts.setdefault(key, (text, []))[1].append(f"{p['name']} {p['version']}")

    out = []
    out.append(f"mpbridge {me['version']}")
    out.append("Copyright (c) 2026 The mpbridge authors")
    out.append("Licence: MIT OR Apache-2.0, at your option (both texts below).")
    out.append("")
    out.append("Bundled fonts (subsets, inside the binary):")
    out.append("  DejaVu Sans — Bitstream Vera / DejaVu licence (text below)")
    out.append("  Droid Sans Fallback — Apache-2.0 (text below)")
    out.append("")
    out.append(f"Rust crates linked into the binary for {args.target} ({len(crates)}):")
    out.extend("  " + crate_line(p) for p in crates)
    if without:
        out.append("")
        out.append(
            "These crates ship no licence file; their terms are the standard texts of the "
            "SPDX licences named above:"
        )
        out.extend(f"  {p['name']} {p['version']}" for p in without)
    sections = [
        ("mpbridge (MIT)", (ROOT / "LICENSE-MIT").read_text(encoding="utf-8")),
        ("mpbridge (Apache-2.0)", (ROOT / "LICENSE-APACHE").read_text(encoding="utf-8")),
        ("DejaVu Sans", (ROOT / "assets/fonts/LICENSE-DejaVu.txt").read_text(encoding="utf-8")),
        (
            "Droid Sans Fallback",
            (ROOT / "assets/fonts/LICENSE-DroidSansFallback.txt").read_text(encoding="utf-8"),
        ),
    ]
    for text, names in texts.values():
        shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
        sections.append((shown, text))
    for title, text in sections:
        out.append("")
        out.append("=" * 78)
        out.append(title)
        out.append("=" * 78)
        out.append(text.strip())
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(crates)} crates, {len(texts)} distinct licence texts", file=sys.stderr)


if __name__ == "__main__":
    main()
