#!/usr/bin/env bash
# Starts the local test ground: etcd, kube-apiserver v1.20.2, kube-controller-manager
# (garbage collection, namespaces, service-account tokens) and the moto AWS emulator over
# TLS through our policy-evaluating launcher, each on free loopback ports.
#
#   scripts/testground-up.sh [DIR]     (DIR defaults to a new temporary directory)
#
# Prints DIR on stdout. DIR/env holds KEY=VALUE lines for the tests and the operator
# (KUBECONFIG, AWS_ENDPOINT_URL, AWS_CA_BUNDLE, credentials...); DIR/pids lists what was
# started; DIR/cmd/NAME records how (for scripts/testground-ctl.sh, which stops, starts and
# restarts etcd, kube-apiserver and the fault proxy). Stop everything with
# scripts/testground-down.sh DIR.
#
# Besides moto itself (AWS_ENDPOINT_URL), a fault-injecting AWS endpoint forwards to moto
# (TESTGROUND_FAULTS_ENDPOINT_URL, driven through TESTGROUND_FAULTS_CONTROL_URL; see
# scripts/faults/README.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"

dir="${1:-$(mktemp -d "${TMPDIR:-/tmp}/tfstate-testground.XXXXXX")}"
mkdir -p "$dir/certs" "$dir/logs" "$dir/cmd"
dir="$(cd "$dir" && pwd)"
: >"$dir/pids"

# On any failure, show why and stop whatever was already started.
fail() {
  log "test ground failed to start: $1"
  [ -n "${2:-}" ] && [ -f "$2" ] && { log "last lines of $2:"; tail -n 30 "$2" >&2; }
  "$here/testground-down.sh" "$dir" >&2 || true
  exit 1
}
trap 'fail "unexpected error at line $LINENO"' ERR

"$here/install-kube.sh" || fail "could not install etcd / build kube-apiserver"
venv="$("$here/install-moto.sh" | tail -n1)" || fail "could not install moto"
apt_install curl

# start NAME LOG CMD...: run CMD in its own process group, remember its PID, and record
# the command line in $dir/cmd/NAME (a sourceable bash array, see record_ready).
start() {
  local name=$1 logfile=$2
  shift 2
  { printf 'logfile=%q\n' "$logfile"; printf 'cmd=('; printf ' %q' "$@"; printf ' )\n'; } >"$dir/cmd/$name"
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo "$name $!" >>"$dir/pids"
}

# record_ready NAME SECONDS CMD...: how (and how long) to wait until NAME answers again
# after scripts/testground-ctl.sh starts it.
record_ready() {
  local name=$1 seconds=$2
  shift 2
  { printf 'ready_seconds=%q\n' "$seconds"; printf 'ready=('; printf ' %q' "$@"; printf ' )\n'; } >>"$dir/cmd/$name"
}

# --- certificates and credentials -------------------------------------------------
# A throw-away CA and a server certificate for moto signed by it: rustls (rightly)
# refuses a self-signed CA certificate presented as a server certificate.
c="$dir/certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=tfstate test ground CA" \
  -keyout "$c/ca.key" -out "$c/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$c/moto.key" -out "$c/moto.csr" 2>/dev/null
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$c/moto.ext"
openssl x509 -req -in "$c/moto.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -days 3 \
  -extfile "$c/moto.ext" -out "$c/moto.crt" 2>/dev/null
openssl genrsa -out "$dir/certs/sa.key" 2048 2>/dev/null
openssl rsa -in "$dir/certs/sa.key" -pubout -out "$dir/certs/sa.pub" 2>/dev/null
admin_token="$(openssl rand -hex 24)"
echo "$admin_token,admin,admin,\"system:masters\"" >"$dir/tokens.csv"

# --- etcd ------------------------------------------------------------------------
etcd_port=$(free_port); etcd_peer=$(free_port)
start etcd "$dir/logs/etcd.log" etcd --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer"
record_ready etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"
wait_until 30 etcd curl -sf "http://127.0.0.1:$etcd_port/health" || fail "etcd did not become healthy in 30 s" "$dir/logs/etcd.log"

# --- kube-apiserver ---------------------------------------------------------------
api_port=$(free_port)
start kube-apiserver "$dir/logs/kube-apiserver.log" "$KUBE_BIN_DIR/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$etcd_port" --secure-port="$api_port" --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 --cert-dir="$dir/certs" --token-auth-file="$dir/tokens.csv" \
  --service-account-key-file="$dir/certs/sa.pub" --service-account-signing-key-file="$dir/certs/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc --authorization-mode=RBAC \
  --service-cluster-ip-range=10.0.0.0/24 --enable-priority-and-fairness=false
api="https://127.0.0.1:$api_port"
record_ready kube-apiserver 90 curl -sf --cacert "$dir/certs/apiserver.crt" -H "Authorization: Bearer $admin_token" "$api/readyz"
wait_until 90 kube-apiserver curl -sf --cacert "$dir/certs/apiserver.crt" -H "Authorization: Bearer $admin_token" "$api/readyz" \
  || fail "kube-apiserver not ready in 90 s" "$dir/logs/kube-apiserver.log"

cat >"$dir/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: testground
  cluster: {server: "$api", certificate-authority: "$dir/certs/apiserver.crt"}
users:
- name: admin
  user: {token: "$admin_token"}
contexts:
- name: testground
  context: {cluster: testground, user: admin, namespace: default}
current-context: testground
KUBECONFIG
chmod 600 "$dir/kubeconfig" "$dir/tokens.csv"

# --- kube-controller-manager: garbage collection, namespace deletion, SA tokens ----
start kube-controller-manager "$dir/logs/kube-controller-manager.log" "$KUBE_BIN_DIR/kube-controller-manager" \
  --kubeconfig="$dir/kubeconfig" --authentication-kubeconfig="$dir/kubeconfig" --authorization-kubeconfig="$dir/kubeconfig" \
  --controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token \
  --service-account-private-key-file="$dir/certs/sa.key" --root-ca-file="$dir/certs/apiserver.crt" \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port=0 --port=0
# It has no health endpoint with --secure-port=0; the default ServiceAccount it creates
# in "default" is the proof that it runs.
wait_until 60 kube-controller-manager curl -sf --cacert "$dir/certs/apiserver.crt" -H "Authorization: Bearer $admin_token" \
  "$api/api/v1/namespaces/default/serviceaccounts/default" \
  || fail "kube-controller-manager did not start in 60 s" "$dir/logs/kube-controller-manager.log"

# --- moto, over TLS, plus a plain-HTTP port on the same state ---------------------
moto_port=$(free_port); moto_plain_port=$(free_port)
start moto "$dir/logs/moto.log" "$venv/bin/python" "$here/moto/launcher.py" -H 127.0.0.1 -p "$moto_port" \
  -c "$dir/certs/moto.crt" -k "$dir/certs/moto.key" --plain-port "$moto_plain_port"
record_ready moto 60 curl -sf --cacert "$dir/certs/ca.crt" "https://127.0.0.1:$moto_port/moto-api/"
wait_until 60 moto curl -sf --cacert "$dir/certs/ca.crt" "https://127.0.0.1:$moto_port/moto-api/" \
  || fail "moto did not answer in 60 s" "$dir/logs/moto.log"

# --- the fault-injecting AWS endpoint in front of moto's TLS port ------------------
# (TLS upstream: the operator's bucket policies deny plain HTTP.)
faults_port=$(free_port); faults_control_port=$(free_port)
start faults "$dir/logs/faults.log" "$venv/bin/python" "$here/faults/proxy.py" --listen-port "$faults_port" \
  --cert "$dir/certs/moto.crt" --key "$dir/certs/moto.key" --control-port "$faults_control_port" \
  --upstream "https://127.0.0.1:$moto_port" --ca "$dir/certs/ca.crt"
record_ready faults 30 curl -sf "http://127.0.0.1:$faults_control_port/faults/stats"
wait_until 30 "fault proxy" curl -sf "http://127.0.0.1:$faults_control_port/faults/stats" \
  || fail "the fault proxy did not answer in 30 s" "$dir/logs/faults.log"
wait_until 30 "fault proxy to moto" curl -sf --cacert "$dir/certs/ca.crt" "https://127.0.0.1:$faults_port/moto-api/" \
  || fail "the fault proxy does not reach moto" "$dir/logs/faults.log"

cat >"$dir/env" <<ENV
TESTGROUND_DIR=$dir
KUBECONFIG=$dir/kubeconfig
KUBE_APISERVER_URL=$api
TESTGROUND_ADMIN_TOKEN=$admin_token
TESTGROUND_SA_SIGNING_KEY=$dir/certs/sa.key
AWS_ENDPOINT_URL=https://127.0.0.1:$moto_port
TESTGROUND_AWS_PLAIN_ENDPOINT_URL=http://127.0.0.1:$moto_plain_port
AWS_CA_BUNDLE=$dir/certs/ca.crt
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_REGION=eu-west-1
TESTGROUND_ACCOUNT_ID=123456789012
TESTGROUND_FAULTS_ENDPOINT_URL=https://127.0.0.1:$faults_port
TESTGROUND_FAULTS_CONTROL_URL=http://127.0.0.1:$faults_control_port
TESTGROUND_CTL=$here/testground-ctl.sh
ENV
trap - ERR
log "test ground up in $dir (apiserver $api, moto https://127.0.0.1:$moto_port, faults https://127.0.0.1:$faults_port)"
echo "$dir"
