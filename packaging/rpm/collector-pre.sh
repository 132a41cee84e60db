# aiscout-collector %pre: the system user and group (no login shell, home the state directory).
getent group aiscout-collector >/dev/null || groupadd -r aiscout-collector
getent passwd aiscout-collector >/dev/null || \
	useradd -r -g aiscout-collector -d /var/lib/aiscout-collector -M -s /sbin/nologin \
		-c "aiscout collector" aiscout-collector
exit 0
