"""openstacksdk (a real install from PyPI) against a running Alcor cluster's
Neutron-compatible REST API, without Keystone: the `admin_token` auth type
sends a fixed token to a fixed endpoint.

Environment:
  ALCOR_REST_URL           e.g. https://127.0.0.1:9697 (one member's --rest-addr)
  ALCOR_REST_CACERT        the CA of the members' certificates (with https)
  ALCOR_REST_TOKEN         an admin token of the token file
  ALCOR_REST_MEMBER_TOKEN  a member token of another project
  ALCOR_SMOKE_HOSTS        comma-separated registered host IDs (>= 2)

Exits non-zero on the first failed check. Driven by openstacksdk_smoke.sh.
"""

import os
import shlex
import subprocess
import sys
import time

import openstack
from openstack import exceptions as exc

URL = os.environ["ALCOR_REST_URL"]
ADMIN = os.environ["ALCOR_REST_TOKEN"]
MEMBER = os.environ["ALCOR_REST_MEMBER_TOKEN"]
HOSTS = os.environ["ALCOR_SMOKE_HOSTS"].split(",")
# The CA that signed the members' certificates (an https:// URL), if any.
CACERT = os.environ.get("ALCOR_REST_CACERT")


def connect(token):
    tls = {"cacert": CACERT} if CACERT else {}
    return openstack.connection.Connection(
        auth_type="admin_token",
        auth={"endpoint": URL, "token": token},
        **tls,
    )


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def neutron_type(error):
    """NeutronError.type of an openstacksdk HttpException."""
    try:
        return error.response.json()["NeutronError"]["type"]
    except Exception:  # noqa: BLE001 - any shape problem is a failed check
        return None


def expect_error(cls, neutron, what, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except cls as e:
        got = neutron_type(e)
        check(got == neutron, f"{what}: {cls.__name__} {got}")
        check(
            e.response.headers.get("X-Openstack-Request-Id", "").startswith("req-"),
            f"{what}: request id header",
        )
        return
    except exc.HttpException as e:
        check(False, f"{what}: expected {cls.__name__}, got {type(e).__name__} {e}")
    check(False, f"{what}: expected {cls.__name__}, got success")


def security_groups(net_api):
    """A group with rules (one duplicate), embedded in the group body."""
    sg = net_api.create_security_group(name="smoke-sg", description="smoke")
    check(sg.id and sg.project_id == "admin", "create security group")
    ssh = dict(security_group_id=sg.id, direction="ingress", ether_type="IPv4",
               protocol="tcp", port_range_min=22, port_range_max=22,
               remote_ip_prefix="0.0.0.0/0")
    rule = net_api.create_security_group_rule(**ssh)
    check(rule.protocol == "tcp" and rule.port_range_min == 22, "create rule")
    expect_error(exc.ConflictException, "SecurityGroupRuleExists", "duplicate rule",
                 net_api.create_security_group_rule, **ssh)
    icmp = net_api.create_security_group_rule(
        security_group_id=sg.id, direction="egress", ether_type="IPv6", protocol="icmp")
    check(icmp.ether_type == "IPv6", "create IPv6 rule")
    shown = net_api.get_security_group(sg.id)
    embedded = {r["id"] for r in shown.security_group_rules}
    check({rule.id, icmp.id} <= embedded, "group embeds its rules")
    listed = {r.id for r in net_api.security_group_rules(security_group_id=sg.id)}
    check(listed == embedded, "list rules of the group")
    renamed = net_api.update_security_group(sg, name="smoke-sg-2")
    check(renamed.name == "smoke-sg-2", "update security group")
    net_api.delete_security_group_rule(rule, ignore_missing=False)
    expect_error(exc.NotFoundException, "SecurityGroupRuleNotFound", "rule is gone",
                 net_api.get_security_group_rule, rule.id)
    net_api.delete_security_group(sg, ignore_missing=False)


def routers(net_api):
    """A router with a subnet interface added and removed."""
    net = net_api.create_network(name="smoke-rnet")
    sub = net_api.create_subnet(network_id=net.id, cidr="10.40.0.0/24", ip_version=4)
    router = net_api.create_router(name="smoke-router")
    check(router.id and router.routes == [], "create router")
    info = net_api.add_interface_to_router(router, subnet_id=sub.id)
    check(info["id"] == router.id and info["subnet_id"] == sub.id, "add router interface")
    expect_error(exc.ConflictException, "RouterInUse", "delete a router with interfaces",
                 net_api.delete_router, router, ignore_missing=False)
    updated = net_api.update_router(
        router, name="smoke-router-2",
        routes=[{"destination": "192.168.9.0/24", "nexthop": "10.40.0.9"}])
    check(updated.name == "smoke-router-2" and len(updated.routes) == 1, "update router")
    info = net_api.remove_interface_from_router(router, subnet_id=sub.id)
    check(info["subnet_id"] == sub.id, "remove router interface")
    net_api.delete_router(router, ignore_missing=False)
    net_api.delete_subnet(sub, ignore_missing=False)
    net_api.delete_network(net, ignore_missing=False)


def floating_ips(net_api, port):
    """A floating IP from a public network: associated, moved off, bulk, If-Match."""
    public = net_api.create_network(name="smoke-public")
    psub = net_api.create_subnet(network_id=public.id, cidr="198.51.100.0/24", ip_version=4)
    fip = net_api.create_ip(floating_network_id=public.id, port_id=port.id)
    check(fip.status == "ACTIVE" and fip.port_id == port.id
          and fip.fixed_ip_address == port.fixed_ips[0]["ip_address"]
          and fip.floating_ip_address.startswith("198.51.100."),
          "create floating IP associated with a port")
    check([f.id for f in net_api.ips(port_id=port.id)] == [fip.id], "filter floating IPs by port")
    expect_error(exc.ConflictException, "FloatingIPPortAlreadyAssociated",
                 "second floating IP on one fixed address",
                 net_api.create_ip, floating_network_id=public.id, port_id=port.id)
    fip_id, old_revision = fip.id, fip.revision_number
    freed = net_api.update_ip(fip_id, port_id=None, if_revision=old_revision)
    check(freed.status == "DOWN" and freed.port_id is None and freed.fixed_ip_address is None,
          "disassociate a floating IP")
    expect_error(exc.PreconditionFailedException, "RevisionNumberConstraintFailed",
                 "associate with a stale revision",
                 net_api.update_ip, fip_id, port_id=port.id, if_revision=old_revision)
    again = net_api.update_ip(fip_id, port_id=port.id)
    check(again.status == "ACTIVE" and again.port_id == port.id, "associate again")
    # Bulk (all or nothing): the second address is taken, so neither is created.
    taken = again.floating_ip_address
    raw = net_api.post("/floatingips", json={"floatingips": [
        {"floating_network_id": public.id, "floating_ip_address": "198.51.100.200"},
        {"floating_network_id": public.id, "floating_ip_address": taken},
    ]}, raise_exc=False)
    check(raw.status_code == 409 and raw.json()["NeutronError"]["type"] == "IpAddressInUse",
          "bulk floating IPs with a taken address is 409")
    check([f.id for f in net_api.ips(floating_network_id=public.id)] == [fip_id],
          "failed bulk created no floating IP")
    expect_error(exc.NotFoundException, "FloatingIPNotFound", "get a missing floating IP",
                 net_api.get_ip, "00000000-0000-4000-8000-00000000beef")
    net_api.delete_ip(fip_id, ignore_missing=False)
    check(list(net_api.ips(floating_network_id=public.id)) == [], "floating IP deleted")
    net_api.delete_subnet(psub, ignore_missing=False)
    net_api.delete_network(public, ignore_missing=False)


def external_network(net_api, member):
    """The standard floating-IP flow: an external network with a subnet, a
    router with its gateway there (a `network:router_gateway` port with an
    address of it) and an interface on an internal subnet, a floating IP of
    the external network on a port behind the router; Neutron's 404 without
    the router path and 409 while the floating IP needs the gateway."""
    ext = net_api.create_network(name="smoke-ext", is_router_external=True)
    check(ext.is_router_external, "create an external network")
    check([n.id for n in net_api.networks(is_router_external=True)] == [ext.id],
          "filter networks by router:external")
    esub = net_api.create_subnet(network_id=ext.id, cidr="203.0.113.0/24", ip_version=4)
    inner = net_api.create_network(name="smoke-inner")
    isub = net_api.create_subnet(network_id=inner.id, cidr="10.61.0.0/24", ip_version=4)
    port = net_api.create_port(network_id=inner.id, binding_host_id=HOSTS[0])
    router = net_api.create_router(name="smoke-gw-router")
    check(router.external_gateway_info is None, "a new router has no gateway")
    net_api.add_interface_to_router(router, subnet_id=isub.id)
    expect_error(exc.NotFoundException, "ExternalGatewayForFloatingIPNotFound",
                 "floating IP of an external network with no router path",
                 net_api.create_ip, floating_network_id=ext.id, port_id=port.id)
    expect_error(exc.BadRequestException, "InvalidInput",
                 "gateway on a network that is not external",
                 net_api.update_router, router, external_gateway_info={"network_id": inner.id})
    router = net_api.update_router(router, external_gateway_info={"network_id": ext.id})
    info = router.external_gateway_info
    check(info["network_id"] == ext.id and info["enable_snat"] is True
          and info["external_fixed_ips"][0]["subnet_id"] == esub.id
          and info["external_fixed_ips"][0]["ip_address"].startswith("203.0.113."),
          "set the router's external gateway (SNAT on by default)")
    gw_ip = info["external_fixed_ips"][0]["ip_address"]
    gw_ports = list(net_api.ports(device_id=router.id, device_owner="network:router_gateway"))
    check(len(gw_ports) == 1 and gw_ports[0].network_id == ext.id
          and gw_ports[0].fixed_ips[0]["ip_address"] == gw_ip,
          "the gateway is a network:router_gateway port of the router")
    expect_error(exc.ConflictException, "ServicePortInUse", "delete the gateway port",
                 net_api.delete_port, gw_ports[0], ignore_missing=False)
    fip = net_api.create_ip(floating_network_id=ext.id, port_id=port.id)
    check(fip.status == "ACTIVE" and fip.router_id == router.id
          and fip.floating_ip_address.startswith("203.0.113."),
          "floating IP of the external network behind the router")
    # New external fixed IPs that include the gateway's address keep it.
    router = net_api.update_router(router, external_gateway_info={
        "network_id": ext.id,
        "external_fixed_ips": [{"ip_address": gw_ip}, {"ip_address": "203.0.113.250"}]})
    check([f["ip_address"] for f in router.external_gateway_info["external_fixed_ips"]]
          == [gw_ip, "203.0.113.250"],
          "move the gateway to addresses that include its own: it keeps it")
    router = net_api.update_router(
        router, external_gateway_info={"network_id": ext.id, "enable_snat": False})
    info = router.external_gateway_info
    check(info["enable_snat"] is False and info["external_fixed_ips"][0]["ip_address"] == gw_ip,
          "disable SNAT, keeping the gateway address")
    expect_error(exc.ConflictException, "RouterExternalGatewayInUseByFloatingIp",
                 "clear a gateway a floating IP needs",
                 net_api.update_router, router, external_gateway_info={})
    expect_error(exc.ConflictException, "RouterInUse",
                 "remove the interface a floating IP needs",
                 net_api.remove_interface_from_router, router, subnet_id=isub.id)
    # Another project allocates from the external network too.
    theirs = member.create_ip(floating_network_id=ext.id)
    check(theirs.project_id != "admin" and theirs.floating_ip_address.startswith("203.0.113."),
          "a member allocates a floating IP of the external network")
    member.delete_ip(theirs, ignore_missing=False)
    net_api.delete_ip(fip, ignore_missing=False)
    router = net_api.update_router(router, external_gateway_info={})
    check(router.external_gateway_info is None, "clear the gateway")
    check(list(net_api.ports(device_id=router.id, device_owner="network:router_gateway")) == [],
          "clearing the gateway deletes its port")
    net_api.remove_interface_from_router(router, subnet_id=isub.id)
    net_api.delete_router(router, ignore_missing=False)
    net_api.delete_port(port, ignore_missing=False)
    for sub_, net_ in ((isub, inner), (esub, ext)):
        net_api.delete_subnet(sub_, ignore_missing=False)
        net_api.delete_network(net_, ignore_missing=False)
    print("ok: external network, router gateway and floating IP through it")


def tags(net_api, net_id):
    """Tags in bodies, the four tag filters, and the tags sub-resource."""
    tagged = net_api.create_network(name="smoke-tagged", tags=["red", "blue"])
    check(sorted(tagged.tags) == ["blue", "red"], "create network with tags")
    names = lambda **f: sorted(n.name for n in net_api.networks(**f))  # noqa: E731
    check(names(tags="red,blue") == ["smoke-tagged"], "filter tags")
    check(names(any_tags="red,green") == ["smoke-tagged"], "filter tags-any")
    check("smoke-tagged" not in names(not_tags="red"), "filter not-tags")
    check("smoke-tagged" not in names(not_any_tags="green,blue"), "filter not-tags-any")
    net_api.set_tags(tagged, ["x", "y"])
    check(net_api.get_tags(net_api.get_network(tagged.id)) == ["x", "y"], "replace every tag")
    net_api.add_tag(tagged, "z")
    net_api.check_tag(tagged, "z")
    expect_error(exc.NotFoundException, "TagNotFound", "check a missing tag",
                 net_api.check_tag, tagged, "nope")
    net_api.remove_tag(tagged, "x")
    check(net_api.get_network(tagged.id).tags == ["y", "z"], "add and remove one tag")
    net_api.remove_all_tags(tagged)
    check(net_api.get_network(tagged.id).tags == [], "remove every tag")
    port = net_api.create_port(network_id=net_id, name="smoke-tagged-port", tags=["web"])
    check(port.tags == ["web"], "create port with a tag")
    check([p.id for p in net_api.ports(tags="web")] == [port.id], "filter ports by tag")
    expect_error(exc.BadRequestException, "InvalidInput", "a tag with a comma",
                 net_api.create_network, name="smoke-bad-tag", tags=["a,b"])
    net_api.delete_port(port, ignore_missing=False)
    net_api.delete_network(tagged, ignore_missing=False)


def address_pairs(net_api, net_id):
    """Allowed address pairs come back as sent, the MAC defaulting to the port's."""
    port = net_api.create_port(network_id=net_id, name="smoke-pairs", allowed_address_pairs=[
        {"ip_address": "10.77.0.200"},
        {"ip_address": "10.77.1.0/24", "mac_address": "fa:16:3e:00:00:aa"},
        {"ip_address": "10.77.2.1/32"},
    ])
    want = [
        {"ip_address": "10.77.0.200", "mac_address": port.mac_address},
        {"ip_address": "10.77.1.0/24", "mac_address": "fa:16:3e:00:00:aa"},
        {"ip_address": "10.77.2.1/32", "mac_address": port.mac_address},
    ]
    got = lambda p: sorted(p.allowed_address_pairs, key=lambda a: a["ip_address"])  # noqa: E731
    check(got(port) == want, "address pairs come back as sent")
    check(got(net_api.get_port(port.id)) == want, "address pairs read back as sent")
    updated = net_api.update_port(port, allowed_address_pairs=[{"ip_address": "10.77.0.201"}])
    check(updated.allowed_address_pairs
          == [{"ip_address": "10.77.0.201", "mac_address": port.mac_address}],
          "address pairs replaced as sent")
    net_api.delete_port(port, ignore_missing=False)


def port_security(net_api, net_id):
    """port_security_enabled on networks (the default of their ports) and ports."""
    sg = net_api.create_security_group(name="smoke-ps-sg")
    open_net = net_api.create_network(name="smoke-open", is_port_security_enabled=False)
    check(open_net.is_port_security_enabled is False, "network without port security")
    open_port = net_api.create_port(network_id=open_net.id, name="smoke-open-port")
    check(open_port.is_port_security_enabled is False and open_port.security_group_ids == [],
          "its ports have port security off and no security group")
    expect_error(exc.ConflictException, "PortSecurityAndIPRequiredForSecurityGroups",
                 "port security off with a security group", net_api.create_port,
                 network_id=open_net.id, security_group_ids=[sg.id])
    expect_error(exc.ConflictException, "AddressPairAndPortSecurityRequired",
                 "port security off with an address pair", net_api.create_port,
                 network_id=open_net.id, allowed_address_pairs=[{"ip_address": "10.0.0.9"}])
    guarded = net_api.create_port(network_id=net_id, name="smoke-guarded",
                                  security_group_ids=[sg.id])
    check(guarded.is_port_security_enabled is True, "port security on by default")
    expect_error(exc.ConflictException, "PortSecurityAndIPRequiredForSecurityGroups",
                 "turn port security off while groups remain", net_api.update_port,
                 guarded.id, is_port_security_enabled=False)
    opened = net_api.update_port(guarded.id, is_port_security_enabled=False,
                                 security_group_ids=[])
    check(opened.is_port_security_enabled is False and opened.security_group_ids == [],
          "port security off with the groups removed")
    explicit = net_api.create_port(network_id=net_id, name="smoke-off",
                                   is_port_security_enabled=False)
    check(explicit.is_port_security_enabled is False and explicit.security_group_ids == [],
          "a port asks for port security off")
    net_api.update_network(open_net.id, is_port_security_enabled=True)
    check(net_api.get_network(open_net.id).is_port_security_enabled is True,
          "network port security back on")
    later = net_api.create_port(network_id=open_net.id, name="smoke-later")
    check(later.is_port_security_enabled is True and len(later.security_group_ids) == 1,
          "its new ports get port security and the default group")
    for p in (open_port, guarded, explicit, later):
        net_api.delete_port(p.id, ignore_missing=False)
    net_api.delete_network(open_net, ignore_missing=False)
    net_api.delete_security_group(sg, ignore_missing=False)


def router_ports(net_api, net_id):
    """Router interfaces are ports: by subnet a port on the gateway address,
    owned by the router and listed by `ports(device_id=router)`; the port API
    may not delete it (409); removing the interface deletes it. By port: the
    given port becomes the interface."""
    sub = net_api.create_subnet(
        network_id=net_id, cidr="10.21.0.0/24", ip_version=4, name="smoke-rif-sub"
    )
    router = net_api.create_router(name="smoke-rif-router")
    info = net_api.add_interface_to_router(router, subnet_id=sub.id)
    check(info["port_id"] and info["subnet_id"] == sub.id, "interface answers its port")
    port = net_api.get_port(info["port_id"])
    check(port.device_owner == "network:router_interface" and port.device_id == router.id,
          "interface port is owned by the router")
    check([f["ip_address"] for f in port.fixed_ips] == [sub.gateway_ip]
          and port.fixed_ips[0]["subnet_id"] == sub.id,
          "interface port holds the gateway address")
    check([p.id for p in net_api.ports(device_id=router.id)] == [port.id],
          "ports of the router list the interface port")
    expect_error(exc.ConflictException, "ServicePortInUse", "delete a router interface port",
                 net_api.delete_port, port, ignore_missing=False)
    info = net_api.remove_interface_from_router(router, subnet_id=sub.id)
    check(info["port_id"] == port.id, "removal answers the interface port")
    check(net_api.find_port(port.id) is None, "removing the interface deleted its port")
    given = net_api.create_port(network_id=net_id, fixed_ips=[{"subnet_id": sub.id}],
                                name="smoke-rif-given")
    info = net_api.add_interface_to_router(router, port_id=given.id)
    check(info["port_id"] == given.id and info["subnet_id"] == sub.id, "interface by port")
    owned = net_api.get_port(given.id)
    check(owned.device_owner == "network:router_interface" and owned.device_id == router.id,
          "the given port is the interface")
    net_api.remove_interface_from_router(router, port_id=given.id)
    check(net_api.find_port(given.id) is None, "removing by port deleted it (as Neutron)")
    net_api.delete_router(router, ignore_missing=False)
    net_api.delete_subnet(sub, ignore_missing=False)
    print("ok: router interfaces are ports")


def binding_before_host(net_api, net_id):
    """Nova binds before the host's agent ever connected: the port is
    accepted, DOWN with vif_type binding_failed; the host registers, its agent
    connects, receives the port and acks it: vif_type ovs, ACTIVE."""
    late = os.environ["ALCOR_SMOKE_LATE_HOST"]
    port = net_api.create_port(network_id=net_id, name="smoke-late", binding_host_id=late,
                               device_id="vm-late", device_owner="compute:nova")
    check(port.binding_host_id == late and port.status == "DOWN"
          and port.binding_vif_type == "binding_failed",
          "bound to an unknown host: DOWN, binding_failed")
    subprocess.run(shlex.split(os.environ["ALCOR_SMOKE_REGISTER_LATE_HOST"]), check=True,
                   stdout=subprocess.DEVNULL)
    port = net_api.get_port(port.id)
    check(port.binding_vif_type == "ovs" and port.binding_vif_details.get("port_filter") is True,
          "the host registered: vif_type ovs")
    with open(os.environ["ALCOR_SMOKE_AGENT_LOG"], "w") as log:
        agent = subprocess.Popen(shlex.split(os.environ["ALCOR_SMOKE_LATE_AGENT"]),
                                 stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while net_api.get_port(port.id).status != "ACTIVE":
            if time.monotonic() > deadline or agent.poll() is not None:
                check(False, "the late host's agent programs the port within 30 s")
            time.sleep(0.2)
        print("ok: the late host's agent received the port and acked it: ACTIVE")
    finally:
        agent.kill()
        agent.wait(timeout=10)
    net_api.delete_port(port, ignore_missing=False)


def quotas(net_api, member):
    """An admin sets a member project's router quota; the member hits it."""
    project = member.create_network(name="smoke-qnet").project_id
    quota = net_api.update_quota(project, routers=1)
    check(quota.routers == 1, "set quota")
    check(member.get_quota(project).routers == 1, "member reads its quota")
    first = member.create_router(name="smoke-q1")
    expect_error(exc.ConflictException, "OverQuota", "create over quota",
                 member.create_router, name="smoke-q2")
    details = member.get_quota(project, details=True)
    check(details.routers == {"limit": 1, "used": 1, "reserved": 0}, "quota details")
    net_api.delete_quota(project)
    check(net_api.get_quota(project).routers != 1, "reset quota")
    member.delete_router(first, ignore_missing=False)
    for n in member.networks(name="smoke-qnet"):
        member.delete_network(n, ignore_missing=False)


def main():
    conn = connect(ADMIN)
    net_api = conn.network

    # Version discovery went through GET / (keystoneauth) on the first call.
    net = net_api.create_network(name="smoke-net")
    check(net.id and net.status == "ACTIVE" and net.mtu > 0, "create network")
    check(net.project_id == "admin", "network defaults to the token's project")
    sub = net_api.create_subnet(
        network_id=net.id, cidr="10.20.0.0/24", ip_version=4, name="smoke-sub"
    )
    check(sub.gateway_ip == "10.20.0.1" and sub.ip_version == 4, "create subnet")
    check(net_api.get_network(net.id).subnet_ids == [sub.id], "network lists its subnet")

    # Bulk create: all or nothing.
    bulk = [
        {"network_id": net.id, "name": f"smoke-p{i}", "binding_host_id": HOSTS[i % 2],
         "device_id": f"vm-{i}", "device_owner": "compute:nova"}
        for i in range(4)
    ]
    ports = net_api.create_ports(bulk)
    ports = list(ports)
    check(len(ports) == 4 and all(p.id for p in ports), "bulk create 4 ports")
    check(all(p.fixed_ips and p.fixed_ips[0]["subnet_id"] == sub.id for p in ports),
          "bulk ports got addresses")
    taken = ports[0].fixed_ips[0]["ip_address"]
    expect_error(
        exc.ConflictException, "IpAddressInUse", "bulk create with a taken IP",
        lambda: list(net_api.create_ports([
            {"network_id": net.id, "name": "smoke-x1"},
            {"network_id": net.id, "name": "smoke-x2", "fixed_ips": [{"ip_address": taken}]},
        ])),
    )
    names = sorted(p.name for p in net_api.ports(network_id=net.id))
    check(names == [f"smoke-p{i}" for i in range(4)], "failed bulk created nothing")

    # List and filter (and pagination: the SDK follows ports_links).
    on_h0 = list(net_api.ports(binding_host_id=HOSTS[0]))
    check(sorted(p.name for p in on_h0) == ["smoke-p0", "smoke-p2"], "filter by binding:host_id")
    check([p.name for p in net_api.ports(name="smoke-p1")] == ["smoke-p1"], "filter by name")
    check(len(list(net_api.ports(device_id="vm-3"))) == 1, "filter by device_id")
    paged = list(net_api.ports(network_id=net.id, limit=1))
    check(len(paged) == 4, "paging with limit=1 follows the next links")
    check(any(n.id == net.id for n in net_api.networks(name="smoke-net")), "list networks")
    check([s.id for s in net_api.subnets(network_id=net.id)] == [sub.id], "list subnets")

    # Update with If-Match: current revision passes, a stale one is 412.
    # (update_port updates the object it is given: keep the old revision apart.)
    port_id, old_revision = ports[0].id, ports[0].revision_number
    updated = net_api.update_port(port_id, name="smoke-renamed", binding_host_id=HOSTS[1],
                                  if_revision=old_revision)
    check(updated.name == "smoke-renamed" and updated.binding_host_id == HOSTS[1],
          "update with the current revision")
    check(updated.revision_number > old_revision, "revision_number moved")
    expect_error(
        exc.PreconditionFailedException, "RevisionNumberConstraintFailed",
        "update with a stale revision",
        net_api.update_port, port_id, name="late", if_revision=old_revision,
    )
    expect_error(
        exc.PreconditionFailedException, "RevisionNumberConstraintFailed",
        "delete with a stale revision",
        net_api.delete_port, port_id, if_revision=old_revision,
    )

    net_revision = net_api.get_network(net.id).revision_number
    renamed = net_api.update_network(net.id, name="smoke-net-2", if_revision=net_revision)
    check(renamed.name == "smoke-net-2", "update network with the current revision")
    expect_error(
        exc.PreconditionFailedException, "RevisionNumberConstraintFailed",
        "update network with a stale revision",
        net_api.update_network, net.id, name="late", if_revision=net_revision,
    )

    # Error types.
    missing = "00000000-0000-4000-8000-00000000dead"
    expect_error(exc.NotFoundException, "PortNotFound", "get a missing port",
                 net_api.get_port, missing)
    expect_error(exc.NotFoundException, "NetworkNotFound", "port on a missing network",
                 net_api.create_port, network_id=missing)
    expect_error(exc.ConflictException, "IpAddressInUse", "create with a taken IP",
                 net_api.create_port, network_id=net.id,
                 fixed_ips=[{"ip_address": taken}])
    expect_error(exc.ConflictException, "SubnetInUse", "delete a subnet with ports",
                 net_api.delete_subnet, sub, ignore_missing=False)
    expect_error(exc.BadRequestException, "InvalidInput", "an invalid CIDR",
                 net_api.create_subnet, network_id=net.id, cidr="10.30.0.1/24", ip_version=4)
    raw = net_api.get("/ports?colour=red", raise_exc=False)
    check(raw.status_code == 400 and raw.json()["NeutronError"]["type"] == "BadRequest",
          "unknown filter is 400")

    # Project scoping: a member of another project sees none of it.
    member = connect(MEMBER).network
    check(list(member.networks()) == [], "member lists only its project")
    expect_error(exc.NotFoundException, "NetworkNotFound", "member reads another project",
                 member.get_network, net.id)
    own = member.create_network(name="member-net")
    check(own.project_id != "admin", "member creates in its project")
    member.delete_network(own, ignore_missing=False)

    floating_ips(net_api, ports[1])
    external_network(net_api, member)
    tags(net_api, net.id)
    security_groups(net_api)
    routers(net_api)
    router_ports(net_api, net.id)
    binding_before_host(net_api, net.id)
    quotas(net_api, member)
    address_pairs(net_api, net.id)
    port_security(net_api, net.id)

    # Delete everything (with the current revision for one of them).
    fresh = net_api.get_port(updated.id)
    net_api.delete_port(fresh, ignore_missing=False, if_revision=fresh.revision_number)
    for p in ports[1:]:
        net_api.delete_port(p, ignore_missing=False)
    check(list(net_api.ports(network_id=net.id)) == [], "ports deleted")
    net_api.delete_subnet(sub, ignore_missing=False)
    net_api.delete_network(net, ignore_missing=False)
    expect_error(exc.NotFoundException, "NetworkNotFound", "network is gone",
                 net_api.get_network, net.id)
    print("openstacksdk smoke: all checks passed")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.1f} s)")
