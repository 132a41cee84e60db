#!/usr/bin/env bash
# Runs the Ansible role packaging/ansible/roles/aiscout_agent for real on this machine
# (`-c local`), against a collector started here, and checks what it did:
#   1. ansible-core and ansible-lint from PyPI in var/ansible-venv
#      (packaging/ansible/requirements.txt); ansible-lint, production profile, on the role;
#   2. a collector in dev mode on free loopback ports, an enrollment token (put in an
#      ansible-vault variable, as a fleet would) and an API token;
#   3. the play (packaging/ansible/site.yml) with the agent .deb: install, configuration checked
#      by `aiscout-agent validate`, token, post-install check `run --once` as user aiscout;
#      the recap must show failed=0, and the token must appear nowhere in the output;
#   4. the play again: the recap must show changed=0 (the role is idempotent);
#   5. the collector's API: this host enrolled, its inventory arrived (a model the test placed
#      in the scan root among its assets); the token file is gone, the certificate is the
#      agent user's;
#   6. the play with aiscout_agent_state=absent: package purged, nothing of it left;
#   7. always, even on failure: purge the package, stop the collector.
# The agent .deb is $AISCOUT_AGENT_DEB, else the newest target/packages/aiscout-agent_*.deb,
# built by scripts/package.sh when there is none. The collector is $AISCOUT_COLLECTOR, else
# target/debug/aiscout-collector or the one scripts/package.sh built (built when neither is).
# Refuses to run where aiscout-agent is installed already: it purges the package at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# ansible-core refuses to start without a UTF-8 locale.
export LC_ALL=C.UTF-8 LANG=C.UTF-8

say() { echo "test-ansible: $*"; }
die() { echo "test-ansible: FAIL: $*" >&2; exit 1; }

# One test at a time installs and purges aiscout packages on this machine: scripts that do
# (this one, the packaging tests) take this lock, and wait up to 15 minutes for it.
exec 9>/run/lock/aiscout-packages.lock
flock -w 900 9 || die "another test holds /run/lock/aiscout-packages.lock for more than 15 minutes"

if dpkg-query -W -f='${Status}' aiscout-agent 2>/dev/null | grep -q 'install ok installed'; then
  die "aiscout-agent is installed on this machine; this test installs and purges it: remove it first"
fi
for p in /etc/aiscout/agent.toml /etc/aiscout/collector-ca.pem; do
  [ ! -e "$p" ] || die "$p exists (an earlier install?); this test would remove it: remove it first"
done

# --- 1. ansible-core
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
ensure_venv ansible "$root/var/ansible-venv" "$root/packaging/ansible/requirements.txt"
bin="$root/var/ansible-venv/bin"
say "$("$bin/ansible-playbook" --version | sed -n 1p)"
# The role against ansible-lint's strictest profile; --offline: no Galaxy look-ups.
lint_rc=0
(cd packaging/ansible && PATH="$bin:$PATH" ANSIBLE_HOME="$root/var/ansible-lint-home" "$bin/ansible-lint" \
  --offline --profile production --nocolor site.yml roles/aiscout_agent) >"$root/var/ansible-lint.log" 2>&1 || lint_rc=$?
grep -v '^WARNING  Directory expansion\|^$' "$root/var/ansible-lint.log" | sed 's/^/test-ansible: ansible-lint: /' || true
[ "$lint_rc" = 0 ] || die "ansible-lint found problems in the role"

# --- the agent package and the collector
deb=${AISCOUT_AGENT_DEB:-}
if [ -z "$deb" ]; then
  newest_deb() { find "$root/target/packages" -maxdepth 1 -name 'aiscout-agent_*.deb' 2>/dev/null | sort -V | tail -1; }
  deb=$(newest_deb)
  if [ -z "$deb" ]; then
    [ -x scripts/package.sh ] || die "no target/packages/aiscout-agent_*.deb and no scripts/package.sh to build one"
    say "no agent .deb in target/packages: building the packages (scripts/package.sh)"
    scripts/package.sh
    deb=$(newest_deb)
    [ -n "$deb" ] || die "scripts/package.sh made no target/packages/aiscout-agent_*.deb"
  fi
fi
[ -f "$deb" ] || die "$deb: no such package"
deb=$(realpath "$deb")
collector=${AISCOUT_COLLECTOR:-}
if [ -z "$collector" ]; then
  for c in "$root/target/debug/aiscout-collector" "$root/target/x86_64-unknown-linux-gnu/dist/aiscout-collector"; do
    if [ -x "$c" ]; then collector=$c; break; fi
  done
fi
if [ -z "$collector" ]; then
  say "building target/debug/aiscout-collector"
  cargo build --locked --bin aiscout-collector
  collector=$root/target/debug/aiscout-collector
fi
command -v curl >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq curl >/dev/null; }

work=$(mktemp -d "${TMPDIR:-/tmp}/aiscout-test-ansible.XXXXXX")
chmod 0755 "$work"
# Without the package, /var/lib/aiscout is the cache of `aiscout-agent scan` run as root (the
# end-to-end tests do that): root's, and the package's agent user could not write in it. Kept
# aside while the package is in, put back after.
stashed=
if [ -e /var/lib/aiscout ]; then
  mv /var/lib/aiscout "$work/var-lib-aiscout"
  stashed=yes
  say "moved aside /var/lib/aiscout (a root scan cache, no package): put back at the end"
fi
collector_pid=
played=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null
  if [ -n "$played" ] && dpkg-query -W -f='${Status}' aiscout-agent 2>/dev/null | grep -q 'ok'; then
    dpkg --purge aiscout-agent >"$work/purge.log" 2>&1 || { echo "test-ansible: purge failed:" >&2; cat "$work/purge.log" >&2; }
  fi
  # What the role wrote that the package does not own: the copied package and the CA file.
  rm -rf /var/cache/aiscout
  rm -f /etc/aiscout/collector-ca.pem
  rmdir /etc/aiscout 2>/dev/null
  if [ -n "$stashed" ] && [ ! -e /var/lib/aiscout ]; then mv "$work/var-lib-aiscout" /var/lib/aiscout; fi
  if [ "$rc" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "test-ansible: logs kept in $work" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

# --- 2. the collector, on ports nothing else holds
read -r grpc_port api_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
')
mkdir -m 0700 "$work/collector"
cat >"$work/collector.toml" <<TOML
data_dir = "$work/collector/data"
listen = "127.0.0.1:$grpc_port"
api_listen = "127.0.0.1:$api_port"
[tls]
dev = true
TOML
"$collector" --config "$work/collector.toml" serve >"$work/collector.log" 2>&1 &
collector_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null && break
  kill -0 "$collector_pid" 2>/dev/null || { cat "$work/collector.log" >&2; die "the collector stopped at start"; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null || die "the collector does not answer on 127.0.0.1:$api_port"
# The ports were free a moment ago and ours is still alive: the answer came from it.
kill -0 "$collector_pid" 2>/dev/null || { cat "$work/collector.log" >&2; die "the collector stopped after answering"; }
say "collector pid $collector_pid on 127.0.0.1:$grpc_port (gRPC) and :$api_port (API)"
token=$("$collector" --config "$work/collector.toml" token create --uses 1 --ttl 1h --label test-ansible)
api_token=$("$collector" --config "$work/collector.toml" api-token create --label test-ansible)

# A scan root with one small model (safetensors: header length, JSON header, 8 bytes of data).
mkdir -p "$work/models"
python3 - "$work/models/tiny.safetensors" <<'PY'
import json, struct, sys
header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0))
PY

# --- the play's inputs: variables, the token in a vault, an inventory for this machine
printf 'test-ansible-%s\n' "$RANDOM$RANDOM" >"$work/vault-pass"
chmod 0600 "$work/vault-pass"
"$bin/ansible-vault" encrypt_string --vault-password-file "$work/vault-pass" \
  --name vault_aiscout_enrollment_token "$token" >"$work/vault.yml" 2>/dev/null
python3 - "$work/vars.yml" "$deb" "$grpc_port" "$work/collector/data/pki/ca.pem" "$work/models" <<'PY'
import json, sys
out, deb, port, ca, models = sys.argv[1:]
# JSON is YAML: no quoting to get wrong.
json.dump({
    "aiscout_agent_package_file": deb,
    "aiscout_agent_collector_url": f"https://127.0.0.1:{port}",
    "aiscout_agent_collector_ca_pem": open(ca).read(),
    "aiscout_agent_scan_roots": [models],
    "aiscout_agent_cpu_percent": 100,
}, open(out, "w"), indent=1)
PY
cat >"$work/inventory.yml" <<YAML
aiscout_agents:
  hosts:
    localhost:
      ansible_python_interpreter: /usr/bin/python3
YAML

play() {
  ANSIBLE_CONFIG="$root/packaging/ansible/ansible.cfg" ANSIBLE_HOME="$work/ansible-home" \
    ANSIBLE_REMOTE_TMP="$work/ansible-tmp" ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    "$bin/ansible-playbook" -c local -i "$work/inventory.yml" \
    -e @"$work/vars.yml" -e @"$work/vault.yml" --vault-password-file "$work/vault-pass" \
    "${@:2}" "$root/packaging/ansible/site.yml" >"$1" 2>&1
}
recap() { grep -E '^localhost +: ok=' "$1" | tail -1 | tr -s ' '; }
field() { recap "$1" | grep -oE "$2=[0-9]+" | cut -d= -f2; }

# --- 3. first run
say "run 1: ansible-playbook -c local packaging/ansible/site.yml (package $(basename "$deb"))"
start=$(date +%s)
played=yes
play "$work/run1.log" || { cat "$work/run1.log" >&2; die "run 1 failed"; }
say "run 1 ($(( $(date +%s) - start ))s): $(recap "$work/run1.log")"
if [ "$(field "$work/run1.log" failed)" != 0 ] || [ "$(field "$work/run1.log" unreachable)" != 0 ]; then
  cat "$work/run1.log" >&2
  die "run 1: failures in the recap"
fi
[ "$(field "$work/run1.log" changed)" -gt 0 ] || die "run 1 changed nothing: was the package already there?"
if grep -qF "$token" "$work/run1.log"; then die "run 1 printed the enrollment token"; fi
service_mgr=$(ANSIBLE_HOME="$work/ansible-home" "$bin/ansible" localhost -c local -i "$work/inventory.yml" \
  -m ansible.builtin.setup -a 'filter=ansible_service_mgr' 2>/dev/null | grep -oE '"ansible_service_mgr": "[^"]+"' | cut -d'"' -f4)
say "service manager: ${service_mgr:-unknown}"
# Without systemd the post-install check must have run and passed, and the role must say that
# it started no service. (Where systemd started the daemon at install, the role skips the
# check and waits for the daemon's enrollment instead; step 5 checks the collector either way.)
if [ "$service_mgr" != systemd ]; then
  if ! grep -A2 'TASK \[aiscout_agent : Post-install check' "$work/run1.log" | grep -q '^ok:'; then
    cat "$work/run1.log" >&2
    die "run 1: the post-install check did not run and pass"
  fi
  grep -q 'was NOT enabled or started' "$work/run1.log" || die "run 1 did not say that the service was not started"
fi

# --- 4. second run: nothing to change
say "run 2: the same play again"
play "$work/run2.log" || { cat "$work/run2.log" >&2; die "run 2 failed"; }
say "run 2: $(recap "$work/run2.log")"
[ "$(field "$work/run2.log" failed)" = 0 ] || { cat "$work/run2.log" >&2; die "run 2: failures in the recap"; }
if [ "$(field "$work/run2.log" changed)" != 0 ]; then
  grep -B1 -A3 '^changed:' "$work/run2.log" >&2 || true
  die "run 2 changed something: the role is not idempotent"
fi

# --- 5. what the collector and the host show. The post-install check returned after the
# collector acknowledged the inventory, so it is there at once; where systemd runs the daemon
# instead, it may take the daemon a while: wait up to two minutes.
api() { curl -sf -H "Authorization: Bearer $api_token" "http://127.0.0.1:$api_port$1"; }
cat >"$work/check-api.py" <<'PY'
import json, sys
hosts = json.load(open(sys.argv[1]))
models = json.load(open(sys.argv[2]))
name = sys.argv[3]
mine = [h for h in hosts["items"] if h["hostname"] == name]
print(f"test-ansible: /api/v1/hosts total={hosts['total']}; " + "; ".join(
    f"{h['hostname']} {h['agent_id']} version {h['agent_version']} sightings {h['sightings']} status {h['identity_status']}"
    for h in hosts["items"]))
print(f"test-ansible: /api/v1/assets?kind=model total={models['total']}")
problems = []
if hosts["total"] != 1 or len(mine) != 1:
    problems.append(f"expected this host ({name}) alone, got {hosts['total']} hosts")
elif mine[0]["sightings"] < 1:
    problems.append("the host has no sightings")
# The scan root holds one model, tiny.safetensors; the collector is new, so any model is it.
if models["total"] < 1:
    problems.append("no model asset: the inventory did not arrive")
for p in problems:
    print(f"test-ansible: {p}")
sys.exit(1 if problems else 0)
PY
arrived=no
for _ in $(seq 60); do
  if api /api/v1/hosts >"$work/hosts.json" && api "/api/v1/assets?kind=model" >"$work/models.json" \
    && python3 "$work/check-api.py" "$work/hosts.json" "$work/models.json" "$(uname -n)" >"$work/check-api.out" 2>&1; then
    arrived=yes
    break
  fi
  sleep 2
done
cat "$work/check-api.out" 2>/dev/null || true
[ "$arrived" = yes ] || die "the collector does not show this host's inventory"
[ ! -e /var/lib/aiscout/enrollment.token ] || die "the token file is still there after enrolling"
[ "$(stat -c %U /var/lib/aiscout/tls/agent.crt)" = aiscout ] || die "the agent's certificate is not owned by aiscout"
say "token file deleted; /var/lib/aiscout/tls/agent.crt owned by aiscout"

# --- 6. uninstall with the role (the trap purges anyway when a step above failed)
say "run 3: the play with aiscout_agent_state=absent"
play "$work/run3.log" -e aiscout_agent_state=absent || { cat "$work/run3.log" >&2; die "run 3 failed"; }
say "run 3: $(recap "$work/run3.log")"
[ "$(field "$work/run3.log" failed)" = 0 ] || { cat "$work/run3.log" >&2; die "run 3: failures in the recap"; }
if dpkg-query -W -f='${Status}' aiscout-agent 2>/dev/null | grep -q 'ok'; then die "run 3 left the package installed"; fi
for p in /var/lib/aiscout /etc/aiscout/agent.toml /etc/aiscout/collector-ca.pem /var/cache/aiscout; do
  [ ! -e "$p" ] || die "run 3 left $p"
done
if getent passwd aiscout >/dev/null; then die "run 3 left the user aiscout"; fi
say "package purged; no state directory, configuration, CA file or user left"
say "passed"
