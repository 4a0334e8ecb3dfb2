#!/usr/bin/env bash
# Starts the local database servers the tests use, if they are not running, and creates the test
# databases. Safe to run again. The commands are the ones this machine's services are started with.
set -uo pipefail

wait_for() {  # wait_for NAME COMMAND...: poll for up to 60 s
  local name=$1; shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
    sleep 0.5
  done
  echo "services: $name did not come up" >&2
  return 1
}

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi
wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432 || exit 1

if ! mysqladmin -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
wait_for MariaDB mysqladmin -h 127.0.0.1 -P 3306 -uroot ping || exit 1

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping || exit 1

# The test databases (the contract suite uses fresh ids, so they are never wiped).
psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" \
  | grep -q 1 || psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test" || exit 1
mariadb -h 127.0.0.1 -P 3306 -uroot -e "CREATE DATABASE IF NOT EXISTS test" || exit 1

# The user's document's examples connect as user/password to databases named adk_sessions
# (PostgreSQL, MySQL) and database (AlloyDB); create them so the examples run unchanged.
psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='user'" \
  | grep -q 1 || psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE ROLE \"user\" LOGIN PASSWORD 'password'" || exit 1
for db in adk_sessions database; do
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE \"$db\" OWNER \"user\"" || exit 1
done
mariadb -h 127.0.0.1 -P 3306 -uroot -e "
  CREATE DATABASE IF NOT EXISTS adk_sessions;
  CREATE USER IF NOT EXISTS 'user'@'%' IDENTIFIED BY 'password';
  CREATE USER IF NOT EXISTS 'user'@'localhost' IDENTIFIED BY 'password';
  GRANT ALL PRIVILEGES ON adk_sessions.* TO 'user'@'%';
  GRANT ALL PRIVILEGES ON adk_sessions.* TO 'user'@'localhost';" || exit 1
