#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests and prints its URL.
# Usage: eval "$(tests/services/postgres.sh start)"   (sets FIELDSYNC_TEST_POSTGRES
#        and FIELDSYNC_TEST_POSTGRES_DIR), later: tests/services/postgres.sh stop DIR
# Installs Debian's postgresql when missing. The cluster is made by initdb in
# a temporary directory, owned by an unprivileged user (postgres), listens on
# 127.0.0.1 on a free port only, trusts local connections, and is removed by
# `stop`.
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Runs a command as the cluster's owner: PostgreSQL refuses to run as root.
run_as() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  else sudo -u postgres "$@"
  fi
}

bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  return 1
}

case "${1:-}" in
start)
  if ! bin_dir >/dev/null; then
    echo "postgres.sh: installing Debian's postgresql (once)" >&2
    sudo_if_needed apt-get update -qq >&2
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  bin=$(bin_dir)
  user=postgres
  id "$user" >/dev/null 2>&1 || sudo_if_needed useradd --system --no-create-home "$user"
  dir=$(mktemp -d /tmp/fieldsync-pg.XXXXXX)
  chmod 755 "$dir"
  sudo_if_needed chown "$user" "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  run_as "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  # fsync stays on: the tests check durability across killed processes.
  run_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400" start >/dev/null
  echo "export FIELDSYNC_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres"
  echo "export FIELDSYNC_TEST_POSTGRES_DIR=$dir"
  ;;
stop)
  dir=${2:?usage: postgres.sh stop DIR}
  bin=$(bin_dir)
  if [ -d "$dir/data" ]; then
    run_as "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2
  exit 2
  ;;
esac
