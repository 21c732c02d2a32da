#!/usr/bin/env bash
# Makes sure the system programs the tests run are installed: Debian's redis-server,
# prometheus (the gate tests' real Prometheus), prometheus-alertmanager (the notifier
# tests' real Alertmanager), git (git-daemon,
# git-http-backend), openssl, sshd (git over SSH), docker-registry (distribution 2.8,
# the test bed's container registry) and skopeo (pushes images to it). As root on Debian/Ubuntu
# it installs what is missing with apt-get; otherwise it says what to install and fails.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null ||
  missing+=(prometheus-alertmanager)
command -v git >/dev/null || missing+=(git)
command -v openssl >/dev/null || missing+=(openssl)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package starts a system redis on 6379; the tests start their own.
  # Debian's packages start a system redis (6379) and sshd (22); the tests run their own.
  # Debian's docker-registry starts a system registry (5000); the tests run their own.
  # Debian's prometheus starts a system Prometheus (9090); the tests run their own.
  for unit in redis-server ssh docker-registry prometheus prometheus-alertmanager; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then
      systemctl stop "$unit" || true
    fi
  done
  exit 0
fi
echo "missing: ${missing[*]}; install them with your package manager" \
     "(Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
exit 1
