#!/usr/bin/env bash
# Makes mpbridge.app (and, on macOS, a .dmg) from a built binary:
#   dist/macos/bundle.sh <mpbridge binary> <out folder> [--no-dmg]
# The .app: Contents/Info.plist (version from Cargo.toml), Contents/MacOS/mpbridge,
# Contents/Resources/{mpbridge.icns, LICENSES.txt}. The .dmg is made with macOS's own hdiutil
# (nothing downloaded), holding the app and a link to /Applications. Run by the release
# workflow on a Mac (a universal binary made with lipo); tests/dist.rs runs it with --no-dmg
# on Linux to check the bundle's layout and plist. Unsigned: signing and notarisation need an
# Apple Developer ID (see README, "Install").
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:?usage: bundle.sh <binary> <out folder> [--no-dmg]}"
out="${2:?usage: bundle.sh <binary> <out folder> [--no-dmg]}"
dmg=1
[ "${3:-}" != "--no-dmg" ] || dmg=0
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)

app="$out/mpbridge.app"
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
sed "s/@VERSION@/$version/g" "$root/dist/macos/Info.plist" > "$app/Contents/Info.plist"
printf 'APPL????' > "$app/Contents/PkgInfo"
install -m755 "$bin" "$app/Contents/MacOS/mpbridge"
install -m644 "$root/assets/icons/mpbridge.icns" "$app/Contents/Resources/mpbridge.icns"
python3 "$root/dist/licenses.py" --target aarch64-apple-darwin --out "$app/Contents/Resources/LICENSES.txt"
echo "$app"

if [ "$dmg" = 1 ]; then
  command -v hdiutil >/dev/null || { echo "bundle.sh: hdiutil exists only on macOS (use --no-dmg)" >&2; exit 1; }
  src="$out/dmg-root"
  rm -rf "$src" && mkdir -p "$src"
  cp -R "$app" "$src/"
  ln -s /Applications "$src/Applications"
  image="$out/mpbridge-${version}-macos-universal.dmg"
  rm -f "$image"
  hdiutil create -volname "mpbridge $version" -srcfolder "$src" -ov -format UDZO "$image"
  rm -rf "$src"
  echo "$image"
fi
