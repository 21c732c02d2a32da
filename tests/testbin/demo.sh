#!/usr/bin/env bash
# `make demo`: three real local clusters (dev-eu, prod-eu, prod-us), a Git repository made
# from fleet.example.yaml and examples/, then fleet on it: validate, targets, and what each
# cluster gets. The clusters keep running afterwards (stop them with the command printed at
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

say "fleet targets: which bundle goes to which cluster"
fleet targets "$repo"

for cluster in dev-eu prod-eu prod-us; do
  say "fleet render --cluster $cluster: the objects $cluster should run"
  fleet render "$repo" --cluster "$cluster" | python3 "$root/tests/testbin/summarize_manifests.py"
done

if [ "${DEMO_STOP:-0}" = 1 ]; then
  "$root/tests/testbin/localfleet" down --dir "$fleet_dir"
else
  say "the clusters keep running; kubeconfigs are in $fleet_dir"
  echo "stop them with: tests/testbin/localfleet down --dir $fleet_dir"
fi
