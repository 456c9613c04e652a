#!/bin/bash
# Usage: node-start.sh node1|node2 — bring a stopped node back (containerd, then kubelet, as first started).
. "$(dirname "$0")/common.sh"
case "${1:-}" in
  node1) K=kubelet; C=containerd; S=$CTRD_SOCK;;
  node2) K=kubelet2; C=containerd2; S=$CTRD2_SOCK;;
  *) die "usage: node-start.sh node1|node2";;
esac
pid_of $C >/dev/null || { restart_saved $C; wait_for 100 ctr -a "$S" version || die "$C not answering"; }
pid_of $K >/dev/null || restart_saved $K
ready() { [ "$(kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_for 1200 ready "$1" || die "$1 not Ready after 120 s"
echo "$1 Ready again"
