#!/bin/sh
# Turns the managed preferences of aiscout-agent-settings.mobileconfig (domain com.aiscout.agent)
# into the agent's files, checks them, and restarts the launch daemon. Run as root by the MDM
# (Jamf policy script, Intune shell script, Kandji custom script) after the profile is installed
# and after it changes; running it again changes nothing when the preferences did not change.
#
# UNTESTED: no Mac was available where this was written, and the agent does not build for macOS
# yet (docs/rollout.md, "macOS MDM"). The paths are those of the launch daemon
# (packaging/macos/com.aiscout.agent.plist) and the profiles:
#   /usr/local/bin/aiscout-agent                           the agent (PPPC: Full Disk Access)
#   /Library/Application Support/aiscout/agent.toml        its configuration
#   /Library/Application Support/aiscout/collector-ca.pem  the collector's CA
#   /Library/Application Support/aiscout/state             its state directory, and the token
#                                                          file in it (a path with no symbolic
#                                                          link: the agent refuses a token
#                                                          reached through one, and /etc and
#                                                          /var are links on macOS)
#   com.aiscout.agent                                      the launch daemon's label
set -eu

prefs="/Library/Managed Preferences/com.aiscout.agent.plist"
agent=/usr/local/bin/aiscout-agent
conf_dir="/Library/Application Support/aiscout"
state_dir="$conf_dir/state"
label=com.aiscout.agent

if [ ! -f "$prefs" ]; then
	echo "aiscout-configure: $prefs: not there (is the settings profile installed?)" >&2
	exit 1
fi
pref() { /usr/bin/plutil -extract "$1" raw -o - "$prefs"; }

umask 077
mkdir -p "$conf_dir" "$state_dir"
chmod 0755 "$conf_dir"
chmod 0700 "$state_dir"

# Replaces $1 with the content of $1.new when they differ; returns 0 when it replaced it.
replace_if_changed() {
	if [ -f "$1" ] && cmp -s "$1" "$1.new"; then
		rm -f "$1.new"
		return 1
	fi
	mv -f "$1.new" "$1"
}

changed=no
pref CollectorCA >"$conf_dir/collector-ca.pem.new"
chmod 0644 "$conf_dir/collector-ca.pem.new"
replace_if_changed "$conf_dir/collector-ca.pem" && changed=yes

cat >"$conf_dir/agent.toml.new" <<TOML
# Written by aiscout-configure.sh from the managed preferences com.aiscout.agent.
state_dir = "$state_dir"

[collector]
url = "$(pref CollectorURL)"
ca_file = "$conf_dir/collector-ca.pem"
enrollment_token_file = "$state_dir/enrollment.token"
TOML
chmod 0644 "$conf_dir/agent.toml.new"
if ! "$agent" validate --config "$conf_dir/agent.toml.new"; then
	rm -f "$conf_dir/agent.toml.new"
	exit 64
fi
replace_if_changed "$conf_dir/agent.toml" && changed=yes

# The token only while the agent is not enrolled (tls/agent.crt is its certificate).
if [ ! -f "$state_dir/tls/agent.crt" ]; then
	pref EnrollmentToken >"$state_dir/enrollment.token"
	chmod 0600 "$state_dir/enrollment.token"
	changed=yes
fi

if [ "$changed" = yes ]; then
	/bin/launchctl kickstart -k "system/$label"
fi
