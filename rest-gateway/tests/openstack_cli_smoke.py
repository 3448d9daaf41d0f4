"""The `openstack` CLI (python-openstackclient, a real install from PyPI)
against a running Alcor cluster's Neutron-compatible REST API, without
Keystone: every command runs with `--os-auth-type admin_token --os-endpoint
URL --os-token TOKEN`, prints `-f json`, and the JSON is parsed and checked.

Covers create / list / show / set / delete of networks, subnets, ports,
security groups and rules, routers with a subnet interface (a port: listed
by `port list --router`, not deletable through the port API) and a static
route, floating IPs (associate, unset, move), an external network with a
router gateway (`--external`, `router set/unset --external-gateway`,
`--disable-snat`) and a floating IP through it, the external network read
and used by name by a member of another project, tags (create, filters,
set/unset), QoS policies and rules (bandwidth limits per direction, a DSCP mark, on a
network and a port, 409 while in use), exit codes and messages of failing
commands, and project scoping.
`openstack quota ...` is left out: it resolves the project through the
Identity API, which an admin_token endpoint does not have.

Environment: ALCOR_REST_URL, ALCOR_REST_CACERT (with https), ALCOR_REST_TOKEN (admin), ALCOR_REST_MEMBER_TOKEN,
ALCOR_SMOKE_HOSTS (comma-separated registered host IDs, >= 2). The CLI runs as
`python -m openstackclient.shell` of this interpreter (the `openstack` entry
point of the same venv). Exits non-zero on the first failed check. Driven by
openstacksdk_smoke.sh.
"""

import json
import os
import subprocess
import sys
import time

URL = os.environ["ALCOR_REST_URL"]
ADMIN = os.environ["ALCOR_REST_TOKEN"]
MEMBER = os.environ["ALCOR_REST_MEMBER_TOKEN"]
HOSTS = os.environ["ALCOR_SMOKE_HOSTS"].split(",")
CLI = [sys.executable, "-m", "openstackclient.shell"]
# The CA that signed the members' certificates (an https:// URL), if any.
if os.environ.get("ALCOR_REST_CACERT"):
    CLI += ["--os-cacert", os.environ["ALCOR_REST_CACERT"]]

# One command may take this long (the CLI starts in about a second).
COMMAND_TIMEOUT_S = 60


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def run(token, *args):
    """Runs `openstack ARGS` with `token`: (exit code, stdout, stderr)."""
    cmd = [*CLI, "--os-auth-type", "admin_token", "--os-endpoint", URL,
           "--os-token", token, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def ok(*args, token=ADMIN):
    """`openstack ARGS -f json` must succeed: its parsed output."""
    code, out, err = run(token, *args, "-f", "json")
    check(code == 0, f"`openstack {' '.join(args)}` exits 0 (stderr: {err.strip()})")
    return json.loads(out)


def quiet(*args, token=ADMIN):
    """A command without output (set, delete, add/remove) must succeed."""
    code, _, err = run(token, *args)
    check(code == 0, f"`openstack {' '.join(args)}` exits 0 (stderr: {err.strip()})")


def fails(what, needle, *args, token=ADMIN):
    """A command must exit non-zero with `needle` in its stderr."""
    code, _, err = run(token, *args)
    check(code != 0 and needle in err,
          f"{what}: exit {code}, stderr mentions {needle!r} ({err.strip()[:200]})")


def main():
    net = ok("network", "create", "cli-net")
    check(net["name"] == "cli-net" and net["status"] == "ACTIVE", "network create")
    check(net["project_id"] == "admin", "network is in the token's project")
    listed = ok("network", "list", "--name", "cli-net")
    check([n["ID"] for n in listed] == [net["id"]], "network list --name")
    quiet("network", "set", "--name", "cli-net-2", "--mtu", "1400", net["id"])
    shown = ok("network", "show", net["id"])
    check(shown["name"] == "cli-net-2" and shown["mtu"] == 1400, "network set, show")

    sub = ok("subnet", "create", "cli-sub", "--network", net["id"],
             "--subnet-range", "10.60.0.0/24", "--dns-nameserver", "192.0.2.53")
    check(sub["gateway_ip"] == "10.60.0.1" and sub["cidr"] == "10.60.0.0/24",
          "subnet create")
    check(sub["dns_nameservers"] == ["192.0.2.53"], "subnet create with a DNS server")
    subs = ok("subnet", "list", "--network", net["id"])
    check([s["ID"] for s in subs] == [sub["id"]], "subnet list --network")
    fails("overlapping subnet", "overlap", "subnet", "create", "cli-sub-x",
          "--network", net["id"], "--subnet-range", "10.60.0.128/25")

    ports = []
    for i, host in enumerate(HOSTS[:2]):
        p = ok("port", "create", f"cli-p{i}", "--network", net["id"], "--host", host,
               "--device-owner", "compute:nova", "--device", f"cli-vm-{i}")
        check(p["binding_host_id"] == host and p["fixed_ips"][0]["subnet_id"] == sub["id"],
              f"port create on {host}")
        check(p["status"] == "DOWN" and p["mac_address"], f"port {i} is DOWN with a MAC")
        ports.append(p)
    fixed = ok("port", "create", "cli-fixed", "--network", net["id"],
               "--fixed-ip", f"subnet={sub['id']},ip-address=10.60.0.77")
    check(fixed["fixed_ips"][0]["ip_address"] == "10.60.0.77", "port create with a fixed IP")
    fails("taken fixed IP", "in use", "port", "create", "cli-dup", "--network", net["id"],
          "--fixed-ip", f"subnet={sub['id']},ip-address=10.60.0.77")
    fails("fixed IP outside the subnet", "10.61.0.5", "port", "create", "cli-out",
          "--network", net["id"], "--fixed-ip", f"subnet={sub['id']},ip-address=10.61.0.5")
    on_net = ok("port", "list", "--network", net["id"])
    check(sorted(p["Name"] for p in on_net) == ["cli-fixed", "cli-p0", "cli-p1"],
          "port list --network")
    on_host = ok("port", "list", "--host", HOSTS[0])
    check([p["ID"] for p in on_host] == [ports[0]["id"]], "port list --host")
    quiet("port", "set", "--name", "cli-p0-renamed", "--host", HOSTS[1], ports[0]["id"])
    moved = ok("port", "show", ports[0]["id"])
    check(moved["name"] == "cli-p0-renamed" and moved["binding_host_id"] == HOSTS[1],
          "port set moves the binding host")
    check(moved["revision_number"] > ports[0]["revision_number"], "port revision moved")

    paired = ok("port", "create", "cli-pairs", "--network", net["id"],
                "--allowed-address", "ip-address=10.77.0.200",
                "--allowed-address", "ip-address=10.77.1.0/24,mac-address=fa:16:3e:00:00:aa")
    check(sorted(paired["allowed_address_pairs"], key=lambda a: a["ip_address"]) == [
        {"ip_address": "10.77.0.200", "mac_address": paired["mac_address"]},
        {"ip_address": "10.77.1.0/24", "mac_address": "fa:16:3e:00:00:aa"},
    ], "port create --allowed-address comes back as sent")
    quiet("port", "delete", paired["id"])

    open_net = ok("network", "create", "cli-open", "--disable-port-security")
    check(open_net["port_security_enabled"] is False, "network create --disable-port-security")
    open_port = ok("port", "create", "cli-open-port", "--network", open_net["id"])
    check(open_port["port_security_enabled"] is False and not open_port["security_group_ids"],
          "its port has port security off and no group")
    quiet("port", "set", "--enable-port-security", open_port["id"])
    check(ok("port", "show", open_port["id"])["port_security_enabled"] is True,
          "port set --enable-port-security")
    quiet("port", "set", "--disable-port-security", open_port["id"])
    check(ok("port", "show", open_port["id"])["port_security_enabled"] is False,
          "port set --disable-port-security")
    quiet("port", "delete", open_port["id"])
    quiet("network", "delete", open_net["id"])

    sg = ok("security", "group", "create", "cli-sg", "--description", "cli")
    check(sg["name"] == "cli-sg" and len(sg["rules"]) == 2, "security group create (2 egress rules)")
    ssh = ok("security", "group", "rule", "create", sg["id"], "--ingress", "--protocol", "tcp",
             "--dst-port", "22:22", "--remote-ip", "0.0.0.0/0")
    check(ssh["protocol"] == "tcp" and ssh["port_range_min"] == 22
          and ssh["port_range_max"] == 22, "rule create tcp/22")
    icmp6 = ok("security", "group", "rule", "create", sg["id"], "--ingress", "--ethertype",
               "IPv6", "--protocol", "ipv6-icmp")
    check(icmp6["ether_type"] == "IPv6", "rule create IPv6 ICMP")
    from_group = ok("security", "group", "rule", "create", sg["id"], "--ingress",
                    "--protocol", "udp", "--dst-port", "53", "--remote-group", sg["id"])
    check(from_group["remote_group_id"] == sg["id"], "rule create with a remote group")
    fails("duplicate rule", "already exists", "security", "group", "rule", "create", sg["id"],
          "--ingress", "--protocol", "tcp", "--dst-port", "22:22", "--remote-ip", "0.0.0.0/0")
    fails("port range out of range", "65536", "security", "group", "rule", "create", sg["id"],
          "--ingress", "--protocol", "tcp", "--dst-port", "1:65536")
    rules = ok("security", "group", "rule", "list", sg["id"])
    check({r["ID"] for r in rules} >= {ssh["id"], icmp6["id"], from_group["id"]}
          and len(rules) == 5, "rule list of the group")
    shown = ok("security", "group", "rule", "show", ssh["id"])
    check(shown["remote_ip_prefix"] == "0.0.0.0/0", "rule show")
    quiet("port", "set", "--security-group", sg["id"], ports[1]["id"])
    guarded = ok("port", "show", ports[1]["id"])
    check(sg["id"] in guarded["security_group_ids"], "port set --security-group")
    fails("delete a group in use", "in use", "security", "group", "delete", sg["id"])
    fails("port security off while a group remains", "port security disabled",
          "port", "set", "--disable-port-security", ports[1]["id"])
    quiet("port", "set", "--no-security-group", ports[1]["id"])
    quiet("security", "group", "set", "--name", "cli-sg-2", sg["id"])
    check(ok("security", "group", "show", sg["id"])["name"] == "cli-sg-2",
          "security group set")
    quiet("security", "group", "rule", "delete", ssh["id"])
    fails("deleted rule is gone", "No SecurityGroupRule found", "security", "group", "rule",
          "show", ssh["id"])

    router = ok("router", "create", "cli-router")
    check(router["name"] == "cli-router" and router["routes"] == [], "router create")
    quiet("router", "add", "subnet", router["id"], sub["id"])
    router_ports = ok("port", "list", "--router", router["id"])
    check(len(router_ports) == 1, "port list --router lists the interface port")
    iface = ok("port", "show", router_ports[0]["ID"])
    check(iface["device_owner"] == "network:router_interface"
          and iface["device_id"] == router["id"]
          and sub["gateway_ip"] in json.dumps(iface["fixed_ips"]),
          "the interface port: owned by the router, on the gateway address")
    fails("delete a router interface port", "of router", "port", "delete",
          iface["id"])
    fails("delete a router with an interface", "in use", "router", "delete", router["id"])
    quiet("router", "set", "--route", "destination=192.168.60.0/24,gateway=10.60.0.9",
          router["id"])
    routes = ok("router", "show", router["id"])["routes"]
    check(routes == [{"destination": "192.168.60.0/24", "nexthop": "10.60.0.9"}],
          "router set --route")
    quiet("router", "remove", "subnet", router["id"], sub["id"])
    quiet("router", "delete", router["id"])
    fails("deleted router is gone", "No Router found", "router", "show", router["id"])

    public = ok("network", "create", "cli-public")
    psub = ok("subnet", "create", "cli-public-sub", "--network", public["id"],
              "--subnet-range", "198.51.100.0/24")
    fip = ok("floating", "ip", "create", "--port", ports[1]["id"], public["id"])
    check(fip["status"] == "ACTIVE" and fip["port_id"] == ports[1]["id"]
          and fip["floating_ip_address"].startswith("198.51.100."),
          "floating ip create --port")
    listed = ok("floating", "ip", "list", "--port", ports[1]["id"])
    check([f["ID"] for f in listed] == [fip["id"]], "floating ip list --port")
    quiet("floating", "ip", "unset", "--port", fip["id"])
    freed = ok("floating", "ip", "show", fip["id"])
    check(freed["status"] == "DOWN" and freed["port_id"] is None, "floating ip unset --port")
    quiet("floating", "ip", "set", "--port", ports[0]["id"], fip["id"])
    moved = ok("floating", "ip", "show", fip["id"])
    check(moved["port_id"] == ports[0]["id"]
          and moved["fixed_ip_address"] == ports[0]["fixed_ips"][0]["ip_address"],
          "floating ip set --port")
    quiet("floating", "ip", "delete", fip["id"])
    check(ok("floating", "ip", "list", "--network", public["id"]) == [], "floating ip delete")
    quiet("subnet", "delete", psub["id"])
    quiet("network", "delete", public["id"])

    # The external-network flow: an external network with a subnet, a router
    # with its gateway there and an interface on the ports' subnet, a
    # floating IP of the external network on a port behind the router.
    ext = ok("network", "create", "--external", "cli-ext")
    check(ext["router:external"] in (True, "External"), "network create --external")
    esub = ok("subnet", "create", "cli-ext-sub", "--network", ext["id"],
              "--subnet-range", "203.0.113.0/24")
    grouter = ok("router", "create", "cli-gw-router")
    quiet("router", "add", "subnet", grouter["id"], sub["id"])
    fails("floating IP without a router path", "is not reachable from subnet",
          "floating", "ip", "create", "--port", ports[1]["id"], ext["id"])
    quiet("router", "set", "--external-gateway", ext["id"], grouter["id"])

    def gateway_info():
        info = ok("router", "show", grouter["id"])["external_gateway_info"]
        return json.loads(info) if isinstance(info, str) and info else info

    info = gateway_info()
    check(info["network_id"] == ext["id"] and info["enable_snat"] is True
          and info["external_fixed_ips"][0]["ip_address"].startswith("203.0.113."),
          "router set --external-gateway")
    gw = ok("port", "list", "--router", grouter["id"], "--device-owner", "network:router_gateway")
    check(len(gw) == 1, "port list --router lists the gateway port")
    fip = ok("floating", "ip", "create", "--port", ports[1]["id"], ext["id"])
    check(fip["status"] == "ACTIVE" and fip["router_id"] == grouter["id"]
          and fip["floating_ip_address"].startswith("203.0.113."),
          "floating ip create on the external network behind the router")
    fails("unset a gateway a floating IP needs", "required by one or more floating IPs",
          "router", "unset", "--external-gateway", grouter["id"])
    quiet("router", "set", "--external-gateway", ext["id"], "--disable-snat", grouter["id"])
    check(gateway_info()["enable_snat"] is False, "router set --disable-snat")
    quiet("floating", "ip", "delete", fip["id"])
    quiet("router", "unset", "--external-gateway", grouter["id"])
    check(not gateway_info(), "router unset --external-gateway")
    quiet("router", "remove", "subnet", grouter["id"], sub["id"])
    quiet("router", "delete", grouter["id"])

    # Another project reads the external network (read-only) and uses it by
    # name: a router gateway and a floating IP, as a plain member.
    listed = ok("network", "list", "--external", token=MEMBER)
    check(ext["id"] in [n["ID"] for n in listed], "member: network list --external")
    check(ok("network", "show", "cli-ext", token=MEMBER)["id"] == ext["id"],
          "member: network show of the external network by name")
    fails("member renames another project's external network", "could not be found",
          "network", "set", "--name", "mine", "cli-ext", token=MEMBER)
    # `network delete` ignores a 404 (exit 0): the network must still be there.
    run(MEMBER, "network", "delete", "cli-ext")
    check(ok("network", "show", ext["id"])["name"] == "cli-ext",
          "member cannot delete another project's external network")
    mnet = ok("network", "create", "cli-member-ext-net", token=MEMBER)
    msub = ok("subnet", "create", "cli-member-ext-sub", "--network", mnet["id"],
              "--subnet-range", "10.99.0.0/24", token=MEMBER)
    mport = ok("port", "create", "--network", mnet["id"], "cli-member-vm", token=MEMBER)
    mrouter = ok("router", "create", "cli-member-router", token=MEMBER)
    quiet("router", "add", "subnet", mrouter["id"], msub["id"], token=MEMBER)
    quiet("router", "set", "--external-gateway", "cli-ext", mrouter["id"], token=MEMBER)
    mfip = ok("floating", "ip", "create", "--port", mport["id"], "cli-ext", token=MEMBER)
    check(mfip["floating_network_id"] == ext["id"] and mfip["router_id"] == mrouter["id"]
          and mfip["floating_ip_address"].startswith("203.0.113."),
          "member: floating ip create from the external network by name")
    quiet("floating", "ip", "delete", mfip["id"], token=MEMBER)
    quiet("router", "unset", "--external-gateway", mrouter["id"], token=MEMBER)
    quiet("router", "remove", "subnet", mrouter["id"], msub["id"], token=MEMBER)
    quiet("router", "delete", mrouter["id"], token=MEMBER)
    quiet("port", "delete", mport["id"], token=MEMBER)
    quiet("subnet", "delete", msub["id"], token=MEMBER)
    quiet("network", "delete", mnet["id"], token=MEMBER)
    quiet("subnet", "delete", esub["id"])
    quiet("network", "delete", ext["id"])

    tagged = ok("network", "create", "cli-tagged", "--tag", "red", "--tag", "blue")
    check(sorted(tagged["tags"]) == ["blue", "red"], "network create --tag")
    listed = ok("network", "list", "--tags", "red,blue")
    check([n["ID"] for n in listed] == [tagged["id"]], "network list --tags")
    listed = ok("network", "list", "--any-tags", "red,green")
    check([n["ID"] for n in listed] == [tagged["id"]], "network list --any-tags")
    listed = ok("network", "list", "--not-tags", "red")
    check(tagged["id"] not in [n["ID"] for n in listed], "network list --not-tags")
    quiet("network", "set", "--tag", "green", tagged["id"])
    quiet("network", "unset", "--tag", "red", tagged["id"])
    check(sorted(ok("network", "show", tagged["id"])["tags"]) == ["blue", "green"],
          "network set/unset --tag")
    quiet("network", "set", "--no-tag", tagged["id"])
    check(ok("network", "show", tagged["id"])["tags"] == [], "network set --no-tag")
    quiet("network", "delete", tagged["id"])

    # QoS: a policy with a bandwidth limit per direction and a DSCP mark,
    # on a network and a port; in use (409) until both let go.
    qos = ok("network", "qos", "policy", "create", "cli-qos", "--description", "gold")
    check(qos["name"] == "cli-qos" and qos["rules"] == [], "network qos policy create")
    bw = ok("network", "qos", "rule", "create", "--type", "bandwidth-limit",
            "--max-kbps", "1000", "--max-burst-kbits", "100", "--egress", "cli-qos")
    check(bw["max_kbps"] == 1000 and bw["max_burst_kbps"] == 100
          and bw["direction"] == "egress", "qos rule create --type bandwidth-limit --egress")
    ok("network", "qos", "rule", "create", "--type", "bandwidth-limit",
       "--max-kbps", "500", "--ingress", "cli-qos")
    fails("a second egress limit", "already has a rule", "network", "qos", "rule", "create",
          "--type", "bandwidth-limit", "--max-kbps", "5", "--egress", "cli-qos")
    dscp = ok("network", "qos", "rule", "create", "--type", "dscp-marking", "--dscp-mark", "26",
              "cli-qos")
    check(dscp["dscp_mark"] == 26, "qos rule create --type dscp-marking")
    fails("an invalid DSCP mark", "dscp_mark", "network", "qos", "rule", "create",
          "--type", "dscp-marking", "--dscp-mark", "7", "cli-qos")
    rules = ok("network", "qos", "rule", "list", "cli-qos")
    check(len(rules) == 3, "qos rule list: two limits and a mark")
    quiet("network", "qos", "rule", "set", "--max-kbps", "2000", "cli-qos", bw["id"])
    check(ok("network", "qos", "rule", "show", "cli-qos", bw["id"])["max_kbps"] == 2000,
          "qos rule set --max-kbps")
    quiet("network", "set", "--qos-policy", "cli-qos", net["id"])
    check(ok("network", "show", net["id"])["qos_policy_id"] == qos["id"],
          "network set --qos-policy")
    quiet("port", "set", "--qos-policy", "cli-qos", ports[0]["id"])
    check(ok("port", "show", ports[0]["id"])["qos_policy_id"] == qos["id"],
          "port set --qos-policy")
    fails("delete a QoS policy in use", "is in use", "network", "qos", "policy", "delete",
          "cli-qos")
    quiet("network", "set", "--no-qos-policy", net["id"])
    check(ok("network", "show", net["id"])["qos_policy_id"] is None,
          "network set --no-qos-policy")
    fails("delete a QoS policy a port uses", "is in use", "network", "qos", "policy",
          "delete", "cli-qos")
    quiet("port", "unset", "--qos-policy", ports[0]["id"])
    check(ok("port", "show", ports[0]["id"])["qos_policy_id"] is None,
          "port unset --qos-policy")
    quiet("network", "qos", "rule", "delete", "cli-qos", dscp["id"])
    quiet("network", "qos", "policy", "delete", "cli-qos")
    fails("deleted QoS policy is gone", "found for cli-qos", "network", "qos", "policy",
          "show", "cli-qos")

    # Another project sees none of it.
    check(ok("network", "list", token=MEMBER) == [], "member lists only its project")
    fails("member shows another project's network", "No Network found",
          "network", "show", net["id"], token=MEMBER)
    own = ok("network", "create", "cli-member-net", token=MEMBER)
    check(own["project_id"] != "admin", "member creates in its project")
    quiet("network", "delete", own["id"], token=MEMBER)

    fails("delete a subnet with ports", "in use", "subnet", "delete", sub["id"])
    quiet("port", "delete", ports[0]["id"], ports[1]["id"], fixed["id"])
    check(ok("port", "list", "--network", net["id"]) == [], "ports deleted")
    quiet("security", "group", "delete", sg["id"])
    quiet("subnet", "delete", sub["id"])
    quiet("network", "delete", net["id"])
    check(ok("network", "list", "--name", "cli-net-2") == [], "network deleted")
    print("openstack CLI smoke: all checks passed")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.1f} s)")
