#!/usr/bin/env bash
# `make demo`: three real local clusters (dev-eu, prod-eu, prod-us), a Git repository made
# from fleet.example.yaml and examples/, then fleet on it: validate, targets, `fleet sync`
# (status table), a second sync that writes nothing, and `fleet status`. The clusters keep running afterwards (stop them with the command printed at
# the end) unless DEMO_STOP=1.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
demo=${DEMO_DIR:-$root/.demo}
fleet_dir=$demo/clusters
repo=$demo/repo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -f "$fleet_dir/clusters.json" ] && "$root/tests/testbin/localfleet" status --dir "$fleet_dir" | grep -q running; then
  say "local fleet already running in $fleet_dir"
else
  say "starting three local clusters (etcd, kube-apiserver, controller-manager, scheduler, kwok each)"
  "$root/tests/testbin/localfleet" down --dir "$fleet_dir" >/dev/null 2>&1 || true
  "$root/tests/testbin/localfleet" up --dir "$fleet_dir" \
    --cluster dev-eu:env=dev,region=eu \
    --cluster prod-eu:env=prod,region=eu \
    --cluster prod-us:env=prod,region=us
fi
"$root/tests/testbin/localfleet" status --dir "$fleet_dir"

say "a Git repository from fleet.example.yaml and examples/ ($repo)"
rm -rf "$repo" && mkdir -p "$repo"
cp "$root/fleet.example.yaml" "$repo/fleet.yaml"
cp -r "$root/examples" "$repo/examples"
git -C "$repo" init --quiet --initial-branch=main
git -C "$repo" add -A
git -C "$repo" -c user.email=demo@fleet.invalid -c user.name="fleet demo" commit --quiet -m "fleet demo"
echo "commit $(git -C "$repo" rev-parse --short HEAD)"

# Workers resolve each cluster's `credential` from their environment (never from Git).
export FLEET_CREDENTIALS_DIR=$fleet_dir

say "fleet validate"
fleet validate "$repo"

say "fleet sync: render everything, apply wave by wave (canary -> prod-eu -> prod-us), wait for health"
fleet sync "$repo"

say "fleet sync again: nothing changed, so nothing is written"
fleet sync "$repo" 2>/dev/null | tail -n 1

say "fleet status: what the clusters run (health and drift checked live)"
fleet status "$repo" 2>/dev/null | tail -n 1

say "fleet targets: which bundle went to which cluster, with which customization and deployment id"
fleet targets "$repo"

if [ "${DEMO_STOP:-0}" = 1 ]; then
  "$root/tests/testbin/localfleet" down --dir "$fleet_dir"
else
  say "the clusters keep running; kubeconfigs are in $fleet_dir"
  echo "stop them with: tests/testbin/localfleet down --dir $fleet_dir"
fi
