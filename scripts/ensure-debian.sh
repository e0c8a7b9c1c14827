#!/usr/bin/env bash
# Installs the Debian packages named on the command line when their command is missing.
# Usage: scripts/ensure-debian.sh openssl python3 etcd-server:etcd ...
#   (package name = command name, or package:command when they differ, or package:/path for a
#   package with no command, such as a library's header)
set -euo pipefail
missing=()
for arg in "$@"; do
  pkg="${arg%%:*}"; cmd="${arg#*:}"
  if [[ "$cmd" == /* ]]; then [ -e "$cmd" ] || missing+=("$pkg")
  else command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
