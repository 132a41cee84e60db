# aiscout-collector %post ($1: 1 install, 2 upgrade): the state directory, then enable and start
# on first install. The configuration's owner and mode come from the package (root,
# group aiscout-collector, 0640).
install -d -o aiscout-collector -g aiscout-collector -m 0700 /var/lib/aiscout-collector
chown aiscout-collector:aiscout-collector /var/lib/aiscout-collector
chmod 0700 /var/lib/aiscout-collector
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -eq 1 ]; then
		systemctl enable --now aiscout-collector.service >/dev/null 2>&1 || :
	fi
elif [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
	systemctl enable aiscout-collector.service >/dev/null 2>&1 || :
fi
exit 0
