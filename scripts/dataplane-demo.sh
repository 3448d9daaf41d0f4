#!/usr/bin/env bash
# `./scripts/run.sh --dataplane`: the Linux dataplane by hand (needs root).
# Builds three "hosts" (network namespaces on an underlay bridge), starts a
# 3-member cluster (plain text, API on the bridge) and one
# `alcor agent --dataplane linux` per host, creates through `alcor ctl` a VPC
# with two subnets joined by a router, four ports over the hosts and a
# security group, then prints the ping matrix between the ports every
# --interval-s seconds, for --rounds rounds or until Ctrl-C. Every namespace,
# link and process it made is removed on the way out, error or not.
#
# The policy (what the matrix must show):
#   p1 10.0.1.10 host 0, p2 10.0.1.11 host 1, p3 10.0.2.10 host 2: the
#   project's default group (ingress from its own members, egress anywhere);
#   p1-p3 and p2-p3 are routed between the subnets by the router.
#   p4 10.0.2.11 host 0: only group "web", ingress ICMP from 10.0.1.0/24, so
#   p1 and p2 reach it, p3 does not, and p4 reaches nobody (it is not a member
#   of the default group). The replies of allowed pings pass (stateful).
#
# Exit status: 0 when the last round equals that matrix, 1 when it differs.
# Options: --rounds N (default 30), --interval-s S (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=30
INTERVAL_S=2
while [ $# -gt 0 ]; do
    case "$1" in
        --dataplane) ;;
        --rounds) ROUNDS="$2"; shift ;;
        --interval-s) INTERVAL_S="$2"; shift ;;
        *) echo "run.sh --dataplane: unknown option $1 (options: --rounds N, --interval-s S)" >&2; exit 2 ;;
    esac
    shift
done
case "$ROUNDS" in '' | *[!0-9]* | 0) echo "--rounds: a positive number" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh --dataplane needs root (it creates network namespaces, a bridge, VXLAN" >&2
    echo "devices and nftables tables): sudo ./scripts/run.sh --dataplane" >&2
    exit 1
fi

# Names and addresses (cf. node/tests/it/dataplane_fixture.rs): the underlay
# 198.19.250.0/24 (the tests use 198.19.0-249.0/24), the bridge at .254, host
# h at .(h+1).
N_HOSTS=3
BRIDGE=dpdemo-br
BRIDGE_IP=198.19.250.254
PROJECT=demo
API_PORT_BASE=7150
RAFT_PORT_BASE=7250
VPC=d0000000-0000-4000-8000-00000000a001
SUBNET1=d0000000-0000-4000-8000-00000000b001
SUBNET2=d0000000-0000-4000-8000-00000000b002
ROUTER=d0000000-0000-4000-8000-00000000c001
WEB=d0000000-0000-4000-8000-00000000e001
PORT_IDS=(d0000000-0000-4000-8000-000000000001 d0000000-0000-4000-8000-000000000002
    d0000000-0000-4000-8000-000000000003 d0000000-0000-4000-8000-000000000004)
PORT_NAMES=(p1 p2 p3 p4)
PORT_IPS=(10.0.1.10 10.0.1.11 10.0.2.10 10.0.2.11)
PORT_SUBNETS=("$SUBNET1" "$SUBNET1" "$SUBNET2" "$SUBNET2")
PORT_HOSTS=(0 1 2 0)
# EXPECTED[from*4+to]: 1 answered, 0 not, - the port itself.
EXPECTED=(- 1 1 1
          1 - 1 1
          1 1 - 0
          0 0 0 -)
host_netns() { echo "dpdemo-h$1"; }
host_ip() { echo "198.19.250.$(($1 + 1))"; }
host_id() { echo "demo-host-$1"; }

DIR=""
PIDS=()
cleanup() {
    local status=$?
    # A second Ctrl-C must not cut the clean-up short.
    trap "" INT TERM HUP PIPE
    trap - EXIT
    set +e
    # The processes first (an agent would re-create what goes next), each
    # given 15 s to stop.
    local pid alive
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 150); do
        alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 1 ] || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    remove_network
    if [ -n "$DIR" ]; then
        case "$status" in 0 | 130) rm -rf "$DIR" ;; *) echo "logs kept in $DIR" >&2 ;; esac
    fi
    echo "cleaned up"
    exit "$status"
}
# Every namespace and link of this demo, also those a killed earlier run left.
remove_network() {
    local name id
    for name in $(ls /run/netns 2>/dev/null); do
        for id in "${PORT_IDS[@]}" "$ROUTER"; do
            case "$name" in alc*-"$id") ip netns del "$name" 2>/dev/null || true ;; esac
        done
    done
    for h in $(seq 0 $((N_HOSTS - 1))); do
        ip netns del "$(host_netns "$h")" 2>/dev/null || true
        ip link del "dpdemo-h$h" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

if [ -n "${ALCOR_BIN:-}" ]; then
    BIN="$ALCOR_BIN"
else
    ./scripts/setup.sh
    BIN=$(cargo build -q -p alcor-node --bin alcor --message-format=json \
        | grep -o '"executable":"[^"]*/alcor"' | tail -1 | cut -d'"' -f4)
fi
[ -x "$BIN" ] || { echo "no alcor binary (${BIN:-not built})" >&2; exit 1; }
remove_network
DIR=$(mktemp -d /tmp/alcor-dataplane-demo.XXXXXX)

echo "underlay: bridge $BRIDGE $BRIDGE_IP/24, hosts in namespaces $(host_netns 0)..$(host_netns $((N_HOSTS - 1)))"
ip link add "$BRIDGE" type bridge
ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
for h in $(seq 0 $((N_HOSTS - 1))); do
    ns=$(host_netns "$h")
    ip netns add "$ns"
    ip link add "dpdemo-h$h" type veth peer name "dpdemo-u$h"
    ip link set "dpdemo-u$h" netns "$ns"
    ip link set "dpdemo-h$h" master "$BRIDGE" up
    ip -n "$ns" addr add "$(host_ip "$h")/24" dev "dpdemo-u$h"
    ip -n "$ns" link set "dpdemo-u$h" up
    ip -n "$ns" link set lo up
done

INITIAL=""
ENDPOINTS=""
for i in 1 2 3; do
    INITIAL+="${INITIAL:+,}$i=127.0.0.1:$((RAFT_PORT_BASE + i))/$BRIDGE_IP:$((API_PORT_BASE + i))"
    ENDPOINTS+="${ENDPOINTS:+,}$BRIDGE_IP:$((API_PORT_BASE + i))"
done
for i in 1 2 3; do
    "$BIN" server --insecure --id "$i" --data-dir "$DIR/node-$i" \
        --raft-addr "127.0.0.1:$((RAFT_PORT_BASE + i))" --api-addr "$BRIDGE_IP:$((API_PORT_BASE + i))" \
        --initial-cluster "$INITIAL" >"$DIR/node-$i.log" 2>&1 &
    PIDS+=($!)
done
echo "cluster: API $ENDPOINTS, data and logs in $DIR"

ctl() { "$BIN" ctl --endpoints "$ENDPOINTS" "$@" >/dev/null; }
# The first write waits (boundedly) for a leader.
for attempt in $(seq 60); do
    ctl hosts create --project-id "$PROJECT" --id "$(host_id 0)" --underlay-ip "$(host_ip 0)" 2>"$DIR/first-write.err" && break
    if [ "$attempt" -eq 60 ]; then
        echo "no leader after 60 s: $(cat "$DIR/first-write.err"); see $DIR/node-*.log" >&2
        exit 1
    fi
    sleep 1
done
for h in $(seq 0 $((N_HOSTS - 1))); do
    [ "$h" -eq 0 ] || ctl hosts create --project-id "$PROJECT" --id "$(host_id "$h")" --underlay-ip "$(host_ip "$h")"
    nsenter --net="/run/netns/$(host_netns "$h")" "$BIN" agent --host-id "$(host_id "$h")" \
        --endpoints "$ENDPOINTS" --dataplane linux --underlay-ip "$(host_ip "$h")" \
        --report-interval-s 60 >"$DIR/agent-$h.log" 2>&1 &
    PIDS+=($!)
done
echo "agents: one per host, logs $DIR/agent-*.log"

ctl vpcs create --project-id "$PROJECT" --id "$VPC" --name demo --cidr 10.0.0.0/16
ctl subnets create --project-id "$PROJECT" --id "$SUBNET1" --network-id "$VPC" --cidr 10.0.1.0/24 --gateway-ip 10.0.1.1
ctl subnets create --project-id "$PROJECT" --id "$SUBNET2" --network-id "$VPC" --cidr 10.0.2.0/24 --gateway-ip 10.0.2.1
ctl routers create --project-id "$PROJECT" --id "$ROUTER" --name demo
ctl routers add-interface "$ROUTER" --subnet-id "$SUBNET1"
ctl routers add-interface "$ROUTER" --subnet-id "$SUBNET2"
ctl security-groups create --project-id "$PROJECT" --id "$WEB" --name web
ctl rules create --project-id "$PROJECT" --security-group-id "$WEB" --direction ingress \
    --protocol icmp --remote-ip-prefix 10.0.1.0/24
for p in 0 1 2 3; do
    ctl ports create --project-id "$PROJECT" --id "${PORT_IDS[$p]}" --network-id "$VPC" \
        --name "${PORT_NAMES[$p]}" --subnet-id "${PORT_SUBNETS[$p]}" --ip "${PORT_IPS[$p]}" \
        --host "$(host_id "${PORT_HOSTS[$p]}")"
done
ctl ports update "${PORT_IDS[3]}" --security-groups "$WEB"
# Every host has acked (so programmed) the latest revision.
ctl barrier --revision 0
echo "VPC 10.0.0.0/16: subnets 10.0.1.0/24 and 10.0.2.0/24 on router demo; p4 in group web"

# The namespace the agent made for port $1 (alc-HASH-ID).
port_netns() {
    local name
    for name in $(ls /run/netns); do
        case "$name" in alc-*-"$1") echo "$name"; return ;; esac
    done
}
# One round: pings every pair at once; GOT[from*4+to] as EXPECTED.
ping_round() {
    local from to pids=() i ns
    GOT=()
    for from in 0 1 2 3; do
        ns=$(port_netns "${PORT_IDS[$from]}")
        for to in 0 1 2 3; do
            i=$((from * 4 + to))
            if [ "$from" -eq "$to" ] || [ -z "$ns" ]; then
                pids[i]=""
                continue
            fi
            ip netns exec "$ns" ping -c1 -W1 -q "${PORT_IPS[$to]}" >/dev/null 2>&1 &
            pids[i]=$!
        done
    done
    for i in $(seq 0 15); do
        if [ $((i / 4)) -eq $((i % 4)) ]; then
            GOT[i]="-"
        elif [ -z "${pids[i]}" ]; then
            GOT[i]=0
        elif wait "${pids[i]}"; then
            GOT[i]=1
        else
            GOT[i]=0
        fi
    done
}
print_round() {
    local from to i mark cell n_wrong=0
    printf '%-16s' "from \\ to"
    for to in 0 1 2 3; do printf '%-14s' "${PORT_NAMES[$to]} ${PORT_IPS[$to]}"; done
    echo
    for from in 0 1 2 3; do
        printf '%-16s' "${PORT_NAMES[$from]} (host ${PORT_HOSTS[$from]})"
        for to in 0 1 2 3; do
            i=$((from * 4 + to))
            case "${GOT[i]}" in 1) cell="reply" ;; 0) cell="-" ;; *) cell="" ;; esac
            mark=""
            if [ "${GOT[i]}" != "${EXPECTED[i]}" ]; then mark=" (!)"; n_wrong=$((n_wrong + 1)); fi
            printf '%-14s' "$cell$mark"
        done
        echo
    done
    WRONG=$n_wrong
}

WRONG=1
for round in $(seq "$ROUNDS"); do
    ping_round
    [ -t 1 ] && printf '\033[H\033[2J'
    echo "ping matrix, round $round of $ROUNDS (Ctrl-C stops; (!) = differs from the policy)"
    print_round
    if [ "$WRONG" -eq 0 ]; then echo "matches the policy"; else echo "$WRONG cells differ from the policy"; fi
    [ "$round" -eq "$ROUNDS" ] || sleep "$INTERVAL_S"
done
[ "$WRONG" -eq 0 ]
