#!/usr/bin/env bash
# Smoke test of the Windows build under Debian's wine64, in a throwaway prefix:
#   dist/windows/smoke.sh <mpbridge.exe> <…-setup.exe>
# 1. the exe's icon and version resource; mpbridge.exe --version, cert inspect on a test certificate, sandbox --json (its own
#    embedded broker although the file is not called mpbridge.exe);
# 2. the GUI under Xvfb draws its first frame to a screenshot (target/dist/windows-shot.png);
# 3. the installer, silent, for everyone: files in Program Files, the Start-menu entry, the
#    Apps & features key; the installed program runs; the uninstaller removes them all;
# 4. the same for the current user only (no administrator rights: %LOCALAPPDATA%\Programs).
# Wine 8 lacks bcryptprimitives.dll (Windows 10+ has it), which Rust's std imports, so a
# stand-in built from tests/fixtures/wine/ goes into the prefix: a test fixture, never shipped.
# Needs: wine64, gcc-mingw-w64-x86-64, openssl, xvfb (for step 2).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exe="$(realpath "${1:?usage: smoke.sh <mpbridge.exe> <setup.exe>}")"
setup="$(realpath "${2:?usage: smoke.sh <mpbridge.exe> <setup.exe>}")"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
wine=/usr/bin/wine64
[ -x "$wine" ] || wine=/usr/lib/wine/wine64
[ -x "$wine" ] || { echo "smoke.sh: wine64 is missing (apt-get install wine64)" >&2; exit 1; }
wineserver=$(dirname "$wine")/wineserver
[ -x "$wineserver" ] || wineserver=$(command -v wineserver)

work="$(mktemp -d)"
export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="bcryptprimitives=n;mscoree,mshtml="
cleanup() { "$wineserver" -k >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
fails=0
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; fails=$((fails + 1)); }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
w() { timeout 300 "$wine" "$@"; }
winpath() { echo "Z:${1//\//\\}"; }

echo "-- prefix"
w wineboot -i >/dev/null 2>&1
"$wineserver" -w
sys32="$WINEPREFIX/drive_c/windows/system32"
x86_64-w64-mingw32-gcc -shared -O2 -o "$sys32/bcryptprimitives.dll" \
  "$root/tests/fixtures/wine/bcryptprimitives.c" "$root/tests/fixtures/wine/bcryptprimitives.def" -ladvapi32

echo "-- the program"
out=$(w "$exe" --version 2>&1 | tr -d '\r') || true
echo "     $out"
check "--version prints $version" grep -q "mpbridge $version" <<<"$out"
resources=$(x86_64-w64-mingw32-strings -el "$exe" | grep -A1 -E '^(ProductVersion|OriginalFilename)$' | tr '\n' ' ')
check "the exe carries its version details ($resources)" grep -q "ProductVersion $version" <<<"$resources"
# RT_GROUP_ICON (14) in the resource directory: the icon Explorer shows.
check "the exe carries its icon" bash -c "x86_64-w64-mingw32-objdump -p '$exe' | grep -q 'Entry: ID: 0x00000e'"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=mqtt.example.com" -addext "subjectAltName=DNS:mqtt.example.com" \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
out=$(w "$exe" cert inspect "$(winpath "$work/cert.pem")" --key "$(winpath "$work/key.pem")" 2>&1 | tr -d '\r') || true
echo "$out" | sed 's/^/     /' | head -20
check "cert inspect names the certificate" grep -q "mqtt.example.com" <<<"$out"
check "cert inspect matches the key" grep -qi "key.*match" <<<"$out"
check "cert inspect says self-signed" grep -qi "self-signed\|self signed" <<<"$out"

# The sandbox from a binary that is not called mpbridge.exe: it runs its broker as itself.
out=$(timeout 120 "$wine" "$exe" sandbox --json --for 8 2>/dev/null | head -1 | tr -d '\r') || true
echo "     $out"
check "sandbox --json: the embedded broker is up" grep -q '"broker":"mqtt://127.0.0.1:' <<<"$out"
check "sandbox --json: the relay is up" grep -q '"relay":"wss://localhost:' <<<"$out"
"$wineserver" -w

if command -v xvfb-run >/dev/null; then
  shot="$root/target/dist/windows-shot.png"
  mkdir -p "$(dirname "$shot")"
  rm -f "$shot"
  timeout 300 xvfb-run -a -s "-screen 0 1280x800x24" "$wine" "$exe" --screenshot "$(winpath "$shot")" \
    >"$work/gui.log" 2>&1 || true
  check "the GUI draws a screenshot ($shot)" test -s "$shot"
else
  bad "xvfb-run is missing: the GUI was not tried"
fi

installed() { # installed <install dir> <start menu dir> <reg root>
  local dir="$1" menu="$2" root_key="$3"
  check "mpbridge.exe installed in ${dir#"$WINEPREFIX"/}" test -f "$dir/mpbridge.exe"
  check "uninstaller installed" test -f "$dir/uninstall.exe"
  check "licences installed" test -s "$dir/LICENSES.txt"
  check "Start-menu entry" test -f "$menu/mpbridge.lnk"
  local key="$root_key\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\mpbridge"
  local reg
  reg=$(w reg query "$key" 2>&1 | tr -d '\r') || true
  check "Apps & features key in $root_key" grep -q "DisplayVersion.*$version" <<<"$reg"
  check "its uninstall string" grep -q "UninstallString.*uninstall.exe" <<<"$reg"
  out=$(w "$dir/mpbridge.exe" --version 2>&1 | tr -d '\r') || true
  check "the installed program runs" grep -q "mpbridge $version" <<<"$out"
}
removed() {
  local dir="$1" menu="$2" root_key="$3"
  check "install folder removed" test ! -e "$dir"
  check "Start-menu entry removed" test ! -e "$menu/mpbridge.lnk"
  check "Apps & features key removed" bash -c "! timeout 120 '$wine' reg query '$root_key\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\mpbridge' >/dev/null 2>&1"
}

echo "-- installer, everyone (/S)"
pf="$WINEPREFIX/drive_c/Program Files/mpbridge"
menu_all="$WINEPREFIX/drive_c/ProgramData/Microsoft/Windows/Start Menu/Programs"
w "$setup" /S /AllUsers; "$wineserver" -w
installed "$pf" "$menu_all" HKLM
w "$pf/uninstall.exe" /S /AllUsers; "$wineserver" -w
removed "$pf" "$menu_all" HKLM

echo "-- installer, current user (/S /CurrentUser)"
user_dir=$(find "$WINEPREFIX/drive_c/users" -mindepth 1 -maxdepth 1 -type d ! -name Public | head -1)
pu="$user_dir/AppData/Local/Programs/mpbridge"
menu_user="$user_dir/AppData/Roaming/Microsoft/Windows/Start Menu/Programs"
w "$setup" /S /CurrentUser; "$wineserver" -w
installed "$pu" "$menu_user" HKCU
w "$pu/uninstall.exe" /S /CurrentUser; "$wineserver" -w
removed "$pu" "$menu_user" HKCU

if [ "$fails" -gt 0 ]; then
  echo "smoke.sh: $fails check(s) failed"
  exit 1
fi
echo "smoke.sh: every check passed"
