#!/usr/bin/env bash
# One-shot: create the service's database before it migrates. CockroachDB has no POSTGRES_DB
# equivalent, so nothing else creates it. Idempotent (IF NOT EXISTS).
set -uo pipefail

name="${DB_NAME:?DB_NAME must name the database to create}"
host="${COCKROACH_SQL_HOST:-cockroachdb-1:26257}"
tries="${COCKROACH_INIT_TRIES:-30}"
delay="${COCKROACH_RETRY_DELAY:-2}"

# The name goes into SQL: accept plain identifiers only.
if [[ ! "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
  echo "DB_NAME must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), not '$name'" >&2
  exit 1
fi

for ((attempt = 1; attempt <= tries; attempt++)); do
  if cockroach sql --insecure --host="$host" --execute="CREATE DATABASE IF NOT EXISTS $name"; then
    echo "Database $name is ready on $host"
    exit 0
  fi
  echo "CREATE DATABASE attempt $attempt/$tries failed; retrying in ${delay}s"
  sleep "$delay"
done
echo "Could not create database $name on $host after $tries attempts" >&2
exit 1
