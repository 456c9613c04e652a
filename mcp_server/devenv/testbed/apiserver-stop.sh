#!/bin/bash
# Usage: apiserver-stop.sh — the API server goes away (SIGTERM, SIGKILL after 5 s) while etcd, the
# controllers, kubelets and pods keep running, as in a control-plane outage or upgrade. apiserver-start.sh
# brings it back with the command up.sh started it with. Keep outages short (under the controller
# manager's --node-monitor-grace-period of 16 s), or nodes are marked NotReady when it returns.
. "$(dirname "$0")/common.sh"
stop apiserver 50
echo "apiserver stopped"
