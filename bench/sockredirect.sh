#!/usr/bin/env bash
# TCP throughput of a host client to a server in a network namespace behind a veth
# (10.251.250.2), interleaved: direct to its address; through an nftables DNAT of
# 127.0.0.1:25201 (own table `ip berth-bpftest`, route_localnet and a masquerade, like berth's);
# through the socket redirect (berth_runtime::sockredirect) of 127.0.0.1:25202. Prints the
# medians. iperf3's client and server share one CPU (-A 1,1): across CPUs, on a shared machine,
# the rounds varied 2x. Needs root and iperf3; builds the `sockredirect` example.
# Environment: ROUNDS=7, SECS=3.
set -euo pipefail
ROUNDS=${ROUNDS:-7}; SECS=${SECS:-3}
NS=bpfbench; HV=vbb0; NV=vbb1
REPO=$(cd "$(dirname "$0")/.." && pwd)
cargo build -q --manifest-path "$REPO/Cargo.toml" -p berth-runtime --example sockredirect
CTL=${CARGO_TARGET_DIR:-$REPO/target}/debug/examples/sockredirect
PINS=/sys/fs/bpf/berth-bench
cleanup() {
    $CTL $PINS teardown || true
    nft delete table ip berth-bpftest 2>/dev/null || true
    [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null || true
    ip netns del $NS 2>/dev/null || true
    [ -n "${TSV:-}" ] && rm -f "$TSV"
}
trap cleanup EXIT
ip netns add $NS
ip link add $HV type veth peer name $NV netns $NS
ip addr add 10.251.250.1/30 dev $HV; ip link set $HV up
ip -n $NS addr add 10.251.250.2/30 dev $NV; ip -n $NS link set $NV up; ip -n $NS link set lo up
sysctl -qw net.ipv4.conf.$HV.route_localnet=1
nft -f - <<NFT
table ip berth-bpftest {
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr 127.0.0.1 tcp dport 25201 dnat to 10.251.250.2:5201
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 127.0.0.0/8 oifname "$HV" masquerade
  }
}
NFT
$CTL $PINS insert 127.0.0.1:25202 10.251.250.2:5201
ip netns exec $NS iperf3 -s -B 10.251.250.2 -p 5201 >/dev/null 2>&1 &
SPID=$!
for i in $(seq 50); do ip netns exec $NS ss -tln | grep -q ':5201' && break; sleep 0.1; done
run() { iperf3 -J -A 1,1 -t "$SECS" -c "$1" -p "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)'; }
TSV=$(mktemp)
: > $TSV
for r in $(seq "$ROUNDS"); do
    case $((r % 3)) in
      0) d=$(run 10.251.250.2 5201); n=$(run 127.0.0.1 25201); b=$(run 127.0.0.1 25202);;
      1) n=$(run 127.0.0.1 25201); b=$(run 127.0.0.1 25202); d=$(run 10.251.250.2 5201);;
      2) b=$(run 127.0.0.1 25202); d=$(run 10.251.250.2 5201); n=$(run 127.0.0.1 25201);;
    esac
    echo -e "$r\t$d\t$n\t$b" | tee -a $TSV
done
python3 - "$TSV" <<'PY'
import statistics as s, sys
rows=[list(map(float,l.split()[1:])) for l in open(sys.argv[1])]
d,n,b=(s.median(c) for c in zip(*rows))
print(f"median Gbit/s: direct {d:.2f}  nft-dnat {n:.2f} ({n/d:.3f}x)  bpf {b:.2f} ({b/d:.3f}x)")
# per-round ratios
rn=[r[1]/r[0] for r in rows]; rb=[r[2]/r[0] for r in rows]
print(f"median of per-round ratios: nft {s.median(rn):.3f}x  bpf {s.median(rb):.3f}x")
PY
