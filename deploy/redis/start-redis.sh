#!/bin/sh
# Redis with a password: `requirepass` from the Docker secret REDIS_PASSWORD_FILE, written to a
# config file only the redis user can read (never on a command line, where `ps` would show it),
# then the image's own entrypoint, which drops root and runs redis-server with that file and the
# arguments given here. POSIX sh: the redis alpine image has no bash.
set -eu

secret="${REDIS_PASSWORD_FILE:?REDIS_PASSWORD_FILE must name the file holding the password}"
conf="${REDIS_AUTH_CONF:-/tmp/redis-auth.conf}"

if ! password=$(cat "$secret" 2>/dev/null) || [ -z "$password" ]; then
  echo "REDIS_PASSWORD_FILE ($secret) is missing or empty" >&2
  exit 1
fi
# Kept to characters that need no quoting in redis.conf or in a redis:// URL's password.
case "$password" in
  *[!A-Za-z0-9._~-]*)
    echo "REDIS_PASSWORD_FILE must hold letters, digits and . _ ~ - only (deploy/make-secrets.sh makes one)" >&2
    exit 1
    ;;
esac

(umask 077 && printf 'requirepass %s\n' "$password" >"$conf")
if [ "$(id -u)" = 0 ]; then
  chown redis:redis "$conf"
fi
exec docker-entrypoint.sh redis-server "$conf" "$@"
