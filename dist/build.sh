#!/usr/bin/env bash
# Builds every package this machine can into dist/out/, with SHA256SUMS:
#   mpbridge_<v>-1_amd64.deb                      Debian 12+ / Ubuntu 22.04+ (cargo-deb)
#   mpbridge-<v>-linux-x86_64.tar.gz              portable, with install.sh
#   mpbridge-<v>-windows-x86_64.exe               the bare program
#   mpbridge-<v>-windows-x86_64-setup.exe         the NSIS installer
# then smoke-tests the Windows build under wine (dist/windows/smoke.sh).
# macOS packages are made by .github/workflows/release.yml on a Mac (dist/macos/).
#
#   dist/build.sh [--linux] [--windows] [--no-smoke]      (default: everything)
#
# Linux packages use rustup's toolchain like every other build. The Windows route uses
# Debian's rustc-web/cargo-web 1.96 (which has the std sources -Zbuild-std needs), mingw and
# nsis, by full path, so they never shadow rustup's toolchain:
#   apt-get install rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 nsis wine64
# Linux needs cargo-deb (`cargo install cargo-deb --locked`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

linux=0 windows=0 smoke=1
for a in "$@"; do
  case "$a" in
    --linux) linux=1 ;;
    --windows) windows=1 ;;
    --no-smoke) smoke=0 ;;
    *) echo "build.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
if [ "$linux" = 0 ] && [ "$windows" = 0 ]; then linux=1 windows=1; fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out="$root/dist/out"
stage="$root/target/dist"
mkdir -p "$out" "$stage"
timed() { local t0=$SECONDS; "$@"; echo "   ($(( SECONDS - t0 )) s)"; }

linux_packages() {
  echo "== Linux: release build (rustup's toolchain)"
  timed cargo build --release --locked
  echo "== Linux: licence file"
  python3 dist/licenses.py --target x86_64-unknown-linux-gnu --out "$stage/copyright"
  # The service as the package installs the binary (/usr/bin), shipped as an example only.
  sed -e 's|/usr/local/bin/mpbridge|/usr/bin/mpbridge|g' \
      -e 's|^# Install: cp target/release/mpbridge /usr/local/bin/ && cp dist/mpbridge-relay.service|# Install: cp /usr/share/doc/mpbridge/examples/mpbridge-relay.service|' \
      -e 's|mkdir -p /etc/mpbridge \&\& cp assets/examples/relay.toml|mkdir -p /etc/mpbridge \&\& cp /usr/share/doc/mpbridge/examples/relay.toml|' \
      dist/mpbridge-relay.service > "$stage/mpbridge-relay.service"

  echo "== Linux: .deb"
  command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2; exit 1; }
  rm -f "$out"/mpbridge_*.deb
  cargo deb --no-build --no-strip --output "$out/mpbridge_${version}-1_amd64.deb"

  echo "== Linux: portable .tar.gz"
  local name="mpbridge-${version}-linux-x86_64"
  dist/linux/stage.sh target/release/mpbridge "$stage/copyright" "$stage/$name"
  tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
}

windows_packages() {
  local cargo=/usr/bin/cargo rustc=/usr/bin/rustc
  for tool in "$cargo" "$rustc" /usr/bin/x86_64-w64-mingw32-gcc /usr/bin/makensis; do
    [ -x "$tool" ] || { echo "$tool is missing: apt-get install rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 nsis" >&2; exit 1; }
  done
  echo "== Windows: cross-build with Debian's $($rustc --version)"
  # Its own target folder: artefacts of another compiler cannot be shared, and rustup's
  # builds must not be invalidated. Fat LTO as in the release profile, 16 codegen units so
  # both cores work (the installer has to stay under 25 MB, the build under half an hour).
  # The icon and version details as a resource object, given to the final link only (cargo
  # rustc's extra arguments reach the binary, not its dependencies, which stay cached).
  local res="$stage/windows-res"
  rm -rf "$res" && mkdir -p "$res"
  cp assets/icons/mpbridge.ico "$res/"
  local commas
  commas="$(echo "$version" | sed 's/[^0-9.].*//' | tr . ,),0"
  sed -e "s/@VERSION@/$version/g" -e "s/@VERSION_COMMAS@/$commas/g" \
    dist/windows/mpbridge.rc.in > "$res/mpbridge.rc"
  (cd "$res" && x86_64-w64-mingw32-windres mpbridge.rc -O coff -o mpbridge-res.o)
  timed env RUSTC="$rustc" RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc \
    AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    "$cargo" rustc --bin mpbridge --release --locked -Zbuild-std=std,panic_abort \
      --target x86_64-pc-windows-gnu --target-dir target/windows \
      -- -C "link-arg=$res/mpbridge-res.o"
  local exe=target/windows/x86_64-pc-windows-gnu/release/mpbridge.exe
  cp "$exe" "$out/mpbridge-${version}-windows-x86_64.exe"

  echo "== Windows: NSIS installer"
  local w="$stage/windows"
  rm -rf "$w" && mkdir -p "$w"
  cp "$exe" "$w/mpbridge.exe"
  cp assets/icons/mpbridge.ico "$w/"
  python3 dist/licenses.py --target x86_64-pc-windows-gnu --out "$w/LICENSES.txt"
  cp README.md "$w/README.md"
  cp assets/examples/relay.toml "$w/relay.toml"
  timed makensis -V2 -DVERSION="$version" -DSTAGE="$w" \
    -DOUTFILE="$out/mpbridge-${version}-windows-x86_64-setup.exe" dist/windows/mpbridge.nsi
  if [ "$smoke" = 1 ]; then
    echo "== Windows: smoke test under wine"
    dist/windows/smoke.sh "$out/mpbridge-${version}-windows-x86_64.exe" \
      "$out/mpbridge-${version}-windows-x86_64-setup.exe"
  fi
}

[ "$linux" = 0 ] || linux_packages
[ "$windows" = 0 ] || windows_packages

echo "== SHA256SUMS"
(cd "$out" && rm -f SHA256SUMS && sha256sum -- * > SHA256SUMS && cat SHA256SUMS)
ls -l "$out"
