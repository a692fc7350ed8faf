#!/bin/sh
# Install what building and testing uhmm needs, when it is missing.
# Debian/Ubuntu: cmake, a C compiler, make, pkg-config. Needs root to install;
# an ordinary user with everything present is fine.
set -e
missing=
for tool in cmake cc make pkg-config; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -z "$missing" ] && exit 0
echo "install-deps: missing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: run as root (or install cmake gcc make pkg-config yourself)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq cmake gcc make pkg-config >/dev/null
