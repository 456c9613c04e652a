#!/bin/sh
# deploy-mcp-postgres: run Postgres on $PGDATA, initialising it on first start with one database
# ($POSTGRES_DB) owned by one login role ($POSTGRES_USER, password $POSTGRES_PASSWORD). Arguments go to
# postgres (e.g. `-c shared_buffers=128MB`).
#
# The superuser `postgres` has no password: it logs in only over the pod's own Unix socket (peer), so nothing
# outside the container can use it. Everyone else authenticates with SCRAM over TCP. Until initialisation is
# complete the server listens on the socket alone, so pg_isready over TCP (the pod's probes) stays "not ready".
set -eu

: "${PGDATA:?PGDATA must name the data directory}"
: "${POSTGRES_USER:?POSTGRES_USER must name the login role}"
: "${POSTGRES_DB:?POSTGRES_DB must name the database}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must hold the role password}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # a half-made directory from an initdb that was killed: start it again
    rm -rf "$PGDATA"
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    initdb --username=postgres --encoding=UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 \
        --pgdata="$PGDATA" >/dev/null
    cat > "$PGDATA/pg_hba.conf" <<'HBA'
# written by deploy-mcp-postgres: the superuser on the pod's socket only; every role with a password over TCP
local   all   postgres               peer
host    all   all       0.0.0.0/0    scram-sha-256
host    all   all       ::/0         scram-sha-256
HBA
    pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses=''" start
    # the password reaches psql through its environment (\getenv), never a command line
    psql --no-psqlrc --quiet --username=postgres --dbname=postgres -v ON_ERROR_STOP=1 \
        -v role="$POSTGRES_USER" -v db="$POSTGRES_DB" <<'SQL'
\getenv password POSTGRES_PASSWORD
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"role";
SQL
    pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
fi

unset POSTGRES_PASSWORD
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
