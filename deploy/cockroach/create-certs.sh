#!/usr/bin/env bash
# One-shot: the certificates of the secure CockroachDB cluster, created on the first run into
# three volumes and kept on every later run (a certificate is only made when it is missing, and
# everything is re-issued when the CA is new):
#
#   $COCKROACH_CA_DIR      ca.key                       this step only: it signs, nothing else reads it
#   $COCKROACH_CERTS_DIR   ca.crt, node.*, client.root.* the nodes and the one-shots (init, SQL as root)
#   $SERVICE_CERTS_DIR     ca.crt, client.$DB_USER.*    the service: its own SQL user, never root's key
#
# One node certificate names every node, the `cockroachdb` alias and localhost, so the service can
# connect with sslmode=verify-full to any of them. The service's key belongs to SERVICE_UID (the
# image's user), mode 0600, as libpq requires.
set -euo pipefail

ca_dir="${COCKROACH_CA_DIR:-/cockroach/ca}"
certs_dir="${COCKROACH_CERTS_DIR:-/cockroach/certs}"
service_dir="${SERVICE_CERTS_DIR:-/cockroach/service-certs}"
user="${DB_USER:?DB_USER must name the service SQL user}"
owner="${SERVICE_UID:-10001}"
read -r -a node_hosts <<<"${COCKROACH_NODE_HOSTS:?COCKROACH_NODE_HOSTS must list the node host names}"

# The name becomes a file name and, in create-database.sh, SQL: plain identifiers only.
if [[ ! "$user" =~ ^[a-z_][a-z0-9_]*$ || "$user" == root ]]; then
  echo "DB_USER must be a lower-case SQL identifier other than root, not '$user'" >&2
  exit 1
fi

mkdir -p "$ca_dir" "$certs_dir" "$service_dir"
chmod 700 "$ca_dir"

new_ca=false
if [ ! -s "$ca_dir/ca.key" ] || [ ! -s "$certs_dir/ca.crt" ]; then
  cockroach cert create-ca --certs-dir="$certs_dir" --ca-key="$ca_dir/ca.key" --overwrite
  new_ca=true
  echo "created the CA"
fi

if $new_ca || [ ! -s "$certs_dir/node.crt" ]; then
  cockroach cert create-node "${node_hosts[@]}" --certs-dir="$certs_dir" --ca-key="$ca_dir/ca.key" --overwrite
  echo "created the node certificate for ${node_hosts[*]}"
fi

if $new_ca || [ ! -s "$certs_dir/client.root.crt" ]; then
  cockroach cert create-client root --certs-dir="$certs_dir" --ca-key="$ca_dir/ca.key" --overwrite
  echo "created the client certificate of root (for the one-shots only)"
fi

# create-client reads the CA certificate from the directory it writes to.
cp "$certs_dir/ca.crt" "$service_dir/ca.crt"
if $new_ca || [ ! -s "$service_dir/client.$user.crt" ]; then
  cockroach cert create-client "$user" --certs-dir="$service_dir" --ca-key="$ca_dir/ca.key" --overwrite
  echo "created the client certificate of $user (for the service)"
fi
if [ "$(id -u)" = 0 ]; then
  chown "$owner:$owner" "$service_dir/ca.crt" "$service_dir/client.$user.crt" "$service_dir/client.$user.key"
fi
chmod 0644 "$service_dir/ca.crt" "$service_dir/client.$user.crt"
chmod 0600 "$service_dir/client.$user.key"
echo "certificates are ready"
