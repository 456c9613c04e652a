#!/bin/bash
# Usage: node-stop.sh node1|node2 — the node "dies": its kubelet and containerd stop and every container
# process it ran is killed (found through that containerd's state dir), as if the machine lost power.
# The control plane notices (NotReady after --node-monitor-grace-period) and evicts. Needs root.
. "$(dirname "$0")/common.sh"
case "${1:-}" in
  node1) K=kubelet; C=containerd; D=$CTRD;;
  node2) K=kubelet2; C=containerd2; D=$CTRD2;;
  *) die "usage: node-stop.sh node1|node2";;
esac
stop $K 20
for f in "$D"/state/io.containerd.runtime.v2.task/*/*/init.pid "$D"/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
  [ -f "$f" ] || continue; p=$(cat "$f"); [ -n "$p" ] && [ -d /proc/$p ] && kill -9 "$p" 2>/dev/null
done
stop $C 20
kill_under "$D/state"
echo "$1 stopped"
