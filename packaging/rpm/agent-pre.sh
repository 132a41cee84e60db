# aiscout-agent %pre: the system user and group (no login shell, home the state directory).
getent group aiscout >/dev/null || groupadd -r aiscout
getent passwd aiscout >/dev/null || \
	useradd -r -g aiscout -d /var/lib/aiscout -M -s /sbin/nologin -c "aiscout agent" aiscout
exit 0
