#!/usr/bin/env bash
# One-shot: create the service's database and SQL user before it migrates, as root over TLS (the
# client certificate create-certs.sh left in the certificates directory). CockroachDB has no
# POSTGRES_DB equivalent, so nothing else creates them. Idempotent (IF NOT EXISTS; grants and the
# password are set again on every run, so a rotated console password takes effect).
#
#   DB_NAME                        the database
#   DB_USER                        the service's user: logs in with its client certificate (no
#                                  password), owns nothing outside DB_NAME, is not an admin
#   COCKROACH_CONSOLE_PASSWORD_FILE
#                                  optional: the password of COCKROACH_CONSOLE_USER (default
#                                  `console`), who logs into the DB Console and may view its pages
#
# The SQL goes to `cockroach sql` on standard input, so the password is never on a command line.
set -uo pipefail

name="${DB_NAME:?DB_NAME must name the database to create}"
user="${DB_USER:?DB_USER must name the service SQL user}"
console_user="${COCKROACH_CONSOLE_USER:-console}"
host="${COCKROACH_SQL_HOST:-cockroachdb-1:26257}"
certs_dir="${COCKROACH_CERTS_DIR:-/cockroach/certs}"
tries="${COCKROACH_INIT_TRIES:-30}"
delay="${COCKROACH_RETRY_DELAY:-2}"

# The names go into SQL: accept plain identifiers only.
if [[ ! "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
  echo "DB_NAME must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), not '$name'" >&2
  exit 1
fi
for role in "$user" "$console_user"; do
  if [[ ! "$role" =~ ^[a-z_][a-z0-9_]*$ || "$role" == root || "$role" == admin ]]; then
    echo "DB_USER and COCKROACH_CONSOLE_USER must be lower-case SQL identifiers other than root and admin, not '$role'" >&2
    exit 1
  fi
done

sql="CREATE DATABASE IF NOT EXISTS $name;
USE $name;
CREATE USER IF NOT EXISTS $user;
GRANT ALL ON DATABASE $name TO $user;
GRANT ALL ON SCHEMA public TO $user;
GRANT ALL ON ALL TABLES IN SCHEMA public TO $user;"

if [ -n "${COCKROACH_CONSOLE_PASSWORD_FILE:-}" ]; then
  if ! password=$(cat "$COCKROACH_CONSOLE_PASSWORD_FILE" 2>/dev/null) || [ -z "$password" ]; then
    echo "COCKROACH_CONSOLE_PASSWORD_FILE ($COCKROACH_CONSOLE_PASSWORD_FILE) is missing or empty" >&2
    exit 1
  fi
  # A SQL string literal: single quotes doubled.
  sql+="
CREATE USER IF NOT EXISTS $console_user;
ALTER USER $console_user WITH PASSWORD '${password//\'/\'\'}';
GRANT SYSTEM VIEWACTIVITY, VIEWCLUSTERMETADATA, VIEWCLUSTERSETTING TO $console_user;"
fi

for ((attempt = 1; attempt <= tries; attempt++)); do
  if printf '%s\n' "$sql" | cockroach sql --certs-dir="$certs_dir" --host="$host"; then
    echo "Database $name and user $user are ready on $host"
    exit 0
  fi
  echo "CREATE DATABASE attempt $attempt/$tries failed; retrying in ${delay}s"
  sleep "$delay"
done
echo "Could not create database $name on $host after $tries attempts" >&2
exit 1
