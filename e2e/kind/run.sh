#!/usr/bin/env bash
# Run the e2e suite on a kind cluster, with the operator running in-cluster from its image:
#   build the image -> create the cluster -> kind load the image -> helm install -> pytest e2e
#
# Needs docker, kind (v0.33.0: go install sigs.k8s.io/kind@v0.33.0), helm, kubectl and the
# project's virtualenv (make venv). Environment:
#   IMAGE           image to build and load              (default govcloud-operator:e2e)
#   SKIP_BUILD=1    use an IMAGE that is already built
#   KEEP_CLUSTER=1  leave the cluster running afterwards (it is deleted by default)
#   HELM, KIND, KUBECTL  the binaries to use           (default: from PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

CLUSTER="${KIND_CLUSTER_NAME:-govcloud-e2e}"
IMAGE="${IMAGE:-govcloud-operator:e2e}"
NAMESPACE="${GOVCLOUD_E2E_NAMESPACE:-govcloud-system}"
RELEASE="${GOVCLOUD_E2E_RELEASE:-govcloud}"
HELM="${HELM:-helm}"
KIND="${KIND:-kind}"
KUBECTL="${KUBECTL:-kubectl}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/govcloud-e2e"
KUBECONFIG_FILE="$WORK/kubeconfig"
mkdir -p "$WORK"

log() { printf '\n==> %s\n' "$*"; }

cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    log "e2e failed (exit $status): collecting diagnostics into $WORK/diagnostics"
    mkdir -p "$WORK/diagnostics"
    "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get all,cloudtenants,leases -A \
      >"$WORK/diagnostics/objects.txt" 2>&1 || true
    "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" -n "$NAMESPACE" describe pods \
      >"$WORK/diagnostics/pods.txt" 2>&1 || true
    "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" -n "$NAMESPACE" logs \
      -l "app.kubernetes.io/instance=$RELEASE" --all-containers --prefix --tail=-1 \
      >"$WORK/diagnostics/operator.log" 2>&1 || true
    "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get events -A --sort-by=.lastTimestamp \
      >"$WORK/diagnostics/events.txt" 2>&1 || true
    "$KIND" export logs "$WORK/diagnostics/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
    "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit $status
}
trap cleanup EXIT

if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  log "building $IMAGE"
  docker build --tag "$IMAGE" "$ROOT"
fi

log "creating kind cluster $CLUSTER"
"$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
"$KIND" create cluster --name "$CLUSTER" --config "$ROOT/e2e/kind/kind-config.yaml" \
  --kubeconfig "$KUBECONFIG_FILE" --wait 180s

log "loading $IMAGE into the cluster's nodes"
"$KIND" load docker-image "$IMAGE" --name "$CLUSTER"

log "installing the chart (release $RELEASE in $NAMESPACE)"
"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" create namespace "$NAMESPACE"
"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" label namespace "$NAMESPACE" \
  pod-security.kubernetes.io/enforce=restricted
"$HELM" install "$RELEASE" "$ROOT/charts/govcloud-operator" \
  --kubeconfig "$KUBECONFIG_FILE" --namespace "$NAMESPACE" \
  --set image.repository="${IMAGE%:*}" \
  --set image.tag="${IMAGE##*:}" \
  --set image.pullPolicy=Never \
  --wait --timeout 5m
"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" -n "$NAMESPACE" get pods -o wide

log "running the e2e suite against the cluster"
GOVCLOUD_E2E_KUBECONFIG="$KUBECONFIG_FILE" \
GOVCLOUD_E2E_NAMESPACE="$NAMESPACE" \
GOVCLOUD_E2E_RELEASE="$RELEASE" \
  "$PYTHON" -m pytest "$ROOT/e2e" -q
