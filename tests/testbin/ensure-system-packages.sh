#!/usr/bin/env bash
# Makes sure the system programs the tests run are installed: redis-server (Debian's),
# git (with git-daemon) and openssl. As root on Debian/Ubuntu it installs what is missing
# with apt-get; otherwise it says what to install and fails.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v git >/dev/null || missing+=(git)
command -v openssl >/dev/null || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package starts a system redis on 6379; the tests start their own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server || true
  fi
  exit 0
fi
echo "missing: ${missing[*]}; install them with your package manager" \
     "(Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
exit 1
