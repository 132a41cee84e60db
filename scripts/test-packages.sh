#!/usr/bin/env bash
# Builds the packages (scripts/package.sh) and tests them on this machine, as root
# (docs/rollout.md, "Packages" and "Services"):
#   1. the agent .deb: dpkg -i; files, owner and mode of every path, user and group, unit,
#      enablement, the link the unit starts (and that an upgrade resets it, keeping the
#      edited configuration and the state), --version,
#      validate of the installed configuration (as the service's user, through the link);
#      systemd-analyze verify (no output) and security --offline (agent exposure at most
#      2.5); the capabilities check (scripts/check-capabilities.sh); dpkg --purge and nothing
#      left (files, directories, user, group, enablement links);
#   2. the collector .deb: the same, validate as its user;
#   3. the .rpm files: rpm -qpl (files, owners, modes), -qpR (requirements, glibc floor),
#      --scripts;
#   4. the launchd plist parses (Python's plistlib).
# It purges aiscout-agent and aiscout-collector if they are installed (a previous failed run),
# and again on exit, whatever failed: never run it where those packages are in real use. It
# holds /run/lock/aiscout-packages.lock (flock) while it runs; any other script that installs
# these packages on the same machine must take the same lock.
#
# usage: scripts/test-packages.sh [--no-build]   (--no-build: test target/packages as they are)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/packages
MAX_AGENT_EXPOSURE=2.5
FAILURES=0

say() { printf '== %s\n' "$*"; }
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*" >&2; FAILURES=$((FAILURES + 1)); }
check() { # check DESCRIPTION COMMAND...: runs COMMAND, ok when it succeeds
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
equals() { # equals DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1: $3"; else bad "$1: expected '$2', got '$3'"; fi
}

[ "$(id -u)" -eq 0 ] || { echo "test-packages.sh: must run as root (dpkg -i)" >&2; exit 2; }

# The packages are installed in the machine's one dpkg database: two runs at once (or another
# script installing aiscout packages, e.g. the Ansible role's test) would purge each other's
# install mid-check. Every such script takes this lock for as long as it installs.
LOCK=/run/lock/aiscout-packages.lock
exec 9>"$LOCK"
if ! flock -w 1800 9; then
  echo "test-packages.sh: $LOCK still held after 30 min" >&2
  exit 1
fi

purge_all() {
  dpkg --purge aiscout-agent aiscout-collector >/dev/null 2>&1 || true
}
trap purge_all EXIT
purge_all

if [ "${1:-}" != "--no-build" ]; then
  scripts/package.sh
fi
if ! command -v rpm >/dev/null || ! command -v cpio >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq rpm cpio >/dev/null
fi

one() { # one GLOB: the single file matching GLOB
  local matches
  # shellcheck disable=SC2206 # the glob is meant to expand
  matches=($1)
  if [ "${#matches[@]}" -ne 1 ] || [ ! -e "${matches[0]}" ]; then
    echo "test-packages.sh: expected one $1" >&2
    exit 1
  fi
  echo "${matches[0]}"
}
AGENT_DEB=$(one "$OUT/aiscout-agent_*_amd64.deb")
AGENT_DDEB=$(one "$OUT/aiscout-agent-dbgsym_*_amd64.ddeb")
COLLECTOR_DEB=$(one "$OUT/aiscout-collector_*_amd64.deb")
COLLECTOR_DDEB=$(one "$OUT/aiscout-collector-dbgsym_*_amd64.ddeb")
AGENT_RPM=$(one "$OUT/aiscout-agent-*.x86_64.rpm")
COLLECTOR_RPM=$(one "$OUT/aiscout-collector-*.x86_64.rpm")

# mode_of PATH: "owner:group mode type" as stat prints them, for a path that may not exist.
mode_of() { stat -c '%U:%G %a %F' "$1" 2>/dev/null || echo missing; }

# check_paths PACKAGE: every path dpkg installed has the owner and mode the package means:
# root:root, directories 755, /usr/bin 755, /etc/aiscout/collector.toml 640 (its group set by
# postinst), everything else 644.
check_paths() {
  local pkg=$1 path want got
  while IFS= read -r path; do
    [ "$path" = "/." ] && continue
    case "$path" in
      /usr/bin/*) want="root:root 755 regular file" ;;
      /etc/aiscout/collector.toml) want="root:aiscout-collector 640 regular file" ;;
      *) if [ -d "$path" ]; then want="root:root 755 directory"; else want="root:root 644 regular file"; fi ;;
    esac
    got=$(mode_of "$path")
    if [ "$got" = "$want" ]; then ok "$path: $got"; else bad "$path: expected '$want', got '$got'"; fi
  done < <(dpkg -L "$pkg")
}

# check_unit UNIT: installed as packaged, enabled the way deb-systemd-helper does it without a
# running systemd, and clean for systemd-analyze verify; prints its exposure score.
check_unit() {
  local unit=$1 out
  check "$unit installed as packaging/systemd/$unit" cmp "packaging/systemd/$unit" "/usr/lib/systemd/system/$unit"
  # deb-systemd-helper links /lib/systemd/system/UNIT, the same file where /lib is usr/lib.
  equals "$unit enabled (multi-user.target.wants)" "/usr/lib/systemd/system/$unit" \
    "$(readlink -f "/etc/systemd/system/multi-user.target.wants/$unit" || echo none)"
  if out=$(systemd-analyze verify --man=no "/usr/lib/systemd/system/$unit" 2>&1) && [ -z "$out" ]; then
    ok "systemd-analyze verify $unit: no output"
  else
    bad "systemd-analyze verify $unit: $out"
  fi
  EXPOSURE=$(systemd-analyze security --offline=yes "/usr/lib/systemd/system/$unit" 2>&1 \
    | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
  if [ -n "$EXPOSURE" ]; then
    ok "systemd-analyze security --offline=yes $unit: exposure $EXPOSURE"
  else
    bad "systemd-analyze security $unit: no score"
  fi
}

# check_user NAME HOME: a system user and its own group, no login shell.
check_user() {
  local name=$1 home=$2 entry uid
  entry=$(getent passwd "$name" || true)
  [ -n "$entry" ] || { bad "user $name missing"; return; }
  uid=$(echo "$entry" | cut -d: -f3)
  check "user $name is a system user (uid $uid < 1000)" test "$uid" -lt 1000
  equals "user $name home" "$home" "$(echo "$entry" | cut -d: -f6)"
  equals "user $name shell" "/usr/sbin/nologin" "$(echo "$entry" | cut -d: -f7)"
  equals "user $name primary group" "$name" "$(id -gn "$name")"
}

# check_gone PACKAGE PATHS...: after purge, nothing of it is left.
check_gone() {
  local pkg=$1 p; shift
  check "$pkg: no longer known to dpkg" bash -c "! dpkg -s $pkg"
  for p in "$@"; do
    if [ -e "$p" ] || [ -L "$p" ]; then bad "left after purge: $p"; else ok "gone: $p"; fi
  done
  check "$pkg: no deb-systemd-helper state" bash -c "! ls /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q $pkg"
}

# check_stripped BINARY DDEB: no debug sections in the binary, its symbols in the -dbgsym
# package under its build ID.
check_stripped() {
  local bin=$1 ddeb=$2 id
  check "$bin has no .debug_info" bash -c "! readelf -S '$bin' | grep -q '\.debug_info'"
  id=$(readelf -n "$bin" | sed -n 's/.*Build ID: \([0-9a-f]*\)/\1/p')
  [ -n "$id" ] || { bad "$bin: no build ID"; return; }
  check "$(basename "$ddeb") holds .build-id/${id:0:2}/${id:2}.debug" \
    bash -c "dpkg-deb -c '$ddeb' | grep -q 'usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug'"
}

# ---------------------------------------------------------------------------------------------
say "agent: dpkg -i $(basename "$AGENT_DEB")"
dpkg -i "$AGENT_DEB"
equals "installed files" \
  "/etc/aiscout/agent.toml /usr/bin/aiscout-agent /usr/lib/systemd/system/aiscout-agent.service /usr/share/doc/aiscout-agent/README.md /usr/share/doc/aiscout-agent/agent.example.toml /usr/share/doc/aiscout-agent/copyright" \
  "$(dpkg -L aiscout-agent | while read -r p; do [ -f "$p" ] && echo "$p"; done | sort | tr '\n' ' ' | sed 's/ $//')"
equals "conffiles" "/etc/aiscout/agent.toml" "$(dpkg-query -W -f='${Conffiles}' aiscout-agent | awk 'NF {print $1}')"
check_paths aiscout-agent
check_user aiscout /var/lib/aiscout
equals "/var/lib/aiscout" "aiscout:aiscout 700 directory" "$(mode_of /var/lib/aiscout)"
equals "/var/lib/aiscout/bin" "aiscout:aiscout 700 directory" "$(mode_of /var/lib/aiscout/bin)"
equals "/var/lib/aiscout/bin/aiscout-agent" "/usr/bin/aiscout-agent" "$(readlink /var/lib/aiscout/bin/aiscout-agent)"
check_unit aiscout-agent.service
AGENT_EXPOSURE=$EXPOSURE
if awk -v e="$AGENT_EXPOSURE" -v m="$MAX_AGENT_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
  ok "agent exposure $AGENT_EXPOSURE <= $MAX_AGENT_EXPOSURE"
else
  bad "agent exposure $AGENT_EXPOSURE > $MAX_AGENT_EXPOSURE"
fi
version=$(aiscout-agent --version)
equals "aiscout-agent --version" "aiscout-agent $(dpkg-query -W -f='${Version}' aiscout-agent | sed 's/-[^-]*$//')" "$version"
check "aiscout-agent validate --config /etc/aiscout/agent.toml" aiscout-agent validate --config /etc/aiscout/agent.toml
# ExecStartPre as the unit runs it: user aiscout, the two ambient capabilities, through the link.
check "ExecStartPre as user aiscout with the unit's capabilities" \
  setpriv --reuid=aiscout --regid=aiscout --init-groups --no-new-privs \
  --inh-caps=-all,+dac_read_search,+sys_ptrace --ambient-caps=-all,+dac_read_search,+sys_ptrace \
  --bounding-set=-all,+dac_read_search,+sys_ptrace -- \
  /var/lib/aiscout/bin/aiscout-agent validate --config /etc/aiscout/agent.toml
check_stripped /usr/bin/aiscout-agent "$AGENT_DDEB"
# Upgrade: the same binary repackaged as revision 99 (cargo deb --deb-version). A self-update
# had moved the link and the administrator had edited the configuration: the upgrade points
# the link at the packaged binary again and keeps the edit, the state and the user.
upgrade_dir=$(mktemp -d)
cargo deb --no-build --locked --target x86_64-unknown-linux-gnu --profile dist -p aiscout-agent \
  --deb-version "$(dpkg-query -W -f='${Version}' aiscout-agent | sed 's/-[^-]*$//')-99" --output "$upgrade_dir/" >/dev/null
ln -sfn /bin/false /var/lib/aiscout/bin/aiscout-agent
touch /var/lib/aiscout/enrolled-marker
echo "# edited by the administrator" >>/etc/aiscout/agent.toml
dpkg -i "$upgrade_dir"/aiscout-agent_*-99_amd64.deb >/dev/null
rm -rf "$upgrade_dir"
equals "version after upgrade" "99" "$(dpkg-query -W -f='${Version}' aiscout-agent | sed 's/.*-//')"
equals "link after upgrade" "/usr/bin/aiscout-agent" "$(readlink /var/lib/aiscout/bin/aiscout-agent)"
check "state kept across the upgrade" test -e /var/lib/aiscout/enrolled-marker
check "edited configuration kept across the upgrade" grep -q "edited by the administrator" /etc/aiscout/agent.toml
check "still valid after the upgrade" aiscout-agent validate --config /etc/aiscout/agent.toml
check_user aiscout /var/lib/aiscout

say "agent: capabilities (scripts/check-capabilities.sh)"
if scripts/check-capabilities.sh /usr/bin/aiscout-agent; then ok "capabilities as documented"; else bad "capabilities differ from docs/rollout.md"; fi

say "agent: dpkg --purge"
dpkg --purge aiscout-agent >/dev/null
check_gone aiscout-agent /usr/bin/aiscout-agent /etc/aiscout/agent.toml /etc/aiscout /var/lib/aiscout \
  /usr/lib/systemd/system/aiscout-agent.service /usr/share/doc/aiscout-agent \
  /etc/systemd/system/multi-user.target.wants/aiscout-agent.service
check "user aiscout removed" bash -c "! getent passwd aiscout"
check "group aiscout removed" bash -c "! getent group aiscout"

# ---------------------------------------------------------------------------------------------
say "collector: dpkg -i $(basename "$COLLECTOR_DEB")"
dpkg -i "$COLLECTOR_DEB"
equals "installed files" \
  "/etc/aiscout/collector.toml /usr/bin/aiscout-collector /usr/lib/systemd/system/aiscout-collector.service /usr/share/doc/aiscout-collector/collector.example.toml /usr/share/doc/aiscout-collector/collector.md /usr/share/doc/aiscout-collector/copyright" \
  "$(dpkg -L aiscout-collector | while read -r p; do [ -f "$p" ] && echo "$p"; done | sort | tr '\n' ' ' | sed 's/ $//')"
equals "conffiles" "/etc/aiscout/collector.toml" "$(dpkg-query -W -f='${Conffiles}' aiscout-collector | awk 'NF {print $1}')"
check_paths aiscout-collector
check_user aiscout-collector /var/lib/aiscout-collector
equals "/var/lib/aiscout-collector" "aiscout-collector:aiscout-collector 700 directory" "$(mode_of /var/lib/aiscout-collector)"
check_unit aiscout-collector.service
COLLECTOR_EXPOSURE=$EXPOSURE
version=$(aiscout-collector --version)
equals "aiscout-collector --version" "aiscout-collector $(dpkg-query -W -f='${Version}' aiscout-collector | sed 's/-[^-]*$//')" "$version"
check "ExecStartPre as user aiscout-collector: validate /etc/aiscout/collector.toml" \
  setpriv --reuid=aiscout-collector --regid=aiscout-collector --init-groups --no-new-privs --inh-caps=-all \
  --bounding-set=-all -- /usr/bin/aiscout-collector --config /etc/aiscout/collector.toml validate
check_stripped /usr/bin/aiscout-collector "$COLLECTOR_DDEB"

say "collector: dpkg --purge"
dpkg --purge aiscout-collector >/dev/null
check_gone aiscout-collector /usr/bin/aiscout-collector /etc/aiscout/collector.toml /etc/aiscout \
  /var/lib/aiscout-collector /usr/lib/systemd/system/aiscout-collector.service \
  /usr/share/doc/aiscout-collector /etc/systemd/system/multi-user.target.wants/aiscout-collector.service
check "user aiscout-collector removed" bash -c "! getent passwd aiscout-collector"
check "group aiscout-collector removed" bash -c "! getent group aiscout-collector"

# ---------------------------------------------------------------------------------------------
say "rpm: $(basename "$AGENT_RPM"), $(basename "$COLLECTOR_RPM")"
# aiscout_version NAME RPM: what NAME --version prints for the package's version.
aiscout_version() { echo "$1 $(rpm -qp --qf '%{VERSION}' "$2" 2>/dev/null)"; }
# rpm_files RPM: "mode owner group path" for each file (rpm -qplv cuts group names at 8).
rpm_files() { rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]' "$1" 2>/dev/null; }
equals "agent rpm files" \
  "-rw-r--r-- root root /etc/aiscout/agent.toml|-rwxr-xr-x root root /usr/bin/aiscout-agent|-rw-r--r-- root root /usr/lib/systemd/system/aiscout-agent.service|-rw-r--r-- root root /usr/share/doc/aiscout-agent/agent.example.toml" \
  "$(rpm_files "$AGENT_RPM" | sort -k4 | paste -sd'|')"
equals "collector rpm files" \
  "-rw-r----- root aiscout-collector /etc/aiscout/collector.toml|-rwxr-xr-x root root /usr/bin/aiscout-collector|-rw-r--r-- root root /usr/lib/systemd/system/aiscout-collector.service|-rw-r--r-- root root /usr/share/doc/aiscout-collector/collector.example.toml" \
  "$(rpm_files "$COLLECTOR_RPM" | sort -k4 | paste -sd'|')"
equals "agent rpm config files" "/etc/aiscout/agent.toml" "$(rpm -qpc "$AGENT_RPM" 2>/dev/null)"
equals "collector rpm config files" "/etc/aiscout/collector.toml" "$(rpm -qpc "$COLLECTOR_RPM" 2>/dev/null)"
for rpmfile in "$AGENT_RPM" "$COLLECTOR_RPM"; do
  name=$(basename "$rpmfile")
  requires=$(rpm -qpR "$rpmfile" 2>/dev/null)
  while IFS= read -r line; do printf '    requires: %s\n' "$line"; done <<<"$requires"
  for need in /bin/sh /usr/sbin/useradd /usr/sbin/groupadd; do
    check "$name requires $need" grep -qx "$need" <<<"$requires"
  done
  highest=$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$requires" | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  if [ -z "$highest" ] || [ "$(printf '2.17\n%s\n' "$highest" | sort -V | tail -n 1)" = 2.17 ]; then
    ok "$name: highest GLIBC_ requirement ${highest:-none} <= 2.17"
  else
    bad "$name: requires GLIBC_$highest"
  fi
  scripts=$(rpm -qp --scripts "$rpmfile" 2>/dev/null)
  for part in "preinstall scriptlet" "postinstall scriptlet" "preuninstall scriptlet" "postuninstall scriptlet" \
    useradd "systemctl enable" "systemctl disable" "try-restart"; do
    check "$name scripts: $part" grep -q "$part" <<<"$scripts"
  done
done
check "agent rpm %post resets the link" grep -q "ln -sfn /usr/bin/aiscout-agent" <<<"$(rpm -qp --scripts "$AGENT_RPM" 2>/dev/null)"
check "agent rpm binary is stripped, with a debuglink" bash -c \
  "rpm2cpio '$AGENT_RPM' | (cd \$(mktemp -d) && cpio -idm --quiet && ! readelf -S usr/bin/aiscout-agent | grep -q '\.debug_info' && readelf -S usr/bin/aiscout-agent | grep -q gnu_debuglink)"

# rpm itself unpacks them: into an empty root with its own database (no scriptlets: that root
# has no shell or useradd), then the packed binaries run.
rpm_root=$(mktemp -d)
rpm --root "$rpm_root" --initdb
if rpm --root "$rpm_root" -i --nodeps --noscripts --nosignature "$AGENT_RPM" "$COLLECTOR_RPM" 2>"$rpm_root.err"; then
  ok "rpm -i of both into an empty root"
else
  bad "rpm -i of both into an empty root: $(cat "$rpm_root.err")"
fi
equals "agent from the rpm: --version" "$(aiscout_version aiscout-agent "$AGENT_RPM")" "$("$rpm_root/usr/bin/aiscout-agent" --version 2>&1)"
check "agent from the rpm: validate its configuration" "$rpm_root/usr/bin/aiscout-agent" validate --config "$rpm_root/etc/aiscout/agent.toml"
equals "collector from the rpm: --version" "$(aiscout_version aiscout-collector "$COLLECTOR_RPM")" "$("$rpm_root/usr/bin/aiscout-collector" --version 2>&1)"
check "rpm -e of both" rpm --root "$rpm_root" -e --nodeps --noscripts aiscout-agent aiscout-collector
rm -rf "$rpm_root" "$rpm_root.err"

# ---------------------------------------------------------------------------------------------
say "launchd plist and Windows service files"
check "packaging/macos/com.aiscout.agent.plist parses (plistlib)" python3 - <<'PY'
import plistlib
with open("packaging/macos/com.aiscout.agent.plist", "rb") as f:
    p = plistlib.load(f)
assert p["Label"] == "com.aiscout.agent", p
assert p["ProgramArguments"][1:] == ["run", "--config", "/Library/Application Support/aiscout/agent.toml"], p
PY

say "summary"
for f in "$OUT"/*; do printf '%10s  %s\n' "$(stat -c %s "$f")" "$(basename "$f")"; done
echo "exposure (systemd-analyze security --offline=yes): agent $AGENT_EXPOSURE, collector $COLLECTOR_EXPOSURE"
if [ "$FAILURES" -ne 0 ]; then
  echo "test-packages.sh: $FAILURES check(s) failed" >&2
  exit 1
fi
echo "test-packages.sh: all package checks passed"
