#!/usr/bin/env bash
# Builds the real binaries the tests run (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok, helm, kustomize, kubectl, gitea; on request Flux's source-controller
# and kustomize-controller for `make bench-flux`) from Go modules, one wrapper module per tool so
# their dependency versions never fight. Each build is cached under
# $FLEET_TESTBIN_CACHE (default ~/.cache/fleet-testbin) keyed by the wrapper module's
# content, so a second run only re-links tests/testbin/bin/.
#
#   tests/testbin/build.sh            build (or reuse) every tool
#   tests/testbin/build.sh helm etcd  only these tools
#   tests/testbin/build.sh flux       Flux's two controllers (never part of the default set)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${FLEET_TESTBIN_CACHE:-$HOME/.cache/fleet-testbin}
bindir=$here/bin
mkdir -p "$cache" "$bindir"
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export CGO_ENABLED=0

KUBE_VERSION=v1.36.3
HELM_VERSION=v3.19.5
KUSTOMIZE_VERSION=v5.7.1
KWOK_VERSION=v0.7.0
ETCD_VERSION=v3.6.16
GITEA_VERSION=v1.27.3
# Flux (tests/bench/bench_flux.py only): v1.7.3 builds with the installed Go; v1.10 needs a
# fluxcd/pkg version the module proxy here refuses
FLUX_VERSION=v1.7.3

kube_ldflags() {
  local major minor
  major=$(echo "${KUBE_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  local flags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

helm_ldflags() {
  local minor
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  echo "$flags"
}

kubectl_ldflags() {
  local flags="-s -w" minor
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  done
  echo "$flags"
}

# tool -> "binary=package ..." and ldflags
tool_targets() {
  case $1 in
    kubernetes) echo "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler" ;;
    etcd) echo "etcd=." ;;
    kwok) echo "kwok=sigs.k8s.io/kwok/cmd/kwok" ;;
    helm) echo "helm=helm.sh/helm/v3/cmd/helm" ;;
    kustomize) echo "kustomize=sigs.k8s.io/kustomize/kustomize/v5" ;;
    kubectl) echo "kubectl=." ;;
    # gitea's module declares its path as gitea.dev (the wrapper replaces it with the
    # module the proxy serves). No bindata: gitea reads templates/options from its source
    # directory in the module cache (tests/support/gitea.py points it there).
    gitea) echo "gitea=gitea.dev" ;;
    flux-source-controller) echo "flux-source-controller=github.com/fluxcd/source-controller" ;;
    flux-kustomize-controller) echo "flux-kustomize-controller=github.com/fluxcd/kustomize-controller" ;;
    *) echo "unknown tool: $1 (known: kubernetes etcd kwok helm kustomize kubectl gitea flux-source-controller flux-kustomize-controller)" >&2; return 1 ;;
  esac
}

tool_ldflags() {
  case $1 in
    kubernetes) kube_ldflags ;;
    kubectl) kubectl_ldflags ;;
    helm) helm_ldflags ;;
    kwok) echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBE_VERSION" ;;
    kustomize) echo "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION" ;;
    gitea) echo "-s -w -X main.Version=${GITEA_VERSION#v}" ;;
    *) echo "-s -w" ;;
  esac
}

# Build tags (Flux's Makefile builds with netgo,osusergo the same way); gitea's sqlite is the pure-Go one (modernc), so CGO stays off.
tool_tags() {
  case $1 in
    gitea) echo "sqlite sqlite_unlock_notify" ;;
    flux-*) echo "netgo osusergo" ;;
    *) echo "" ;;
  esac
}

build_tool() {
  local tool=$1 mod=$here/modules/$1
  local targets flags tags key out
  targets=$(tool_targets "$tool")
  case $tool in
    flux-*) grep -q "^require github.com/fluxcd/${tool#flux-} $FLUX_VERSION\$" "$mod/go.mod" ||
      { echo "testbin: $mod/go.mod does not pin $FLUX_VERSION" >&2; return 1; } ;;
  esac
  flags=$(tool_ldflags "$tool")
  tags=$(tool_tags "$tool")
  # (tags join the key only when set, so the other tools keep their cached builds)
  key=$( (cat "$mod"/go.mod "$mod"/go.sum "$mod"/*.go 2>/dev/null; echo "$flags"; [ -z "$tags" ] || echo "tags=$tags"; go env GOVERSION) | sha256sum | cut -c1-16)
  out=$cache/$tool-$key
  if [ ! -f "$out/.complete" ]; then
    echo "testbin: building $tool (cache $out)" >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    local t start
    start=$(date +%s)
    for t in $targets; do
      (cd "$mod" && go build -trimpath -tags "$tags" -ldflags "$flags" -o "$out.tmp/${t%%=*}" "${t#*=}")
    done
    case $tool in
      flux-*)
        # the CRDs this very version serves, kept beside the binary (bench_flux applies them)
        local src
        src=$(cd "$mod" && go list -m -f '{{.Dir}}' "github.com/fluxcd/${tool#flux-}")
        mkdir -p "$out.tmp/crds" && cp "$src"/config/crd/bases/*.yaml "$out.tmp/crds/"
        ;;
    esac
    touch "$out.tmp/.complete"
    rm -rf "$out" && mv "$out.tmp" "$out"
    echo "testbin: built $tool in $(( $(date +%s) - start ))s" >&2
  fi
  for t in $targets; do
    ln -sfn "$out/${t%%=*}" "$bindir/${t%%=*}"
  done
  [ ! -d "$out/crds" ] || ln -sfn "$out/crds" "$bindir/$tool.crds"
  if [ "$tool" = gitea ]; then
    # a cached binary on a machine whose module cache was emptied: gitea still needs its
    # source (templates, locales; tests/support/gitea.py), so fetch it back
    (cd "$mod" && go mod download gitea.dev)
  fi
}

tools=()
for arg in "$@"; do
  case $arg in
    flux) tools+=(flux-source-controller flux-kustomize-controller) ;;
    *) tools+=("$arg") ;;
  esac
done
[ ${#tools[@]} -gt 0 ] || tools=(etcd kubernetes kwok helm kustomize kubectl gitea)
for tool in "${tools[@]}"; do
  build_tool "$tool"
done
echo "testbin: binaries in $bindir: $(ls "$bindir" | tr '\n' ' ')" >&2
