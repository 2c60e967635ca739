#!/bin/sh
# Run a job behind a legato forward proxy started for it (no systemd: a CI step, a container).
#
#   ./ci-proxy.sh terraform init
#
# Starts legato with legato.env (beside this script) on a free port, points HTTPS_PROXY at it,
# runs the command, and stops the proxy gracefully (SIGTERM) whatever the command's outcome.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
set -a
. "$here/legato.env"
set +a
LEGATO_PORT=0            # any free port: read the chosen one from the status file
LEGATO_ADMIN=            # no admin endpoint for a per-job proxy
status=$(mktemp -u "${TMPDIR:-/tmp}/legato-status.XXXXXX")
legato --status-file "$status" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT INT TERM
i=0
while [ ! -s "$status" ]; do
  i=$((i + 1))
  if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then echo "ci-proxy: legato did not start" >&2; exit 1; fi
  sleep 0.1
done
port=$(node -p "JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8')).listeners[0].port" "$status")
export HTTPS_PROXY="http://127.0.0.1:$port" https_proxy="http://127.0.0.1:$port"
"$@"
