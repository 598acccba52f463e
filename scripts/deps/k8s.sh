#!/usr/bin/env bash
# Installs what the Kubernetes tests need on a fresh Debian 12 machine (runs as root):
# - kubernetes-validate (PyPI): the official Kubernetes JSON schemas (1.25 to 1.37) and a CLI
#   that validates manifests offline, in strict mode; executors/tests/k8s_manifests.rs runs it
#   for 1.29.0 and 1.33.0.
#   Debian's own python3 refuses pip installs (PEP 668) and has no Debian package of the tool,
#   so there pip gets python3-pip and --break-system-packages; any other python3 first on PATH
#   (pyenv, a venv) gets a plain pip install.
# - a real Kubernetes control plane for tests/kubernetes_real.rs (scripts/k8s-dev.sh runs it):
#   Debian's etcd-server, containerd, runc, containernetworking-plugins, openssl,
#   busybox-static and gcc (the image and the pause binary are made here), and
#   kube-apiserver, kube-controller-manager, kube-scheduler and kubelet of Kubernetes
#   $FLOW_K8S_VERSION built from the k8s.io/kubernetes Go module (no package ships them).
#   That module's go.mod replaces the k8s.io/* staging modules with ./staging/src/k8s.io/...
#   paths a module download does not contain; they are pointed at the published k8s.io/*
#   modules of the same release (k8s.io/api v0.34.4 for 1.34.4, ...). The build (and Go's
#   module and build caches) lives under $FLOW_K8S_CACHE, so it is done once per machine.
#   Needs Go >= the module's `go` line (1.24 for 1.34) at $FLOW_GO, or on PATH, and the Go
#   module proxy; the checksum database is not required (GOSUMDB=off: the hashes the proxy
#   serves are trusted as they are).
# Idempotent: apt-get runs only when a package is missing, pip only when the command is
# absent, the Go build only when the binaries of that version are absent.
#
# Settings (environment):
#   FLOW_K8S_VERSION  Kubernetes release to build (default 1.34.4)
#   FLOW_K8S_CACHE    build cache (default /var/cache/flow-k8s)
#   FLOW_K8S_BUILD    0: install only kubernetes-validate (no control plane)
#   FLOW_K8S_GO_PROCS parallel compile jobs and GOMAXPROCS of the build (default: nproc)
set -euo pipefail

version=${FLOW_K8S_VERSION:-1.34.4}
cache=${FLOW_K8S_CACHE:-/var/cache/flow-k8s}
build=${FLOW_K8S_BUILD:-1}
procs=${FLOW_K8S_GO_PROCS:-$(nproc)}

say() {
    echo "k8s.sh: $*"
}

die() {
    echo "k8s.sh: $*" >&2
    exit 1
}

apt_install() {
    local missing=()
    local package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
    fi
}

install_validate() {
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3
    fi
    if ! command -v kubernetes-validate >/dev/null 2>&1; then
        if [ "$(python3 -c 'import sys; print(sys.prefix)')" = "/usr" ]; then
            apt_install python3-pip
            python3 -m pip install --quiet --break-system-packages kubernetes-validate
        else
            python3 -m pip install --quiet kubernetes-validate
        fi
    fi
    kubernetes-validate --version | sed 's/^/k8s.sh: kubernetes-validate /'
}

find_go() {
    local candidate
    for candidate in "${FLOW_GO:-}" /usr/local/go/bin/go "$(command -v go 2>/dev/null || true)"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        echo "$candidate"
        return 0
    done
    return 1
}

# The control plane binaries of $version under $cache/$version/bin, built once.
build_kubernetes() {
    local out=$cache/v$version
    local bin=$out/bin
    local binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
    local b missing=0
    for b in "${binaries[@]}"; do
        [ -x "$bin/$b" ] || missing=1
    done
    if [ "$missing" = 0 ]; then
        say "Kubernetes v$version already built in $bin"
        return 0
    fi
    local go
    go=$(find_go) || die "no Go toolchain (set FLOW_GO, or install Go >= 1.24 at /usr/local/go)"
    mkdir -p "$cache"
    export GOMODCACHE=$cache/gomod GOCACHE=$cache/gocache GOSUMDB=off GOTOOLCHAIN=local
    export GOWORK=off GOFLAGS=-mod=mod GOMAXPROCS=$procs CGO_ENABLED=0
    local started=$SECONDS
    say "building Kubernetes v$version with $("$go" version) ($procs jobs) into $bin"
    local module_dir
    module_dir=$("$go" mod download -json "k8s.io/kubernetes@v$version" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$module_dir" ] || die "go mod download k8s.io/kubernetes@v$version gave no directory"
    local src=$out/src
    rm -rf "$src"
    mkdir -p "$out"
    cp -r "$module_dir" "$src"
    chmod -R u+w "$src"
    rm -f "$src/go.work" "$src/go.work.sum"
    # ./staging/src/k8s.io/NAME -> k8s.io/NAME v0.MINOR.PATCH, the published module.
    local staging_version=v0.${version#*.}
    local edits=()
    local module
    while read -r module; do
        edits+=("-replace=$module=$module@$staging_version")
    done < <(sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*|\1|p' "$src/go.mod")
    [ "${#edits[@]}" -gt 0 ] || die "no staging replaces found in $src/go.mod"
    (cd "$src" && "$go" mod edit "${edits[@]}")
    local major=${version%%.*} minor
    minor=${version#*.}
    minor=${minor%%.*}
    local ldflags="-s -w"
    local pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    mkdir -p "$out/bin.tmp"
    (cd "$src" && "$go" mod download)
    say "modules downloaded after $((SECONDS - started)) s"
    (cd "$src" && nice -n 10 "$go" build -p "$procs" -trimpath -ldflags="$ldflags" \
        -o "$out/bin.tmp/" ./cmd/kube-apiserver ./cmd/kube-controller-manager \
        ./cmd/kube-scheduler ./cmd/kubelet)
    rm -rf "$bin"
    mv "$out/bin.tmp" "$bin"
    rm -rf "$src"
    say "built Kubernetes v$version in $((SECONDS - started)) s: $(ls "$bin" | tr '\n' ' ')"
}

install_validate
if [ "$build" = 1 ]; then
    apt_install etcd-server containerd runc containernetworking-plugins openssl busybox-static gcc libc6-dev
    build_kubernetes
fi
