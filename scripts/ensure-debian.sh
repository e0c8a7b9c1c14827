#!/usr/bin/env bash
# Installs the Debian packages named on the command line when their command is missing.
# Usage: scripts/ensure-debian.sh openssl python3 ...   (package name = command name here)
set -euo pipefail
missing=()
for pkg in "$@"; do command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
