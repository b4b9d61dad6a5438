#!/usr/bin/env bash
# One-shot `cockroach init` for the Compose cluster (secure mode: as root, with the client
# certificate create-certs.sh left in the certificates directory). The first run initialises the
# cluster; every later `docker compose up` finds it initialised, which is success too. Retries
# while the first node is still starting.
set -uo pipefail

host="${COCKROACH_INIT_HOST:-cockroachdb-1:26257}"
certs_dir="${COCKROACH_CERTS_DIR:-/cockroach/certs}"
tries="${COCKROACH_INIT_TRIES:-60}"
delay="${COCKROACH_RETRY_DELAY:-2}"

for ((attempt = 1; attempt <= tries; attempt++)); do
  if output=$(cockroach init --certs-dir="$certs_dir" --host="$host" 2>&1); then
    echo "$output"
    exit 0
  fi
  case "$output" in
    *"already been initialized"*)
      echo "Cluster at $host is already initialized"
      exit 0
      ;;
  esac
  echo "cockroach init attempt $attempt/$tries failed: ${output##*$'\n'}"
  sleep "$delay"
done
echo "Could not initialize the cluster at $host after $tries attempts" >&2
exit 1
