#!/usr/bin/env bash
# Installs etcd and builds kube-apiserver + kube-controller-manager v1.20.2 from Debian's
# `kubernetes` source package (the only source of these binaries reachable here: see
# shared/docs/test-ground.md). The binaries are cached under $TFSTATE_CACHE_DIR, so this
# takes ~8 minutes once per machine and well under a second afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_install etcd-server openssl ca-certificates

if [ -x "$KUBE_BIN_DIR/kube-apiserver" ] && [ -x "$KUBE_BIN_DIR/kube-controller-manager" ]; then
  exit 0
fi

log "building kube-apiserver $KUBE_VERSION (once per machine, ~8 min on 2 cores)"
apt_install dpkg-dev golang-1.19-go golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
GO=/usr/lib/go-1.19/bin/go

# `apt-get source` needs a deb-src entry: mirror the machine's own Debian entries
# (same URIs and keyring) rather than naming any archive here.
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  [ -f /etc/apt/sources.list.d/debian.sources ] || die "no deb-src entry and no debian.sources to derive one from"
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    | as_root tee /etc/apt/sources.list.d/tfstate-operator-deb-src.sources >/dev/null
  as_root apt-get update -qq >&2 || die "apt-get update (deb-src) failed"
fi

work="$TFSTATE_CACHE_DIR/kube-build.$$"
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source --download-only "kubernetes=$KUBE_DEB_VERSION" >&2 \
  || die "apt-get source kubernetes=$KUBE_DEB_VERSION failed"
tarball=$(ls kubernetes_*.orig.tar.gz | head -n1)
[ -n "$tarball" ] || die "kubernetes orig tarball not downloaded"
export GOPATH="$work/gopath"
mkdir -p "$GOPATH/src/k8s.io"
tar xzf "$tarball"
mv kubernetes-1.20.2 "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
export GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOCACHE="$work/gocache"

# reflect2 1.0.1 (vendored) segfaults under Go >= 1.18: use Debian's 1.0.2 and the
# matching json-iterator 1.1.12.
for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "vendor/$pkg"
  cp -r "/usr/share/gocode/src/$pkg" "vendor/$pkg"
  find "vendor/$pkg" -name '*_test.go' -delete
done

# The tarball lacks the generated OpenAPI definitions; generate them.
log "generating pkg/generated/openapi"
"$GO" build -o "$work/openapi-gen" k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen
inputs=$(grep -R -l --include='*.go' '+k8s:openapi-gen=' pkg cmd plugin vendor \
  | xargs -n1 dirname | sort -u \
  | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
  | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
"$work/openapi-gen" -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
  -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$work/openapi-report.txt" >&2

ldflags=""
for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
done
mkdir -p "$work/bin"
for cmd in kube-apiserver kube-controller-manager; do
  log "go build $cmd"
  "$GO" build -ldflags "$ldflags" -o "$work/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
"$work/bin/kube-apiserver" --version | grep -q "$KUBE_VERSION" || die "built kube-apiserver reports the wrong version"

mkdir -p "$(dirname "$KUBE_BIN_DIR")"
rm -rf "$KUBE_BIN_DIR.tmp"; mv "$work/bin" "$KUBE_BIN_DIR.tmp"
rm -rf "$KUBE_BIN_DIR"; mv "$KUBE_BIN_DIR.tmp" "$KUBE_BIN_DIR"
log "kube binaries cached in $KUBE_BIN_DIR"
