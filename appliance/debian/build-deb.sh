#!/bin/bash
# Build the Debian packages of vmacd with dpkg-deb (no debhelper, nothing downloaded):
#
#   vmacd_<version>_all.deb      the daemon: the Python package vmacd in /usr/lib/python3/dist-packages
#                                (standard library + python3-netifaces, nothing vendored, nothing
#                                compiled), /usr/bin/vmacd and vmacctl, the systemd unit,
#                                /etc/vmacd/vmacd.toml (a conffile, every line commented out),
#                                /var/lib/vmacd, man pages, docs; Prometheus rules and the Grafana
#                                dashboard in /usr/share/vmacd; examples (notify script, config,
#                                sysctl.d file: never installed into /etc) in /usr/share/doc/vmacd
#   vmacd-lab_<version>_all.deb  the lab: the Python package vmaclab, /usr/bin/vmac-lab, the
#                                bundled topologies and scenarios in /usr/share/vmacd-lab
#
# The maintainer scripts (appliance/debian/*.postinst, .prerm, .postrm) byte-compile with
# py3compile / py3clean and handle the unit with deb-systemd-helper / deb-systemd-invoke, as
# dh_python3 and dh_installsystemd would; none of them touches a sysctl.
#
# The version is vmacd.__version__ plus the Debian revision of the top entry of
# appliance/debian/changelog (the two must agree: add a changelog entry for a new version).
# Maintainer: DEBFULLNAME / DEBEMAIL when set (as dch uses them), else git's user.name / user.email.
# File dates are SOURCE_DATE_EPOCH (default: the last commit's), so a rebuild is identical.
#
# Usage: appliance/debian/build-deb.sh [OUTDIR]   (default dist/); prints the paths of both .debs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
HERE=$ROOT/appliance/debian
PYLIB=usr/lib/python3/dist-packages

die() { echo "build-deb: $*" >&2; exit 1; }
for tool in dpkg-deb gzip md5sum; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev)"
done

VERSION=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' "$ROOT/vmacd/__init__.py")
[ -n "$VERSION" ] || die "no __version__ in vmacd/__init__.py"
DEBVERSION=$(sed -n '1s/^vmacd (\([^)]*\)) .*/\1/p' "$HERE/changelog")
[ "${DEBVERSION%-*}" = "$VERSION" ] && [ "${DEBVERSION%-*}" != "$DEBVERSION" ] \
  || die "appliance/debian/changelog starts with version '$DEBVERSION'; vmacd is $VERSION: add an entry '$VERSION-1'"

git_cfg() { git -C "$ROOT" config "$1" 2>/dev/null || true; }
NAME=${DEBFULLNAME:-$(git_cfg user.name)}
EMAIL=${DEBEMAIL:-$(git_cfg user.email)}
[ -n "$NAME" ] && [ -n "$EMAIL" ] || die "no maintainer: set DEBFULLNAME and DEBEMAIL"
MAINTAINER="$NAME <$EMAIL>"
MAINTAINER_SED=$(printf '%s' "$MAINTAINER" | sed 's/[&|\\]/\\&/g')   # for a sed replacement
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
CHANGE_DATE=$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")

WORK=$(mktemp -d /tmp/vmacd-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
umask 022

# the files of a source directory: tracked and new (not ignored) when this is a git checkout
sources() {
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -co --exclude-standard -- "$1")
  else
    (cd "$ROOT" && find "$1" -type f ! -path '*/__pycache__/*')
  fi
}

# py_package STAGE SRCDIR NAME: the .py files of SRCDIR as dist-packages/NAME (no bytecode: postinst)
py_package() {
  local f rel
  sources "$2" | grep '\.py$' | while read -r f; do
    rel=${f#"$2"/}
    install -D -m 0644 "$ROOT/$f" "$1/$PYLIB/$3/$rel"
  done
  [ -f "$1/$PYLIB/$3/__init__.py" ] || die "no Python package in $2"
}

# entry STAGE COMMAND MODULE: /usr/bin/COMMAND running MODULE.main with Debian's python3
entry() {
  install -d "$1/usr/bin"
  printf '#!/usr/bin/python3 -I\n"""%s (Debian package)."""\nimport sys\n\nfrom %s import main\n\nsys.exit(main())\n' \
    "$2" "$3" > "$1/usr/bin/$2"
  chmod 0755 "$1/usr/bin/$2"
}

gz() { install -d "$(dirname "$2")"; gzip -9nc "$1" > "$2"; chmod 0644 "$2"; }

# common STAGE PACKAGE PAGE...: copyright, changelog, lintian overrides (each with its reason),
# the man pages
common() {
  local stage=$1 pkg=$2 page sec; shift 2
  if [ -f "$HERE/$pkg.lintian-overrides" ]; then
    install -D -m 0644 "$HERE/$pkg.lintian-overrides" "$stage/usr/share/lintian/overrides/$pkg"
  fi
  install -D -m 0644 "$HERE/copyright" "$stage/usr/share/doc/$pkg/copyright"
  sed -e "s|@MAINTAINER@|$MAINTAINER_SED|" -e "s|@DATE@|$CHANGE_DATE|" "$HERE/changelog" > "$WORK/changelog"
  gz "$WORK/changelog" "$stage/usr/share/doc/$pkg/changelog.Debian.gz"
  for page in "$@"; do
    sec=${page##*.}
    install -d "$stage/usr/share/man/man$sec"
    gz "$HERE/man/$page" "$stage/usr/share/man/man$sec/$page.gz"
  done
}

# finish STAGE PACKAGE: control files, md5sums, maintainer scripts, then the .deb
finish() {
  local stage=$1 pkg=$2 script size
  install -d "$stage/DEBIAN"
  size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
  sed -e "s|@VERSION@|$DEBVERSION|g" -e "s|@MAINTAINER@|$MAINTAINER_SED|" -e "s|@SIZE@|$size|" \
    "$HERE/$pkg.control.in" > "$stage/DEBIAN/control"
  if [ -d "$stage/etc" ]; then
    (cd "$stage" && find etc -type f -printf '/%p\n' | sort) > "$stage/DEBIAN/conffiles"
  fi
  (cd "$stage" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
    | LC_ALL=C sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
  for script in postinst prerm postrm; do
    [ -f "$HERE/$pkg.$script" ] && install -m 0755 "$HERE/$pkg.$script" "$stage/DEBIAN/$script"
  done
  chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$OUT/${pkg}_${DEBVERSION}_all.deb" >/dev/null
  echo "$OUT/${pkg}_${DEBVERSION}_all.deb"
}

# ---------------------------------------------------------------- vmacd
S=$WORK/vmacd
DOC=$S/usr/share/doc/vmacd
py_package "$S" vmacd vmacd
entry "$S" vmacd vmacd.cli.main
entry "$S" vmacctl vmacd.cli.ctl
install -D -m 0644 "$ROOT/appliance/vmacd.service" "$S/lib/systemd/system/vmacd.service"
# the conffile: the example with every setting commented out (vmacd needs an [[instance]] to run)
install -d "$S/etc/vmacd"
{ cat "$HERE/vmacd.toml.head"; sed -e 's/^\([^#]\)/#\1/' "$ROOT/appliance/vmacd.toml"; } \
  > "$S/etc/vmacd/vmacd.toml"
chmod 0644 "$S/etc/vmacd/vmacd.toml"
install -d -m 0755 "$S/var/lib/vmacd"
install -D -m 0644 "$ROOT/appliance/prometheus/vmacd.rules.yml" "$S/usr/share/vmacd/prometheus/vmacd.rules.yml"
install -D -m 0644 "$ROOT/appliance/prometheus/vmacd.rules.test.yml" "$S/usr/share/vmacd/prometheus/vmacd.rules.test.yml"
install -D -m 0644 "$ROOT/appliance/grafana/vmacd.json" "$S/usr/share/vmacd/grafana/vmacd.json"
install -D -m 0644 "$ROOT/appliance/vmacd.toml" "$DOC/examples/vmacd.toml"
install -D -m 0755 "$ROOT/appliance/notify.sh.example" "$DOC/examples/notify.sh"
install -D -m 0644 "$ROOT/appliance/sysctl.d/90-vmacd.conf" "$DOC/examples/sysctl.d/90-vmacd.conf"
gz "$ROOT/README.md" "$DOC/README.md.gz"
for f in architecture config linux interop wire hmac-sha256; do
  gz "$ROOT/docs/$f.md" "$DOC/$f.md.gz"
done
common "$S" vmacd vmacd.8 vmacctl.8 vmacd.toml.5
finish "$S" vmacd

# ---------------------------------------------------------------- vmacd-lab
S=$WORK/vmacd-lab
py_package "$S" netns-lab/vmaclab vmaclab
entry "$S" vmac-lab vmaclab.cli
for kind in topologies scenarios; do
  sources "netns-lab/$kind" | grep '\.toml$' | while read -r f; do
    install -D -m 0644 "$ROOT/$f" "$S/usr/share/vmacd-lab/$kind/$(basename "$f")"
  done
done
gz "$ROOT/netns-lab/README.md" "$S/usr/share/doc/vmacd-lab/README.md.gz"
gz "$ROOT/docs/benchmarks.md" "$S/usr/share/doc/vmacd-lab/benchmarks.md.gz"
common "$S" vmacd-lab vmac-lab.8
finish "$S" vmacd-lab
