#!/bin/bash
# Build dist/vmacd_<version>_<arch>.deb with dpkg-deb (no debhelper, no network daemon needed).
#
# Layout of the package:
#   /usr/lib/vmacd/            vmacd, vmaclab and their Python dependencies, vendored with
#                              `pip install --target` (pyroute2, netifaces-plus, cryptography
#                              at the versions setup.cfg asks for; Debian 12 ships older ones
#                              than we require)
#   /usr/bin/vmacd, vmacctl, vmac-lab
#                              small /usr/bin/python3 -I wrappers that put /usr/lib/vmacd first
#   /lib/systemd/system/vmacd.service, /usr/lib/sysctl.d/90-vmacd.conf
#   /usr/share/vmacd/          prometheus rules (+ tests), grafana dashboard
#   /usr/share/doc/vmacd/examples/  vmacd.toml, notify.sh
# Depends only on python3 (>= 3.11) and iproute2; the lab's scapy/matplotlib are Recommends.
#
# Usage: appliance/debian/build-deb.sh [OUTDIR]   (default dist/); PYTHON= the build interpreter
# (default .venv/bin/python, which must be CPython 3.11 like Debian 12's python3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
HERE=$ROOT/appliance/debian

die() { echo "build-deb: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"
[ -x "$PYTHON" ] || die "no build interpreter at $PYTHON (run make venv, or set PYTHON=)"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = "$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ] \
  || die "$PYTHON is Python $pyver but /usr/bin/python3 is not: vendored binary wheels would not load"

VERSION=$(cd "$ROOT" && "$PYTHON" -c 'import re; print(re.search(r"__version__ = \"([^\"]+)\"", open("vmacd/__init__.py").read()).group(1))')
ARCH=$(dpkg --print-architecture)
WORK=$(mktemp -d /tmp/vmacd-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/vmacd_${VERSION}_${ARCH}
SRC=$WORK/src

# 1. a clean copy of the tracked (and new, not ignored) sources: the build never writes into the tree
mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$SRC" 2>/dev/null) \
  || (cd "$ROOT" && tar --exclude=.venv --exclude=.git --exclude=dist --exclude=build -cf - . | tar -xf - -C "$SRC")

# 2. vendored site: the project (wheel built offline with the venv's setuptools) + its dependencies
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheels" "$SRC" >/dev/null
"$PYTHON" -m pip install -q --no-compile --disable-pip-version-check --target "$STAGE/usr/lib/vmacd" \
  "$WORK"/wheels/vmacd-*.whl
rm -rf "$STAGE/usr/lib/vmacd/bin"                    # pip's scripts point at the build python
find "$STAGE/usr/lib/vmacd" -name '__pycache__' -prune -exec rm -rf {} +

# 3. entry points: the same console scripts as setup.cfg
mkdir -p "$STAGE/usr/bin"
for spec in "vmacd vmacd.cli.main" "vmacctl vmacd.cli.ctl" "vmac-lab vmaclab.cli"; do
  set -- $spec
  sed -e "s/@MODULE@/$2/" "$HERE/wrapper.in" > "$STAGE/usr/bin/$1"
  chmod 0755 "$STAGE/usr/bin/$1"
done

# 4. appliance files
install -D -m 0644 "$ROOT/appliance/vmacd.service" "$STAGE/lib/systemd/system/vmacd.service"
install -D -m 0644 "$ROOT/appliance/sysctl.d/90-vmacd.conf" "$STAGE/usr/lib/sysctl.d/90-vmacd.conf"
install -D -m 0644 "$ROOT/appliance/prometheus/vmacd.rules.yml" "$STAGE/usr/share/vmacd/prometheus/vmacd.rules.yml"
install -D -m 0644 "$ROOT/appliance/prometheus/vmacd.rules.test.yml" "$STAGE/usr/share/vmacd/prometheus/vmacd.rules.test.yml"
install -D -m 0644 "$ROOT/appliance/grafana/vmacd.json" "$STAGE/usr/share/vmacd/grafana/vmacd.json"
install -D -m 0755 "$ROOT/appliance/notify.sh.example" "$STAGE/usr/share/doc/vmacd/examples/notify.sh"
if [ -f "$ROOT/appliance/vmacd.toml" ]; then
  install -D -m 0644 "$ROOT/appliance/vmacd.toml" "$STAGE/usr/share/doc/vmacd/examples/vmacd.toml"
fi
install -d -m 0755 "$STAGE/etc/vmacd"
install -D -m 0644 "$HERE/copyright" "$STAGE/usr/share/doc/vmacd/copyright"

# 5. control files
mkdir -p "$STAGE/DEBIAN"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" "$HERE/control.in" > "$STAGE/DEBIAN/control"
for f in postinst prerm postrm; do install -m 0755 "$HERE/$f" "$STAGE/DEBIAN/$f"; done

dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT/vmacd_${VERSION}_${ARCH}.deb" >/dev/null
echo "$OUT/vmacd_${VERSION}_${ARCH}.deb"
