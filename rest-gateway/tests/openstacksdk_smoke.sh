#!/usr/bin/env bash
# The openstacksdk and `openstack` CLI scenarios against a real 3-process
# cluster: installs a pinned openstacksdk and python-openstackclient from PyPI
# into a venv under the target directory, starts three `alcor server` members
# with TLS on every listener (certificates from `alcor certs`), --rest-addr
# and a token file, registers two hosts (a third registers during the run,
# with a simulated agent), runs
# openstacksdk_smoke.py and openstack_cli_smoke.py against one member's REST
# API and tears everything down (also on failure or interruption). Bounded in
# time.
#
# Uses $ALCOR_BIN, else target/debug/alcor (built by `cargo test`), else builds it.
set -euo pipefail
cd "$(dirname "$0")/../.."

OPENSTACKSDK_VERSION=4.22.0
OPENSTACKCLIENT_VERSION=10.5.0
TIMEOUT_S=${ALCOR_SMOKE_TIMEOUT_S:-240}
CLI_TIMEOUT_S=${ALCOR_CLI_SMOKE_TIMEOUT_S:-480}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
VENV=$TARGET/openstacksdk-venv
BIN=${ALCOR_BIN:-$TARGET/debug/alcor}

if [ ! -x "$BIN" ]; then
    cargo build -p alcor-node --bin alcor
fi
installed() { "$VENV/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
if ! "$VENV/bin/python" -c "import openstack, openstackclient" 2>/dev/null \
    || [ "$(installed openstacksdk)" != "$OPENSTACKSDK_VERSION" ] \
    || [ "$(installed python-openstackclient)" != "$OPENSTACKCLIENT_VERSION" ]; then
    if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
        # Debian's python3 ships venv separately.
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    timeout 600 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "openstacksdk==$OPENSTACKSDK_VERSION" \
        "python-openstackclient==$OPENSTACKCLIENT_VERSION"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/alcor-sdk-smoke.XXXXXX")
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Give each member 10 s to stop, then kill it.
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        for log in "$WORK"/node-*.log; do
            echo "---- $log (tail)" >&2
            tail -n 30 "$log" >&2 || true
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ten free ports: raft, api and rest for each of three members, and member
# 1's metrics.
read -r -a PORTS <<<"$(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(10)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)"
raft() { echo "127.0.0.1:${PORTS[$(($1 - 1))]}"; }
api() { echo "127.0.0.1:${PORTS[$(($1 + 2))]}"; }
rest() { echo "127.0.0.1:${PORTS[$(($1 + 5))]}"; }
METRICS="127.0.0.1:${PORTS[9]}"
CLUSTER="1=$(raft 1)/$(api 1),2=$(raft 2)/$(api 2),3=$(raft 3)/$(api 3)"

ADMIN_TOKEN="smoke-admin-$RANDOM$RANDOM"
MEMBER_TOKEN="smoke-member-$RANDOM$RANDOM"
AGENT_TOKEN="smoke-agent-$RANDOM$RANDOM"
cat >"$WORK/tokens.toml" <<EOF
["$ADMIN_TOKEN"]
project_id = "admin"
role = "admin"

["$MEMBER_TOKEN"]
project_id = "demo"
role = "member"

["$AGENT_TOKEN"]
role = "agent"
host_id = "smoke-h-late"
EOF
chmod 600 "$WORK/tokens.toml"

# TLS as in production: one CA, a certificate per member naming it
# (alcor://peer/ID) and serving 127.0.0.1; clients verify against the CA.
TLS=$WORK/tls
for id in 1 2 3; do
    "$BIN" certs --dir "$TLS" --identity "peer/$id" --ip 127.0.0.1 --dns localhost >/dev/null
done
export ALCOR_CA_FILE=$TLS/ca.pem

for id in 1 2 3; do
    "$BIN" server --id "$id" --data-dir "$WORK/node-$id" \
        --tls-cert "$TLS/peer-$id.pem" --tls-key "$TLS/peer-$id-key.pem" --tls-ca "$TLS/ca.pem" \
        --raft-addr "$(raft "$id")" --api-addr "$(api "$id")" \
        --initial-cluster "$CLUSTER" \
        --rest-addr "$(rest "$id")" --token-file "$WORK/tokens.toml" \
        $([ "$id" = 1 ] && echo --metrics-addr "$METRICS") \
        --log warn >"$WORK/node-$id.log" 2>&1 &
    PIDS+=("$!")
done

# Wait for a leader: registering the hosts succeeds once writes commit.
ENDPOINTS="$(api 1),$(api 2),$(api 3)"
deadline=$((SECONDS + 30))
for host in 1 2; do
    until ALCOR_TOKEN="$ADMIN_TOKEN" "$BIN" ctl --endpoints "$ENDPOINTS" hosts create \
        --id "smoke-h$host" --project-id admin --underlay-ip "192.0.2.$host" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "cluster did not accept writes within 30 s" >&2
            exit 1
        fi
        sleep 0.5
    done
done

# Metrics over TLS need a credential of the cluster: none is refused (401
# UNAUTHENTICATED), a token or a client certificate signed by the CA is served.
"$BIN" certs --dir "$TLS" --identity admin >/dev/null
"$VENV/bin/python" - "$METRICS" "$TLS" "$ADMIN_TOKEN" <<'EOF'
import ssl, sys, urllib.error, urllib.request
addr, tls, token = sys.argv[1:]
def scrape(headers=None, cert=False):
    context = ssl.create_default_context(cafile=f"{tls}/ca.pem")
    if cert:
        context.load_cert_chain(f"{tls}/admin.pem", f"{tls}/admin-key.pem")
    request = urllib.request.Request(f"https://{addr}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.headers.get("x-alcor-reason"), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-alcor-reason"), ""
status, reason, _ = scrape()
assert (status, reason) == (401, "UNAUTHENTICATED"), (status, reason)
status, _, body = scrape({"authorization": f"Bearer {token}"})
assert status == 200 and "alcor_push" in body, (status, body[:200])
status, _, body = scrape(cert=True)
assert status == 200 and "alcor_push" in body, (status, body[:200])
print("ok: metrics over TLS: 401 without a credential, served with a token or a client certificate")
EOF

# Talk to member 2 (a follower unless it won the election): writes are forwarded.
export ALCOR_REST_URL="https://$(rest 2)"
export ALCOR_REST_CACERT=$TLS/ca.pem
export ALCOR_REST_TOKEN="$ADMIN_TOKEN"
export ALCOR_REST_MEMBER_TOKEN="$MEMBER_TOKEN"
export ALCOR_SMOKE_HOSTS="smoke-h1,smoke-h2"
# A host that registers during the run (binding before the host exists): the
# scenario registers it with `alcor ctl` and starts its agent with this
# command line (its stdout and stderr go to the agent log).
export ALCOR_SMOKE_LATE_HOST="smoke-h-late"
export ALCOR_SMOKE_REGISTER_LATE_HOST="$BIN ctl --endpoints $ENDPOINTS --token $ADMIN_TOKEN hosts create --id smoke-h-late --project-id admin --underlay-ip 192.0.2.9"
export ALCOR_SMOKE_LATE_AGENT="$BIN agent --host-id smoke-h-late --endpoints $ENDPOINTS --token $AGENT_TOKEN --report-interval-s 60"
export ALCOR_SMOKE_AGENT_LOG="$WORK/node-agent.log"
timeout "$TIMEOUT_S" "$VENV/bin/python" rest-gateway/tests/openstacksdk_smoke.py
timeout "$CLI_TIMEOUT_S" "$VENV/bin/python" rest-gateway/tests/openstack_cli_smoke.py
