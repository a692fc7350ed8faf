#!/bin/sh
# Install what building and testing uhmm needs, when it is missing.
# Debian/Ubuntu: cmake, a C compiler, make, pkg-config to build; Debian's
# sqlite3 and python3 for the chaos run (tests/chaos/, which skips without
# them). Needs root to install; an ordinary user with everything present is
# fine, and one without the chaos programs only skips that test.
set -e
missing=
for tool in cmake cc make pkg-config; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
optional=
[ -x /usr/bin/sqlite3 ] || optional="$optional sqlite3"
[ -x /usr/bin/python3 ] || optional="$optional python3"
[ -z "$missing$optional" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	[ -z "$missing" ] && exit 0
	echo "install-deps: missing:$missing" >&2
	echo "install-deps: run as root (or install cmake gcc make pkg-config yourself)" >&2
	exit 1
fi
echo "install-deps: installing:$missing$optional"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
pkgs=$(echo "$missing" | sed 's/\bcc\b/gcc/')
apt-get install -y -qq $pkgs $optional >/dev/null
