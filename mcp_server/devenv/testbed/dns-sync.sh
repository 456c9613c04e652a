#!/bin/bash
# The testbed's cluster DNS records, as CoreDNS's kubernetes plugin answers them on k3s: every Service with a
# ClusterIP as <name>.<namespace>.svc.cluster.local, in a hosts file that dnsmasq (node-up.sh) re-reads on change
# (--hostsdir). Follows the API server's watch of Services; started by node-up.sh in its own process group,
# stopped with it by down.sh.
. "$(dirname "$0")/common.sh"
out=$ST/dns/services; tmp=$ST/dns-services.tmp   # written beside the directory, moved in whole
while :; do
  kc get services --all-namespaces --watch --output-watch-events \
    -o jsonpath='{.type} {.object.metadata.name}.{.object.metadata.namespace} {.object.spec.clusterIP}{"\n"}' \
    2>>"$LOGS/dns-sync.log" | {
      declare -A ip=()
      while read -r type name addr; do
        case $type in
          ADDED|MODIFIED) case $addr in ''|None) unset "ip[$name]";; *) ip[$name]=$addr;; esac;;
          DELETED) unset "ip[$name]";;
          *) continue;;
        esac
        for k in "${!ip[@]}"; do echo "${ip[$k]} $k.svc.cluster.local"; done > "$tmp"
        mv -f "$tmp" "$out"
      done
    }
  sleep 1   # the watch ended (the API server closes watches after a while, or restarted): list again
done
