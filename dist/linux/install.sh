#!/bin/sh
# Installs mpbridge from this portable archive, or removes it again.
#
#   ./install.sh                      into ~/.local (no root needed)
#   ./install.sh --prefix /opt/mpb    into another prefix (sudo for system folders)
#   ./install.sh --uninstall [--prefix DIR]
#
# Installs bin/mpbridge, the desktop entry, the icons and the licences, and records every
# file in <prefix>/share/mpbridge/installed-files so --uninstall removes exactly those.
# The desktop libraries the console loads at run time are listed in README.md ("Install").
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix="${HOME:?HOME is not set}/.local"
action=install
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a folder" >&2; exit 2; }
              prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --uninstall) action=uninstall; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$prefix" in
  /*) ;;
  *) prefix="$(pwd)/$prefix" ;;
esac
manifest="$prefix/share/mpbridge/installed-files"

refresh_desktop() {
  # Desktops watch share/applications themselves (the entry declares no MIME types, so there
  # is no mimeinfo.cache to update); an icon cache exists only where a theme index does.
  if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$prefix/share/icons/hicolor/index.theme" ]; then
    gtk-update-icon-cache -q -t "$prefix/share/icons/hicolor" 2>/dev/null || true
  fi
}

if [ "$action" = uninstall ]; then
  if [ ! -f "$manifest" ]; then
    echo "install.sh: mpbridge is not installed in $prefix (no $manifest)" >&2
    exit 1
  fi
  while IFS= read -r f; do
    rm -f "$prefix/$f"
    # Remove the folders this install made, as far up as they are empty.
    d=$(dirname "$prefix/$f")
    while [ "$d" != "$prefix" ] && rmdir "$d" 2>/dev/null; do d=$(dirname "$d"); done
  done < "$manifest"
  rm -f "$manifest"
  d="$prefix/share/mpbridge"
  while [ "$d" != "$prefix" ] && rmdir "$d" 2>/dev/null; do d=$(dirname "$d"); done
  refresh_desktop
  echo "mpbridge removed from $prefix"
  exit 0
fi

[ -x "$here/bin/mpbridge" ] || { echo "install.sh: run it from the unpacked archive (bin/mpbridge not found beside it)" >&2; exit 1; }
mkdir -p "$prefix/share/mpbridge"
: > "$manifest.new"
put() { # put SOURCE DEST MODE: copy one file, record it
  mkdir -p "$(dirname "$prefix/$2")"
  cp "$1" "$prefix/$2"
  chmod "$3" "$prefix/$2"
  echo "$2" >> "$manifest.new"
}
put "$here/bin/mpbridge" bin/mpbridge 755
# The menu entry names the binary by its full path: ~/.local/bin is not on every PATH.
entry=$(mktemp)
sed "s|^Exec=mpbridge|Exec=$prefix/bin/mpbridge|" "$here/share/applications/mpbridge.desktop" > "$entry"
put "$entry" share/applications/mpbridge.desktop 644
rm -f "$entry"
(cd "$here" && find share/icons share/doc -type f) | while IFS= read -r f; do
  put "$here/$f" "$f" 644
done
mv "$manifest.new" "$manifest"
refresh_desktop
echo "mpbridge installed in $prefix"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on your PATH; the menu entry works anyway, or run $prefix/bin/mpbridge" ;;
esac
