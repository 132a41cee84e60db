#!/usr/bin/env bash
# Checks the deployment manifests that cannot run on this machine, offline:
#   1. Kubernetes (packaging/kubernetes/*.yaml): kubernetes-validate from PyPI, --strict
#      (unknown fields are errors), against the oldest and the newest Kubernetes it is held to
#      (1.30: the first with securityContext.appArmorProfile; 1.37: the newest schemas the
#      package ships), with no network (run in a network namespace of its own when `unshare`
#      can make one); then scripts/check-k8s-agent.py (scan roots = read-only host mounts,
#      capabilities, GPU scheduling) and `aiscout-agent validate` of the ConfigMap's agent.toml;
#   2. the Puppet, Salt and Chef snippets of docs/rollout.md: syntax, and their agent.toml
#      templates rendered and validated by the agent (scripts/check-cm-snippets.sh);
#   3. macOS profiles (packaging/macos/*.mobileconfig): parsed as property lists with Python's
#      plistlib, required payload keys, unique UUIDs (scripts/check-mobileconfig.py); the
#      configure script's shell syntax.
# Fails on any error. The agent binary is $AISCOUT_AGENT, else target/debug/aiscout-agent
# (scripts/test.sh builds it first); without it the agent.toml checks are skipped, and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
ensure_venv manifests "$root/var/manifests-venv" "$root/scripts/manifests-requirements.txt"
py="$root/var/manifests-venv/bin/python"

echo "== kubernetes-validate ($("$root/var/manifests-venv/bin/kubernetes-validate" --version))"
offline=()
if unshare -n true 2>/dev/null; then
  offline=(unshare -n)
  echo "(in a network namespace with no interface but lo: no network)"
else
  echo "(unshare -n unavailable here: run without isolation; the schemas are in the package)"
fi
manifests=(packaging/kubernetes/*.yaml)
resources=$("$py" -c 'import sys, yaml; print(sum(1 for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d))' "${manifests[@]}")
for version in 1.30.0 1.37.0; do
  "${offline[@]}" "$root/var/manifests-venv/bin/kubernetes-validate" --strict --quiet \
    -k "$version" "${manifests[@]}"
  echo "kubernetes $version: $resources resources in ${#manifests[@]} files valid (strict)"
done

echo "== the agent DaemonSet: roots, mounts, privileges, scheduling"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" scripts/check-k8s-agent.py packaging/kubernetes/agent-daemonset.yaml "$tmp/agent.toml"
agent=${AISCOUT_AGENT:-$root/target/debug/aiscout-agent}
if [ -x "$agent" ]; then
  "$agent" validate --config "$tmp/agent.toml" | sed "s#$tmp/#ConfigMap aiscout-agent: #"
else
  echo "SKIPPED: aiscout-agent validate of the ConfigMap's agent.toml ($agent not built)"
fi

echo "== Puppet, Salt and Chef snippets of docs/rollout.md"
if [ -x "$agent" ]; then
  scripts/check-cm-snippets.sh "$agent" "$py"
else
  echo "SKIPPED: the snippets' rendered agent.toml need $agent"
fi

echo "== macOS configuration profiles"
python3 scripts/check-mobileconfig.py packaging/macos/*.mobileconfig
sh -n packaging/macos/aiscout-configure.sh
echo "packaging/macos/aiscout-configure.sh: shell syntax valid (not run: it needs macOS)"
