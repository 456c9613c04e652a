#!/bin/bash
# Usage: apiserver-start.sh — start the API server stopped by apiserver-stop.sh and wait for /readyz.
. "$(dirname "$0")/common.sh"
pid_of apiserver >/dev/null || restart_saved apiserver
wait_for 600 kc get --raw /readyz || { tail -30 "$LOGS/apiserver.log"; die "kube-apiserver not ready"; }
echo "apiserver ready again"
