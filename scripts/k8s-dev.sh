#!/usr/bin/env bash
# A one-node Kubernetes for development and CI: scripts/k8s-dev.sh up|down|status|image
#
#   up      install what is missing (scripts/deps/k8s.sh: Debian's etcd-server, containerd,
#           runc, CNI plugins; kube-apiserver, kube-controller-manager, kube-scheduler and
#           kubelet of one release, built once from source into $FLOW_K8S_CACHE), generate a
#           CA, certificates and the service-account key, then start etcd, kube-apiserver
#           (RBAC on, an audit log of every request), kube-controller-manager,
#           kube-scheduler, containerd and a kubelet whose node is `localhost`, all on
#           127.0.0.1, and wait until the node is Ready. Writes the cluster-admin kubeconfig
#           $state/admin.kubeconfig (the tests' harness uses it to set up namespaces, RBAC and
#           volumes; the driver under test runs with a service account's token instead).
#           Idempotent: daemons already running are left alone.
#   down    stop exactly what `up` started (by the PIDs in its pid files, kubelet first) and
#           remove the pods' containers; the cluster's data stays for the next `up`.
#   status  say which daemons run and whether the node is Ready; exit 0 only when it is.
#   image FLOW_BINARY
#           build an image from the flow binary, the Debian libraries it links and Debian's
#           busybox-static (sh and the usual tools), import it into containerd with `ctr`
#           and print its reference (flow.local/flow:<hash of the content>). No registry is
#           involved: the kubelet finds the image already present.
#
# Settings (environment):
#   FLOW_K8S_VERSION   release (default 1.34.4; see scripts/deps/k8s.sh)
#   FLOW_K8S_CACHE     where the build lives (default /var/cache/flow-k8s)
#   FLOW_K8S_STATE     certificates, etcd data, kubelet and containerd state (default
#                      /var/lib/flow-k8s-dev)
#
# Needs root (containerd, the kubelet and its cgroups). Tested on Debian 12 (cgroup v1,
# no systemd) with Kubernetes 1.34.4, etcd 3.4.23, containerd 1.6.20, runc 1.1.5; what each
# setting works around is in docs/kubernetes.md and shared/notes/kubernetes.md.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=${FLOW_K8S_VERSION:-1.34.4}
cache=${FLOW_K8S_CACHE:-/var/cache/flow-k8s}
bin=$cache/v$version/bin
state=${FLOW_K8S_STATE:-/var/lib/flow-k8s-dev}
pki=$state/pki
run=/run/flow-k8s-dev
logs=/var/log/flow-k8s-dev
containerd_sock=$run/containerd.sock
apiserver=https://127.0.0.1:6443
admin_kubeconfig=$state/admin.kubeconfig
pause_image=flow.local/pause:3.10
daemons=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)

die() {
    echo "k8s-dev: $*" >&2
    exit 1
}

say() {
    echo "k8s-dev: $*"
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (starts containerd and a kubelet)"
}

# The PID in a pid file when that process is alive, nothing otherwise.
live_pid() {
    local file=$run/$1.pid pid
    [ -s "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# Stop the daemon named in its pid file; SIGKILL after 15 s.
stop_daemon() {
    local name=$1 pid i
    if ! pid=$(live_pid "$name"); then
        rm -f "$run/$name.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$run/$name.pid"
    say "stopped $name (pid $pid)"
}

# Start a daemon in its own session, stdio detached (or it holds the caller's pipes open).
start_daemon() {
    local name=$1
    shift
    if live_pid "$name" >/dev/null; then
        return 0
    fi
    setsid "$@" </dev/null >>"$logs/$name.log" 2>&1 &
    echo $! >"$run/$name.pid"
    say "started $name (pid $!)"
}

wait_for() {
    local what=$1 seconds=$2 log=$3
    shift 3
    local i
    for i in $(seq 1 $((seconds * 5))); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    tail -n 20 "$log" >&2 || true
    die "$what not ready within $seconds s; see $log"
}

kubectl_admin() {
    kubectl --kubeconfig "$admin_kubeconfig" "$@"
}

# ---------------------------------------------------------------- certificates

# sign NAME SUBJECT EXTENSIONS: a key and a certificate signed by the dev CA.
sign() {
    local name=$1 subject=$2 extensions=$3
    [ -s "$pki/$name.crt" ] && return 0
    openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
    openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
    printf '%s\n' "$extensions" >"$pki/$name.ext"
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 3650 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
    rm -f "$pki/$name.csr" "$pki/$name.ext"
}

client_ext="keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

make_pki() {
    mkdir -p "$pki"
    chmod 700 "$pki"
    if [ ! -s "$pki/ca.crt" ]; then
        openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
        openssl req -x509 -new -key "$pki/ca.key" -subj /CN=flow-k8s-dev-ca -days 3650 \
            -out "$pki/ca.crt" 2>/dev/null
    fi
    sign apiserver /CN=kube-apiserver "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign kubelet-serving /CN=localhost "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
    sign admin "/O=system:masters/CN=flow-k8s-dev-admin" "$client_ext"
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client_ext"
    sign controller-manager /CN=system:kube-controller-manager "$client_ext"
    sign scheduler /CN=system:kube-scheduler "$client_ext"
    sign kubelet "/O=system:nodes/CN=system:node:localhost" "$client_ext"
    if [ ! -s "$pki/sa.key" ]; then
        openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
        openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    fi
}

# kubeconfig NAME CERT: a kubeconfig for the client certificate CERT.
kubeconfig() {
    local file=$state/$1.kubeconfig cert=$2
    [ -s "$file" ] && return 0
    kubectl config set-cluster flow-dev --server="$apiserver" --certificate-authority="$pki/ca.crt" \
        --embed-certs=true --kubeconfig="$file.tmp" >/dev/null
    kubectl config set-credentials "$cert" --client-certificate="$pki/$cert.crt" \
        --client-key="$pki/$cert.key" --embed-certs=true --kubeconfig="$file.tmp" >/dev/null
    kubectl config set-context flow-dev --cluster=flow-dev --user="$cert" \
        --kubeconfig="$file.tmp" >/dev/null
    kubectl config use-context flow-dev --kubeconfig="$file.tmp" >/dev/null
    chmod 600 "$file.tmp"
    mv "$file.tmp" "$file"
}

# ---------------------------------------------------------------- configuration files

write_configs() {
    mkdir -p "$state/cni" "$state/volume" "$state/kubelet"
    chmod 1777 "$state/volume"
    cat >"$state/audit-policy.yaml" <<'YAML'
# Written by flow's scripts/k8s-dev.sh: one line per request (who, verb, path, status).
apiVersion: audit.k8s.io/v1
kind: Policy
# Only what service accounts outside kube-system ask: the flow driver under test, by its
# token. The control plane's own traffic is not logged.
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
YAML
    # A bridge on the host, an address per pod from host-local; no masquerade (the pods
    # need no network beyond their own loopback; the campaign volume is a hostPath).
    cat >"$state/cni/10-flow-dev.conflist" <<'JSON'
{
  "cniVersion": "0.4.0",
  "name": "flow-dev",
  "plugins": [
    {"type": "bridge", "bridge": "flowdev0", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
              "dataDir": "/run/flow-k8s-dev/cni-ipam"}},
    {"type": "loopback"}
  ]
}
JSON
    cat >"$state/containerd.toml" <<TOML
# Written by flow's scripts/k8s-dev.sh. Do not edit.
version = 2
root = "$state/containerd"
state = "$run/containerd"
[grpc]
  address = "$containerd_sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # The sandbox has no CAP_SYS_RESOURCE: lowering a process's OOM score must not be tried.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni"
TOML
    cat >"$state/kubelet.yaml" <<YAML
# Written by flow's scripts/k8s-dev.sh. Do not edit.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
containerRuntimeEndpoint: unix://$containerd_sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
localStorageCapacityIsolation: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
podLogsDir: $state/pod-logs
maxPods: 250
resolvConf: ""
YAML
}

# ---------------------------------------------------------------- images

# A docker-archive tarball of one layer made from ROOTFS, imported into containerd's k8s.io
# namespace as REF, running as USER, ENTRYPOINT a JSON list.
import_rootfs() {
    local rootfs=$1 ref=$2 user=$3 entrypoint=$4 work
    work=$(mktemp -d)
    tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
    local diff_id
    diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"User":"$user","Entrypoint":$entrypoint,"Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]}}
JSON
    printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$ref" >"$work/manifest.json"
    tar -C "$work" -cf "$work/image.tar" manifest.json config.json layer.tar
    ctr --address "$containerd_sock" -n k8s.io images import --snapshotter overlayfs "$work/image.tar" >/dev/null
    rm -rf "$work"
}

image_present() {
    ctr --address "$containerd_sock" -n k8s.io images ls -q 2>/dev/null | grep -qxF "$1"
}

# The sandbox image: a pause compiled here (no registry to pull registry.k8s.io/pause from).
pause_image() {
    image_present "$pause_image" && return 0
    local work
    work=$(mktemp -d)
    cat >"$work/pause.c" <<'C'
/* The pod sandbox's process: sleeps until told to stop; reaps orphans. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction s = {0}, r = {0};
    s.sa_handler = stop;
    sigaction(SIGINT, &s, NULL);
    sigaction(SIGTERM, &s, NULL);
    r.sa_handler = reap;
    r.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &r, NULL);
    for (;;) pause();
}
C
    mkdir -p "$work/rootfs"
    gcc -O2 -static -o "$work/rootfs/pause" "$work/pause.c"
    import_rootfs "$work/rootfs" "$pause_image" "65535:65535" '["/pause"]'
    rm -rf "$work"
    say "imported $pause_image"
}

# The flow image: FLOW_BINARY, the shared libraries it links (from Debian's packages on this
# host), Debian's busybox-static as /bin/sh and the usual tools, a user 1000.
flow_image() {
    local flow=$1
    [ -x "$flow" ] || die "image: $flow is not an executable"
    live_pid containerd >/dev/null || die "containerd is not running (scripts/k8s-dev.sh up)"
    local work rootfs
    work=$(mktemp -d)
    rootfs=$work/rootfs
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/dev" \
        "$rootfs/proc" "$rootfs/sys"
    chmod 1777 "$rootfs/tmp"
    # Without its debug sections (a debug build is 250 MB, 30 without).
    strip --strip-debug -o "$rootfs/usr/local/bin/flow" "$flow" 2>/dev/null ||
        cp "$flow" "$rootfs/usr/local/bin/flow"
    local lib
    for lib in $(ldd "$flow" | grep -o '/[^ ]*'); do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
    cp /bin/busybox "$rootfs/bin/busybox"
    local applet
    for applet in $("$rootfs/bin/busybox" --list); do
        [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nflow:x:1000:1000:flow:/tmp:/bin/sh\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nflow:x:1000:\n' >"$rootfs/etc/group"
    local hash ref
    hash=$(cd "$rootfs" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
    ref=flow.local/flow:$hash
    if ! image_present "$ref"; then
        import_rootfs "$rootfs" "$ref" "1000:1000" '["/usr/local/bin/flow"]'
    fi
    rm -rf "$work"
    echo "$ref"
}

# ---------------------------------------------------------------- daemons

kernel_settings=(kernel.panic kernel.panic_on_oops vm.overcommit_memory)

# The kubelet sets these at start; the machine is shared, so they are put back.
save_kernel_settings() {
    [ -s "$state/kernel-settings" ] && return 0
    local key
    for key in "${kernel_settings[@]}"; do
        echo "$key=$(sysctl -n "$key")"
    done >"$state/kernel-settings"
}

restore_kernel_settings() {
    [ -s "$state/kernel-settings" ] || return 0
    local line
    while read -r line; do
        sysctl -q -w "$line" >/dev/null 2>&1 || true
    done <"$state/kernel-settings"
}

node_ready() {
    [ "$(kubectl_admin get node localhost -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

up() {
    require_root
    local started=$SECONDS b
    for b in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
        if [ ! -x "$bin/$b" ]; then
            FLOW_K8S_VERSION=$version FLOW_K8S_CACHE=$cache bash "$here/deps/k8s.sh"
            break
        fi
    done
    for b in etcd containerd runc ctr kubectl openssl gcc; do
        command -v "$b" >/dev/null || bash "$here/deps/k8s.sh"
    done
    [ -x /usr/lib/cni/bridge ] || bash "$here/deps/k8s.sh"
    local built=$SECONDS
    mkdir -p "$state" "$run" "$logs" "$run/cni-ipam"
    make_pki
    kubeconfig admin admin
    kubeconfig controller-manager controller-manager
    kubeconfig scheduler scheduler
    kubeconfig kubelet kubelet
    write_configs

    start_daemon etcd etcd --name flowdev --data-dir "$state/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster flowdev=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
    wait_for etcd 30 "$logs/etcd.log" curl -fsS http://127.0.0.1:2379/health

    start_daemon kube-apiserver "$bin/kube-apiserver" \
        --etcd-servers=http://127.0.0.1:2379 \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
        --endpoint-reconciler-type=none \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" \
        --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types=Hostname \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" \
        --service-cluster-ip-range=10.0.0.0/24 \
        --authorization-mode=Node,RBAC \
        --enable-admission-plugins=NodeRestriction \
        --audit-policy-file="$state/audit-policy.yaml" --audit-log-path="$logs/audit.log" \
        --audit-log-maxsize=500 --audit-log-maxbackup=1 \
        --profiling=false
    wait_for kube-apiserver 120 "$logs/kube-apiserver.log" kubectl_admin get --raw /readyz

    start_daemon kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig="$state/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$state/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$state/controller-manager.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port=10257 \
        --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
        --use-service-account-credentials=true --leader-elect=false --profiling=false
    start_daemon kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig="$state/scheduler.kubeconfig" \
        --authentication-kubeconfig="$state/scheduler.kubeconfig" \
        --authorization-kubeconfig="$state/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false

    start_daemon containerd containerd --config "$state/containerd.toml"
    wait_for containerd 30 "$logs/containerd.log" ctr --address "$containerd_sock" version
    pause_image

    save_kernel_settings
    if ! live_pid kubelet >/dev/null; then
        start_daemon kubelet "$bin/kubelet" --config="$state/kubelet.yaml" \
            --kubeconfig="$state/kubelet.kubeconfig" --hostname-override=localhost \
            --root-dir="$state/kubelet" --cert-dir="$pki"
    fi
    wait_for "node localhost" 120 "$logs/kubelet.log" node_ready
    restore_kernel_settings
    say "up in $((SECONDS - started)) s ($((built - started)) s of it building/installing): Kubernetes v$version, node localhost Ready; kubeconfig $admin_kubeconfig; logs $logs"
}

down() {
    require_root
    if live_pid containerd >/dev/null; then
        stop_daemon kubelet
        # The pods' containers and sandboxes: stop and remove them, or their processes stay.
        local ids
        ids=$(ctr --address "$containerd_sock" -n k8s.io tasks ls -q 2>/dev/null || true)
        local id
        for id in $ids; do
            ctr --address "$containerd_sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
        sleep 0.5
        for id in $ids; do
            ctr --address "$containerd_sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
        done
        ids=$(ctr --address "$containerd_sock" -n k8s.io containers ls -q 2>/dev/null || true)
        for id in $ids; do
            ctr --address "$containerd_sock" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
        done
    fi
    stop_daemon kubelet
    stop_daemon containerd
    stop_daemon kube-scheduler
    stop_daemon kube-controller-manager
    stop_daemon kube-apiserver
    stop_daemon etcd
    # Mounts the kubelet and containerd made (pod volumes, sandboxes' /dev/shm, rootfs).
    local mount
    for mount in $(awk -v s="$state" -v r="$run" 'index($2, s) == 1 || index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
    done
    restore_kernel_settings
}

status() {
    local name pid ok=0
    for name in "${daemons[@]}"; do
        if pid=$(live_pid "$name"); then
            say "$name running (pid $pid)"
        else
            say "$name not running"
            ok=1
        fi
    done
    if node_ready; then
        say "node localhost Ready; kubeconfig $admin_kubeconfig"
    else
        say "node localhost not Ready"
        ok=1
    fi
    return $ok
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
image)
    [ $# -eq 2 ] || die "usage: $0 image FLOW_BINARY"
    require_root
    flow_image "$2"
    ;;
*)
    echo "usage: $0 up|down|status|image FLOW_BINARY" >&2
    exit 2
    ;;
esac
