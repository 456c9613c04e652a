#!/bin/bash
# Usage: apiserver-start.sh — start the API server stopped by apiserver-stop.sh and wait until it serves.
# A 1.20 /readyz has no informer-sync check (added in 1.22): it passes while the RBAC authorizer's caches are
# still empty, and for that moment every ServiceAccount gets 403. So "serving" also means RBAC answers for a
# bootstrap binding (the scheduler may list pods), as a current API server's /readyz would ensure.
. "$(dirname "$0")/common.sh"
pid_of apiserver >/dev/null || restart_saved apiserver
wait_for 600 kc get --raw /readyz || { tail -30 "$LOGS/apiserver.log"; die "kube-apiserver not ready"; }
rbac_synced() { [ "$(kc auth can-i list pods --as=system:kube-scheduler 2>/dev/null)" = yes ]; }
wait_for 300 rbac_synced || die "kube-apiserver ready but RBAC never answered for system:kube-scheduler"
echo "apiserver ready again"
