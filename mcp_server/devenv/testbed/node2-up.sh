#!/bin/bash
# Start a second worker node, node2, beside node1 (node-up.sh) on the same host: its own bridge and node IP,
# pod range and CNI bridge, containerd (root/state/socket), kubelet (root dir, certs, cgroup root /node2,
# health port). The scheduler and kube-proxy of node-up.sh serve both nodes (one host network).
# The kubelet and containerd hard-code /var/log/pods, /var/log/containers and the device-plugin directory, and
# a kubelet garbage-collects pod log directories it does not know: node2 runs in a private mount namespace in
# which those paths are its own directories. Needs root.
set -euo pipefail
. "$(dirname "$0")/common.sh"
T0=$EPOCHREALTIME
[ "$(id -u)" = 0 ] || die "node2-up.sh needs root"
pid_of kubelet >/dev/null || die "node1 is not running: run up.sh --node first"
for n in containerd2 kubelet2; do pid_of $n >/dev/null && die "$n already running"; done
port_free 127.0.0.1 10268 || die "127.0.0.1:10268 is in use"
ip link show $NODE2_BR >/dev/null 2>&1 && die "link $NODE2_BR exists: run down.sh first"

mkdir -p "$N2"/{etc/cni,kubelet,cni-ipam,log-pods,log-containers,device-plugins} "$CTRD2" /var/log/pods \
  /var/log/containers /var/lib/kubelet/device-plugins
ip link add $NODE2_BR type bridge && echo "$NODE2_BR" >> "$ST/links"
ip addr add $NODE2_IP/32 dev $NODE2_BR; ip link set $NODE2_BR up

cat > "$N2/etc/cni/10-testbed.conflist" <<EOF2
{"cniVersion": "0.4.0", "name": "testbed", "plugins": [
  {"type": "bridge", "bridge": "$POD2_BR", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD2_CIDR", "gateway": "$POD2_GW"}]], "dataDir": "$N2/cni-ipam",
            "routes": [{"dst": "$SVC_CIDR"}, {"dst": "$PODS_CIDR"}, {"dst": "$NODE_IP/32"}, {"dst": "$NODE2_IP/32"}]}}]}
EOF2
sed -e "s|$CTRD|$CTRD2|g" -e "s|conf_dir = \"$ST/etc/cni\"|conf_dir = \"$N2/etc/cni\"|" "$ST/etc/containerd.toml" \
  > "$N2/etc/containerd.toml"

# cgroup root /node2 in every v1 hierarchy (cpuset needs its cpus and mems before children can be made)
for c in /sys/fs/cgroup/*/; do [ -d "$c" ] && [ ! -L "${c%/}" ] || continue
  case "$c" in */unified/) continue;; esac   # the v1 hierarchies, name=systemd included (the kubelet checks it)
  mkdir -p "$c/node2" && echo "$c/node2" >> "$N2/cgroups.txt"
  if [ -f "$c/cpuset.cpus" ]; then cat "$c/cpuset.cpus" > "$c/node2/cpuset.cpus"; cat "$c/cpuset.mems" > "$c/node2/cpuset.mems"; fi
done

start_saved containerd2 unshare -m --propagation private sh -c "mount --bind '$N2/log-pods' /var/log/pods && \
  mount --bind '$N2/log-containers' /var/log/containers && \
  mount --bind '$N2/device-plugins' /var/lib/kubelet/device-plugins && \
  exec containerd --config '$N2/etc/containerd.toml'"
wait_for 100 ctr -a "$CTRD2_SOCK" version || { tail -20 "$LOGS/containerd2.log"; die "containerd2 not answering"; }

sed -e "s|^address: .*|address: $NODE2_IP|" -e "s|^healthzPort: .*|healthzPort: 10268|" \
  "$ST/etc/kubelet.yaml" > "$N2/etc/kubelet.yaml"
echo "cgroupRoot: /node2" >> "$N2/etc/kubelet.yaml"
# the kubelet joins containerd2's mount namespace, found at start time (node-start.sh restarts both)
start_saved kubelet2 sh -c "exec nsenter -m -t \$(cut -d' ' -f1 '$PIDS/containerd2.pid') -- '$BIN/kubelet' \
  --config='$N2/etc/kubelet.yaml' --kubeconfig='$KC' --container-runtime=remote \
  --container-runtime-endpoint='unix://$CTRD2_SOCK' --pod-infra-container-image=$REGISTRY/pause:latest \
  --image-pull-progress-deadline=2m --hostname-override=$NODE2_NAME --node-ip=$NODE2_IP --root-dir='$N2/kubelet' \
  --cert-dir='$N2/kubelet/pki' --volume-plugin-dir='$N2/kubelet/volume-plugins' -v=1"

ready() { [ "$(kc get node $NODE2_NAME -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}{.spec.taints}')" = True ]; }
wait_for 1200 ready || { tail -20 "$LOGS/kubelet2.log"; die "node $NODE2_NAME not Ready/untainted after 120 s"; }
kc label node $NODE2_NAME pool=run --overwrite >/dev/null
echo "node $NODE2_NAME Ready and untainted in $(secs $T0) s"
