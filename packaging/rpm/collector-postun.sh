# aiscout-collector %postun ($1: 0 erase, 1 upgrade): restart the new version after an upgrade.
# On erase the state directory (the inventory database) and the user stay, as rpm packages
# leave them: `rm -rf /var/lib/aiscout-collector; userdel aiscout-collector` removes them.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart aiscout-collector.service >/dev/null 2>&1 || :
	fi
fi
exit 0
