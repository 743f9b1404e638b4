#!/usr/bin/env bash
# Validates deploy/ offline: every Kubernetes manifest against the Kubernetes
# API schemas (kubernetes-validate, strict: unknown fields fail), the
# kustomization's resource list, and compose.yaml against the compose
# specification (check-jsonschema's vendored compose-spec schema). Then checks
# that the validators do fail: a manifest and a compose file with a misspelt
# field must be refused, or this script fails.
set -euo pipefail
cd "$(dirname "$0")"
# The oldest Kubernetes these manifests are meant for (grpc probes are GA since 1.27).
K8S_VERSION="${K8S_VERSION:-1.30.0}"
manifests=()
for f in k8s/*.yaml; do [ "$f" = k8s/kustomization.yaml ] || manifests+=("$f"); done

echo "Kubernetes $K8S_VERSION schemas:"
kubernetes-validate --strict --quiet -k "$K8S_VERSION" "${manifests[@]}"
echo "  ${#manifests[@]} files valid"

echo "kustomization resources:"
python3 - <<'PY'
import pathlib, sys, yaml
k = yaml.safe_load(open("k8s/kustomization.yaml"))
missing = [r for r in k["resources"] if not pathlib.Path("k8s", r).is_file()]
listed = set(k["resources"]) | {"kustomization.yaml", "secret.example.yaml"}
unlisted = [p.name for p in pathlib.Path("k8s").glob("*.yaml") if p.name not in listed]
if missing or unlisted:
    sys.exit(f"kustomization.yaml: missing {missing}, not listed {unlisted}")
print(f"  {len(k['resources'])} resources, all present")
PY

echo "compose specification:"
check-jsonschema --builtin-schema vendor.compose-spec compose.yaml

echo "compose interpolation (podman-compose config): secrets required, and resolved when given:"
if env -u POSTGRES_PASSWORD -u TICKETD_JWT_SECRET podman-compose -f compose.yaml config >/dev/null 2>&1; then
  echo "compose.yaml resolved without POSTGRES_PASSWORD and TICKETD_JWT_SECRET" >&2; exit 1
fi
resolved="$(POSTGRES_PASSWORD=example TICKETD_JWT_SECRET=example-secret-example-secret-32b \
  podman-compose -f compose.yaml config)"
grep -q 'TICKETD_DATABASE_URL: postgres://ticketd:example@postgres:5432/ticketd' <<<"$resolved"
echo "  ok"

echo "the validators refuse invalid files:"
bad="$(mktemp -d)"
trap 'rm -rf "$bad"' EXIT
sed 's/terminationGracePeriodSeconds:/terminationGracePeriodSecond:/' k8s/deployment.yaml >"$bad/deployment.yaml"
if kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$bad/deployment.yaml" >/dev/null 2>&1; then
  echo "kubernetes-validate accepted a misspelt field" >&2; exit 1
fi
sed 's/^    healthcheck: &ticketd-health/    healthchek: \&ticketd-health/' compose.yaml >"$bad/compose.yaml"
if check-jsonschema --builtin-schema vendor.compose-spec "$bad/compose.yaml" >/dev/null 2>&1; then
  echo "check-jsonschema accepted a misspelt compose field" >&2; exit 1
fi
echo "  a misspelt field fails both"
