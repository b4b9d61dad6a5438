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
