#!/usr/bin/env bash
# Make sure the services the integration tests use are up: PostgreSQL (127.0.0.1:5432, database
# `test`) and Redis (127.0.0.1:6379). Starts whichever is down; under CI=true a service that still
# cannot be reached is a failure, never a silent skip.
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() {
  for _ in $(seq 1 50); do up "$1" && return 0; sleep 0.2; done
  return 1
}

if ! up 5432; then
  echo "services: starting PostgreSQL" >&2
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  wait_up 5432 || { echo "services: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; [ "${CI:-}" = true ] && exit 1; }
fi

if ! up 6379; then
  echo "services: starting Redis" >&2
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  wait_up 6379 || { echo "services: Redis is not reachable on 127.0.0.1:6379" >&2; [ "${CI:-}" = true ] && exit 1; }
fi
exit 0
