#!/usr/bin/env bash
# Create the Docker secrets docker-compose.yml reads from ./secrets/ (git-ignored). Files that
# exist are kept, so running it again never rotates a secret behind your back.
#
#   secrets/secret_key          Django SECRET_KEY (random)
#   secrets/jwt_secret          JWT_SECRET: must be the auth service's HS256 secret; a random one
#                               is written only so that a stand-alone demo starts
#   secrets/turn_secret         TURN_SECRET: coturn's static-auth-secret (random until you set it)
#   secrets/firebase-service-account.json
#                               GOOGLE_APPLICATION_CREDENTIALS: a placeholder "{}" until you copy
#                               the Firebase service-account key here (push stays off until
#                               FIREBASE_PROJECT_ID or PUSH_PROVIDER=firebase is set)
#   secrets/redis_password      Redis's requirepass and the service's REDIS_PASSWORD_FILE (random)
#   secrets/cockroach_console_password
#                               the DB Console login of COCKROACH_CONSOLE_USER (random)
#   secrets/tls.crt, tls.key    the proxy's TLS certificate and key: a self-signed pair for
#                               localhost (TLS_HOSTNAME to name another host) until you copy your
#                               own there; the key is 0600 (nginx reads it as root)
#
# The CockroachDB certificates are not made here: the one-shot cockroachdb-certs makes them in
# Docker volumes on the first `docker compose up`.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p secrets
# The directory is private to you; the files must stay readable by the container's user (uid
# 10001), because Compose bind-mounts them with the host's owner and mode.
chmod 700 secrets
umask 022

random_secret() {
  LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 64 || true
}

write_once() {
  local path="secrets/$1" value="$2"
  if [ -s "$path" ]; then
    echo "kept    $path"
  else
    printf '%s\n' "$value" >"$path"
    chmod 644 "$path"
    echo "created $path"
  fi
}

write_once secret_key "$(random_secret)"
write_once jwt_secret "$(random_secret)"
write_once turn_secret "$(random_secret)"
write_once firebase-service-account.json '{}'
write_once redis_password "$(random_secret)"
write_once cockroach_console_password "$(random_secret)"

# The TLS pair is made (or kept) as a pair.
tls_host="${TLS_HOSTNAME:-localhost}"
if [[ ! "$tls_host" =~ ^[A-Za-z0-9.-]+$ ]]; then
  echo "make-secrets.sh: TLS_HOSTNAME must be a host name, not '$tls_host'" >&2
  exit 1
fi
names="DNS:localhost,IP:127.0.0.1"
[ "$tls_host" = localhost ] || names="DNS:$tls_host,$names"
if [ -s secrets/tls.crt ] && [ -s secrets/tls.key ]; then
  echo "kept    secrets/tls.crt and secrets/tls.key"
else
  command -v openssl >/dev/null || { echo "make-secrets.sh: openssl is needed for secrets/tls.*" >&2; exit 1; }
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 825 -subj "/CN=$tls_host" \
      -addext "subjectAltName=$names" \
      -keyout secrets/tls.key -out secrets/tls.crt 2>/dev/null
  )
  chmod 600 secrets/tls.key
  chmod 644 secrets/tls.crt
  echo "created secrets/tls.crt and secrets/tls.key (self-signed for $tls_host: browsers will warn)"
fi
