#!/usr/bin/env bash
# Deploy smoke test: builds the image, starts two ticketd containers against the
# PostgreSQL on this machine (host network, loopback only), waits for both health
# checks, creates an incident through one replica and watches it live through the
# other, stops the watched replica with SIGTERM mid-stream and resumes the stream
# on the first from its last sequence, checking that no event is lost or repeated
# (deploy/smoke_client.py). Run from anywhere; .ci/run runs it.
#
# Environment: TICKETD_SMOKE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres,
# a server it may create and drop a database on), TICKETD_SMOKE_PORT (default 50061;
# it uses this port and the next three).
#
# This machine has no container registry: the base images come from Debian's
# packages (deploy/base-images.sh), the build stage gets the host's Rust toolchain
# and CA bundle mounted read-only, and podman needs runc, cgroupfs and no default
# ulimits. With a registry none of that is needed (deploy/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n[smoke %s] %s\n' "$(date +%T)" "$*"; }

ADMIN_URL="${TICKETD_SMOKE_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT="${TICKETD_SMOKE_PORT:-50061}"
IMAGE=localhost/ticketd:smoke
A=ticketd-smoke-a B=ticketd-smoke-b
work="$(mktemp -d)"
printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
podman_() { podman --cgroup-manager=cgroupfs "$@"; }
DB="ticketd_smoke_$$"
DB_URL="${ADMIN_URL%/*}/$DB"

cleanup() {
  for c in $A $B; do
    if podman_ container exists $c; then
      echo "--- log of $c (last 15 lines)"; podman_ logs --tail 15 $c 2>&1 || true
      podman_ rm -f -t 0 $c >/dev/null 2>&1 || true
    fi
  done
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step "base images (Debian bookworm, debootstrap)"
bash deploy/base-images.sh

step "image build (cargo's registry and target directory are cache mounts)"
toolchain="$(rustc --print sysroot)"
build_started=$(date +%s)
nice -n 15 podman --cgroup-manager=cgroupfs build --runtime runc --network host --format docker \
  --build-arg BUILD_IMAGE=localhost/ticketd-build-base:bookworm \
  --build-arg RUNTIME_IMAGE=localhost/ticketd-base:bookworm \
  -v "$toolchain:/usr/local/rust-toolchain:ro" \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  -f deploy/Containerfile -t "$IMAGE" . >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log"; exit 1; }
build_seconds=$(( $(date +%s) - build_started ))
echo "built $IMAGE in ${build_seconds}s: $(podman_ image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}')"
[ "$(podman_ image inspect "$IMAGE" --format '{{.Config.User}}')" = 10001:10001 ] \
  || { echo "the image does not run as uid 10001" >&2; exit 1; }

step "a fresh database, migrated once by a one-off container"
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
SECRET="$(head -c 32 /dev/urandom | base64)"
run_env=(-e TICKETD_DATABASE_URL="$DB_URL" -e TICKETD_JWT_SECRET="$SECRET" -e TICKETD_LOG_FORMAT=json)
podman_ run --rm --runtime runc --network host "${run_env[@]}" "$IMAGE" migrate >"$work/migrate.log" 2>&1 \
  || { cat "$work/migrate.log"; exit 1; }
grep '"migrations applied"' "$work/migrate.log"

step "two replicas"
start_replica() { # NAME GRPC_PORT METRICS_PORT
  podman_ run -d --runtime runc --network host --name "$1" "${run_env[@]}" \
    -e TICKETD_LISTEN="127.0.0.1:$2" -e TICKETD_METRICS_LISTEN="127.0.0.1:$3" \
    -e TICKETD_DRAIN_TIMEOUT=3s --stop-timeout 15 \
    --health-interval disable "$IMAGE" >/dev/null 2>"$work/run-$1.log" \
    || { cat "$work/run-$1.log"; exit 1; }
  # (podman still says it cannot reach systemd for health timers; they are run below.)
}
start_replica $A "$PORT" $((PORT + 2))
start_replica $B $((PORT + 1)) $((PORT + 3))
for c in $A $B; do
  # The image's HEALTHCHECK: `ticketd health` inside the container.
  for i in $(seq 1 60); do
    podman_ healthcheck run $c >/dev/null 2>&1 && break
    [ "$i" = 60 ] && { echo "$c never became healthy" >&2; exit 1; }
    sleep 0.5
  done
  echo "$c healthy"
done

step "WatchTicket across replicas, SIGTERM mid-stream, resume on the other"
python3 -c "import grpc, grpc_tools" 2>/dev/null || python3 -m pip install --quiet grpcio grpcio-tools
python3 -m grpc_tools.protoc -I proto --python_out="$work" --grpc_python_out="$work" proto/ticketd/v1/*.proto
STORE_TOKEN="$(podman_ exec $A ticketd token --role requester --sub tienda-1 --account acme)" \
AGENT_TOKEN="$(podman_ exec $A ticketd token --role agent --sub ana)" \
  python3 deploy/smoke_client.py "$work" "127.0.0.1:$PORT" "127.0.0.1:$((PORT + 1))" $B

status="$(podman_ wait $B)"
[ "$status" = 0 ] || { echo "$B exited with $status after SIGTERM" >&2; exit 1; }
echo "$B drained and exited 0"
podman_ logs $B 2>&1 | grep -q '"message":"ticketd stopped"' || { echo "$B did not log its stop" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$((PORT + 2))/metrics" | grep -E '^ticketd_grpc_(requests_total|open_streams).*WatchTicket' \
  || { echo "replica A's metrics do not show the resumed stream" >&2; exit 1; }
echo "smoke test passed in $(( $(date +%s) - started ))s (image build ${build_seconds}s)"
