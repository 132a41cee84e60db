# aiscout-agent %postun ($1: 0 erase, 1 upgrade): restart the new version after an upgrade; on
# erase remove the link the unit started. The state directory (enrollment, spool) and the user
# stay, as rpm packages leave them: `rm -rf /var/lib/aiscout; userdel aiscout` removes them.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart aiscout-agent.service >/dev/null 2>&1 || :
	fi
fi
if [ "$1" -eq 0 ]; then
	rm -rf /var/lib/aiscout/bin
fi
exit 0
