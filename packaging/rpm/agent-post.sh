# aiscout-agent %post ($1: 1 install, 2 upgrade): the state directory, the link the unit
# starts (reset to the packaged binary on every install and upgrade: the package manager wins
# over a self-update), then enable and start on first install.
install -d -o aiscout -g aiscout -m 0700 /var/lib/aiscout
chown aiscout:aiscout /var/lib/aiscout
chmod 0700 /var/lib/aiscout
install -d -o aiscout -g aiscout -m 0700 /var/lib/aiscout/bin
ln -sfn /usr/bin/aiscout-agent /var/lib/aiscout/bin/aiscout-agent.new
mv -Tf /var/lib/aiscout/bin/aiscout-agent.new /var/lib/aiscout/bin/aiscout-agent
chown -h aiscout:aiscout /var/lib/aiscout/bin/aiscout-agent
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -eq 1 ]; then
		systemctl enable --now aiscout-agent.service >/dev/null 2>&1 || :
	fi
elif [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
	systemctl enable aiscout-agent.service >/dev/null 2>&1 || :
fi
exit 0
