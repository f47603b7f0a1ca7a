#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL cluster for the tests and print its URL.
#
#   scripts/start-postgres.sh [PORT]          # default port 55432
#   export SHARPEYES_PG_URL=$(scripts/start-postgres.sh | tail -n1)
#   scripts/start-postgres.sh stop [PORT]     # stop it again
#
# Idempotent: installs postgresql with apt-get only when no server binaries are found, reuses a
# cluster already running on the port, creates database sharpeyes_test if absent. Listens on
# 127.0.0.1 only, trust authentication (test use only). As root the cluster runs as the
# `postgres` OS user, as PostgreSQL requires. Progress goes to stderr; stdout is only the URL.
set -euo pipefail

action=start
if [[ "${1:-}" == "stop" ]]; then action=stop; shift; fi
PORT="${1:-${SHARPEYES_PG_PORT:-55432}}"
DATA="${SHARPEYES_PG_DIR:-/tmp/sharpeyes-pg-${PORT}}"
DB=sharpeyes_test

log() { echo "start-postgres: $*" >&2; }

find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

BIN="$(find_bindir || true)"
if [[ -z "$BIN" ]]; then
    [[ "$action" == stop ]] && exit 0
    log "installing postgresql (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN="$(find_bindir)"
fi

as_owner() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ "$action" == stop ]]; then
    [[ -f "$DATA/PG_VERSION" ]] && as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
    exit 0
fi

if ! as_owner "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        log "initdb in $DATA"
        mkdir -p "$DATA"
        [[ "$(id -u)" == 0 ]] && chown postgres: "$DATA"
        chmod 700 "$DATA"
        as_owner "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    log "starting on 127.0.0.1:$PORT"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
        -o "-k $DATA -p $PORT -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start >&2
fi

exists="$(as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='$DB'")"
if [[ "$exists" != 1 ]]; then
    as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB" >&2
fi
echo "postgresql://postgres@127.0.0.1:${PORT}/${DB}"
