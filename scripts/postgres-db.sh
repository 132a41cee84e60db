#!/usr/bin/env bash
# A fresh PostgreSQL database for one test run, on the server of this machine
# (127.0.0.1:5432, trust authentication).
#   scripts/postgres-db.sh create   starts the server if it is down, creates a database with a
#                                   new name and prints its URL
#   scripts/postgres-db.sh drop URL drops that database (every connection to it ends)
set -euo pipefail
HOST=127.0.0.1
PORT=5432
ADMIN=${AISCOUT_PG_ADMIN_USER:-root}

case "${1:-}" in
  create)
    if ! pg_isready -q -h "$HOST" -p "$PORT"; then
      echo "postgresql is down: starting it" >&2
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start >&2
      for _ in $(seq 1 30); do pg_isready -q -h "$HOST" -p "$PORT" && break; sleep 1; done
    fi
    db="aiscout_test_$(date +%s)_$$"
    createdb -h "$HOST" -p "$PORT" -U "$ADMIN" "$db"
    # The search index's extension, once for the database (test schemas find it in public).
    psql -q -h "$HOST" -p "$PORT" -U "$ADMIN" -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public" >&2
    echo "postgres://$ADMIN@$HOST:$PORT/$db"
    ;;
  drop)
    url=${2:?usage: postgres-db.sh drop URL}
    db=${url##*/}
    case "$db" in aiscout_test_*) ;; *) echo "refusing to drop $db: not a test database" >&2; exit 2 ;; esac
    dropdb -h "$HOST" -p "$PORT" -U "$ADMIN" --if-exists --force "$db"
    ;;
  *)
    echo "usage: $0 create | drop URL" >&2
    exit 64
    ;;
esac
