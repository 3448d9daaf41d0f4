"""Offline checks of the deployment files under deploy/ (run by deploy/check.sh
inside its venv, which provides kubernetes-validate, PyYAML and hadolint).

- Kubernetes: every manifest validates, strictly (unknown fields fail), against
  the Kubernetes schemas kubernetes-validate bundles, for the oldest and the
  newest version it knows; the ports the probes and Services name exist.
- `alcor server` flags: every flag and ALCOR_* variable the manifests, the
  systemd unit and its environment file, and the Dockerfile give is one
  `alcor server --help` lists. The StatefulSet's start script is run for each
  member (with a stand-in `alcor` that records its arguments), and each
  command line it and the systemd unit produce is parsed by the real binary
  (`alcor server ARGS --help`: clap checks every name and value, starts
  nothing); the members must agree on --initial-cluster.
- Boot (as root): those command lines run as real processes on loopback
  addresses, with the pods' DNS names in a private /etc/hosts and TLS material
  made as README "Deployment" says; they elect a leader, replicate a write, take
  in the member beyond the initial ones (--join, add-learner, promote) and stop
  cleanly on SIGTERM.
- systemd: `systemd-analyze verify` prints nothing, and `systemd-analyze
  security --offline` rates the unit's exposure at most SYSTEMD_EXPOSURE_MAX.
- Dockerfile: hadolint passes, every COPY source exists, every workspace
  member is copied, and it exposes the ports the StatefulSet declares.

Usage: check.py ALCOR_BIN. Prints one line per failure and a closing
"deploy-check: N passed, M failed"; exit status 1 on any failure.
"""

import http.client
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# Oldest and newest schema versions the pinned kubernetes-validate bundles.
KUBERNETES_VERSIONS = ["1.25.0", "1.37.0"]
# `systemd-analyze security` exposure, in tenths (its --threshold unit is 0-100
# for the 0.0-10.0 scale): 2.0 and below is rated "OK".
SYSTEMD_EXPOSURE_MAX = 20
WORKLOAD_KINDS = {"StatefulSet", "Deployment", "DaemonSet", "Job"}

failures = []
passes = 0


def check(ok, what):
    """Records one check; `what` says what failed."""
    global passes
    if ok:
        passes += 1
    else:
        failures.append(what)
        print(f"FAIL {what}", flush=True)


def rel(path):
    return path.relative_to(ROOT)


class ServerHelp:
    """The flags and ALCOR_* variables of `alcor server`, from its --help."""

    def __init__(self, alcor):
        self.alcor = alcor
        text = subprocess.run(
            [alcor, "server", "--help"], check=True, capture_output=True, text=True
        ).stdout
        self.flags = set()
        self.env_flag = {}
        self.takes_value = {}
        flag = None
        for line in text.splitlines():
            m = re.match(r"^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)( <)?", line)
            if m:
                flag = m.group(1)
                self.flags.add(flag)
                self.takes_value[flag] = m.group(2) is not None
            m = re.search(r"\[env: (ALCOR_[A-Z0-9_]+)", line)
            if m and flag:
                self.env_flag[m.group(1)] = flag
        if not {"id", "initial-cluster", "tls-cert"} <= self.flags:
            sys.exit(f"cannot read the flags of `{alcor} server --help`")

    def check_names(self, flags, env_names, where):
        for flag in sorted(set(flags)):
            check(flag in self.flags, f"{where}: --{flag} is not a flag of `alcor server`")
        for name in sorted(set(env_names)):
            check(
                name in self.env_flag,
                f"{where}: {name} is not a variable of `alcor server` (see its --help)",
            )

    def env_as_flags(self, env):
        """The command-line form of ALCOR_* settings (clap reads both the same)."""
        args = []
        for name, value in env.items():
            flag = self.env_flag.get(name)
            if flag is None:
                continue
            if self.takes_value[flag]:
                args += [f"--{flag}", value]
            elif value.lower() in ("1", "true", "yes", "on"):
                args.append(f"--{flag}")
        return args

    def check_parses(self, argv, where):
        """`alcor server ARGV --help`: clap parses every flag and value, then
        prints help instead of starting."""
        res = subprocess.run(
            [self.alcor, "server", *argv, "--help"], capture_output=True, text=True
        )
        error = (res.stderr.strip().splitlines() or [""])[0]
        check(
            res.returncode == 0, f"{where}: `alcor server` refuses it: {error}: {shlex.join(argv)}"
        )


def flags_in(text):
    """The --flags of `alcor server` invocations in a command or script."""
    flags = []
    for part in re.split(r"\balcor server\b", text)[1:]:
        flags += re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", part)
    return flags


# ---- Kubernetes ----


def containers_of(doc):
    if doc.get("kind") not in WORKLOAD_KINDS:
        return []
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec.get("containers", [])


def check_kubernetes(server_help):
    manifests = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    check(manifests, "deploy/kubernetes: no manifests")
    docs = []
    for path in manifests:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append((path, doc))
    for path, doc in docs:
        name = f"{rel(path)} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                check(True, "")
            except Exception as e:  # every failure, a missing schema included
                path_in = ".".join(str(p) for p in getattr(e, "path", []))
                message = getattr(e, "message", str(e))
                at = f"{path_in}: " if path_in else ""
                check(False, f"{name}: not a valid object of Kubernetes {version}: {at}{message}")
    container_ports = {}
    for path, doc in docs:
        for c in containers_of(doc):
            for p in c.get("ports", []):
                container_ports[p.get("name")] = p["containerPort"]
    for path, doc in docs:
        for c in containers_of(doc):
            where = f"{rel(path)} container {c['name']}"
            script = " ".join(c.get("command", []) + c.get("args", []))
            env_names = [e["name"] for e in c.get("env", []) if e["name"].startswith("ALCOR_")]
            server_help.check_names(flags_in(script), env_names, where)
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None:
                    check(
                        port in container_ports or port in container_ports.values(),
                        f"{where}: {probe} names port {port!r}, which the container does not open",
                    )
            # Every address flag binds a port the container declares.
            for flag, port in re.findall(r"--([a-z-]+-addr) \S*:(\d+)", script):
                check(
                    int(port) in container_ports.values(),
                    f"{where}: --{flag} binds port {port}, not among the container's ports",
                )
            if "alcor server" in script and doc["kind"] == "StatefulSet":
                check_statefulset_members(server_help, doc, c, where)
        if doc.get("kind") == "Service":
            for p in doc["spec"].get("ports", []):
                target = p.get("targetPort", p["port"])
                check(
                    target in container_ports or target in container_ports.values(),
                    f"{rel(path)} Service/{doc['metadata']['name']}: targetPort {target!r} is no container port",
                )
    return container_ports


def render(script_argv, env):
    """Runs a container's start command with a stand-in `alcor` on PATH and
    returns the arguments it was exec'd with."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "argv"
        fake = Path(tmp) / "alcor"
        fake.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {shlex.quote(str(out))}\n")
        fake.chmod(0o755)
        env = {**env, "PATH": f"{tmp}:{os.environ['PATH']}"}
        res = subprocess.run(script_argv, env=env, capture_output=True, text=True, timeout=30)
        if res.returncode != 0 or not out.exists():
            return None, res.stderr.strip()
        return out.read_bytes().decode().split("\0")[:-1], ""


def flag_value(argv, flag):
    if f"--{flag}" not in argv:
        return None
    return argv[argv.index(f"--{flag}") + 1]


def check_statefulset_members(server_help, doc, container, where):
    """Each member's command line parses, and the members agree on the
    cluster: for the manifest's replicas, and one member beyond them (scaled
    up later: it must --join)."""
    set_name = doc["metadata"]["name"]
    replicas = doc["spec"].get("replicas", 1)
    if not isinstance(replicas, int):
        return  # the schema check reports it
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    env.update(POD_NAMESPACE="default", POD_NAME="")
    initial_members = int(env.get("INITIAL_MEMBERS", replicas))
    check(
        initial_members == replicas,
        f"{where}: INITIAL_MEMBERS={initial_members} but replicas={replicas} (change both)",
    )
    clusters = set()
    members = {}
    for ordinal in range(replicas + 1):
        env["POD_NAME"] = f"{set_name}-{ordinal}"
        member = f"{where} as pod {env['POD_NAME']}"
        argv, error = render(container["command"] + container.get("args", []), env)
        check(argv is not None, f"{member}: the start script fails: {error}")
        if argv is None:
            continue
        check(argv[:1] == ["server"], f"{member}: runs `alcor {argv[:1]}`, not `alcor server`")
        argv = argv[1:]
        members[ordinal] = argv
        server_help.check_parses(argv, member)
        member_id = ordinal + 1
        check(flag_value(argv, "id") == str(member_id), f"{member}: --id is not {member_id}")
        cluster = flag_value(argv, "initial-cluster") or ""
        ids = [entry.split("=", 1)[0] for entry in cluster.split(",")]
        host = f"{set_name}-{ordinal}."
        mine = [e for e in cluster.split(",") if e.startswith(f"{member_id}=")]
        check(
            len(mine) == 1 and mine[0].count(host) == 2,
            f"{member}: --initial-cluster does not name this pod for id {member_id}: {cluster}",
        )
        if ordinal < replicas:
            clusters.add(cluster)
            check("--join" not in argv, f"{member}: an initial member must not --join")
            check(
                ids == [str(i) for i in range(1, replicas + 1)],
                f"{member}: --initial-cluster ids are {ids}",
            )
        else:
            check("--join" in argv, f"{member}: a member beyond the initial ones must --join")
        for flag in ("tls-cert", "tls-key"):
            value = flag_value(argv, flag) or ""
            check(
                f"peer-{member_id}" in value,
                f"{member}: --{flag} {value} is not member {member_id}'s",
            )
    check(len(clusters) == 1, f"{where}: members disagree on --initial-cluster: {sorted(clusters)}")
    if len(members) == replicas + 1 and not failures:
        check_boot(server_help.alcor, container, members, where)


# ---- Boot ----

# Bound on each wait of the boot check (leader, membership change, stop).
BOOT_WAIT_S_MAX = 60
# How long a booted member's probe may answer anything but 200.
PROBE_WAIT_S_MAX = 10


def in_hosts(hosts, argv):
    """`argv` in a private mount namespace whose /etc/hosts is `hosts`."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(hosts), *argv]


def check_boot(alcor, container, members, where):
    """Boots the members' rendered command lines as real processes: TLS
    material made as README "Deployment" says, the pods' DNS names mapped to
    loopback addresses (a private /etc/hosts), each member binding its own
    loopback address instead of 0.0.0.0. The members elect a leader, the
    container's HTTP probes answer 200 to a request as the kubelet sends it, a
    write on one member is read on another, the member beyond the initial ones
    joins (add-learner, promote) and every member stops cleanly on SIGTERM."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("deploy-check: not root: the StatefulSet's command lines are not booted", flush=True)
        return
    work = Path(tempfile.mkdtemp(prefix="alcor-deploy-boot."))
    procs = {}
    ctl_errors = []
    try:
        joiner = max(members)
        cluster = flag_value(members[joiner], "initial-cluster")
        hosts = {}  # member id -> the pod's DNS name
        for entry in cluster.split(","):
            member_id, addrs = entry.split("=", 1)
            hosts[int(member_id)] = addrs.split("/")[0].rsplit(":", 1)[0]
        namespace = hosts[1].split(".")[2]
        hosts_file = work / "hosts"
        hosts_file.write_text(
            "127.0.0.1 localhost\n"
            + "".join(f"127.0.0.{10 + i} {host}\n" for i, host in hosts.items())
        )
        tls = work / "etc/alcor/tls"
        (work / "etc/alcor/tokens").mkdir(parents=True)
        (work / "etc/alcor/tokens/tokens.toml").write_text('["boot-check-admin"]\nrole = "admin"\n')
        client_service = f"alcor.{namespace}.svc.cluster.local,alcor.{namespace}.svc,localhost"
        for member_id, host in hosts.items():
            certs = [alcor, "certs", "--dir", str(tls), "--identity", f"peer/{member_id}"]
            certs += ["--ip", "127.0.0.1", "--dns", f"{host},{client_service}"]
            subprocess.run(certs, check=True, capture_output=True)
        subprocess.run(
            [alcor, "certs", "--dir", str(tls), "--identity", "admin"],
            check=True,
            capture_output=True,
        )

        def start(ordinal):
            member_id = ordinal + 1
            argv = [
                a.replace("0.0.0.0:", f"127.0.0.{10 + member_id}:")
                .replace("/etc/alcor/", f"{work}/etc/alcor/")
                .replace("/var/lib/alcor", f"{work}/data-{member_id}")
                for a in members[ordinal]
            ]
            log = open(work / f"member-{member_id}.log", "w")
            procs[member_id] = subprocess.Popen(
                in_hosts(hosts_file, [alcor, "server", *argv]), stdout=log, stderr=subprocess.STDOUT
            )

        def ctl(member_id, *args):
            argv = [alcor, "ctl", "-o", "json", "--endpoints", f"{hosts[member_id]}:8001"]
            argv += ["--ca-file", str(tls / "ca.pem"), "--cert-file", str(tls / "admin.pem")]
            argv += ["--key-file", str(tls / "admin-key.pem"), "--timeout-ms", "5000", *args]
            res = subprocess.run(
                in_hosts(hosts_file, argv), capture_output=True, text=True, timeout=60
            )
            ctl_errors.append(" ".join(res.stderr.split()))
            return res.stdout if res.returncode == 0 else None

        def wait_for(what, predicate):
            deadline = time.monotonic() + BOOT_WAIT_S_MAX
            while time.monotonic() < deadline:
                if predicate():
                    return True
                exited = {i: p.returncode for i, p in procs.items() if p.poll() is not None}
                if exited:
                    check(
                        False, f"{where}: booted members exited (id: status) {exited} before {what}"
                    )
                    return False
                time.sleep(0.5)
            check(False, f"{where}: booted members: {what} within {BOOT_WAIT_S_MAX} s")
            return False

        def status(member_id):
            out = ctl(member_id, "cluster", "status")
            return json.loads(out) if out else {}

        def sees(member_id, voters):
            s = status(member_id)
            ids = sorted(m["id"] for m in s.get("members", []) if m["voter"])
            return s.get("leader_id") is not None and ids == voters

        initial = sorted(o for o in members if o != joiner)
        voters = [o + 1 for o in initial]
        for ordinal in initial:
            start(ordinal)
        if not all(
            wait_for(f"member {o + 1} sees a leader", lambda o=o: sees(o + 1, voters))
            for o in initial
        ):
            return
        check(True, "")
        check_probes(container, "127.0.0.11", where)
        created = ctl(
            1,
            "vpcs",
            "create",
            "--project-id",
            "deploy-check",
            "--name",
            "deploy-boot-check",
            "--cidr",
            "10.0.0.0/16",
        )
        check(
            created is not None,
            f"{where}: booted members: a VPC cannot be created through member 1: {ctl_errors[-1]}",
        )
        last = max(voters)
        wait_for(
            f"member {last} reads the VPC written through member 1",
            lambda: "deploy-boot-check" in (ctl(last, "vpcs", "list") or ""),
        )
        joiner_id = joiner + 1
        start(joiner)
        host = hosts[joiner_id]
        added = ctl(
            1,
            "cluster",
            "add-learner",
            "--id",
            str(joiner_id),
            "--raft-addr",
            f"{host}:7001",
            "--api-addr",
            f"{host}:8001",
        )
        check(
            added is not None, f"{where}: booted members: add-learner {joiner_id}: {ctl_errors[-1]}"
        )
        promoted = ctl(1, "cluster", "promote", str(joiner_id))
        check(
            promoted is not None, f"{where}: booted members: promote {joiner_id}: {ctl_errors[-1]}"
        )
        wait_for(
            f"the joined member {joiner_id} sees itself a voter",
            lambda: sees(joiner_id, voters + [joiner_id]),
        )
        for member_id, proc in procs.items():
            proc.terminate()
        for member_id, proc in procs.items():
            try:
                code = proc.wait(timeout=BOOT_WAIT_S_MAX)
            except subprocess.TimeoutExpired:
                code = None
            check(code == 0, f"{where}: booted member {member_id} ends with {code} on SIGTERM")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if failures:
            for log in sorted(work.glob("member-*.log")):
                print(f"---- {log.name} (tail)", flush=True)
                print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), flush=True)
        shutil.rmtree(work, ignore_errors=True)


def check_probes(container, address, where):
    """Each httpGet probe of `container`, sent to a member at `address` as the
    kubelet sends it: no credential, the certificate not verified."""
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container.get(probe, {}).get("httpGet")
        if get is None:
            continue
        port = ports.get(get["port"], get["port"])
        url = f"{get.get('scheme', 'HTTP').lower()}://{address}:{port}{get['path']}"
        # The kubelet asks again every period: a member may take a moment to
        # apply what was committed before it started.
        deadline = time.monotonic() + PROBE_WAIT_S_MAX
        while True:
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as res:
                    status = res.status
            except urllib.error.HTTPError as e:
                status = e.code
            except (OSError, http.client.HTTPException) as e:
                status = repr(e)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        check(status == 200, f"{where}: {probe} {url} answers {status}, not 200, to the kubelet")


# ---- systemd ----


def unit_settings(path):
    settings = []
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            settings.append((m.group(1), m.group(2)))
    return settings


def env_file(path):
    env = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2)
    return env


def check_systemd(server_help):
    unit = DEPLOY / "systemd" / "alcor.service"
    settings = unit_settings(unit)
    exec_start = [v for k, v in settings if k == "ExecStart"]
    check(len(exec_start) == 1, f"{rel(unit)}: expected one ExecStart=")
    argv = shlex.split(exec_start[0]) if exec_start else []
    check(argv[1:2] == ["server"], f"{rel(unit)}: ExecStart does not run `alcor server`")
    env = {}
    for k, v in settings:
        if k == "EnvironmentFile":
            example = DEPLOY / "systemd" / Path(v.lstrip("-")).name
            check(
                example.exists(), f"{rel(unit)}: no example {rel(example)} of EnvironmentFile={v}"
            )
            if example.exists():
                env.update(env_file(example))
    server_help.check_names(
        flags_in(exec_start[0] if exec_start else ""),
        [n for n in env if n.startswith("ALCOR_")],
        str(rel(unit)),
    )
    server_help.check_parses(
        argv[2:] + server_help.env_as_flags(env), f"{rel(unit)} with its environment file"
    )

    if shutil.which("systemd-analyze") is None:
        print("deploy-check: no systemd-analyze here; the unit is not verified", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        # verify wants the executables to exist: point ExecStart at the build.
        copy = Path(tmp) / unit.name
        text = re.sub(
            r"^ExecStart=\S+",
            lambda _: f"ExecStart={server_help.alcor}",
            unit.read_text(),
            flags=re.M,
        )
        copy.write_text(text)
        res = subprocess.run(
            ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True
        )
        # It warns about unknown keys and bad values but exits 0: any output fails.
        output = (res.stdout + res.stderr).strip()
        check(res.returncode == 0 and not output, f"{rel(unit)}: systemd-analyze verify: {output}")
        res = subprocess.run(
            [
                "systemd-analyze",
                "security",
                "--offline=yes",
                f"--threshold={SYSTEMD_EXPOSURE_MAX}",
                str(copy),
            ],
            capture_output=True,
            text=True,
        )
        level = re.findall(r"Overall exposure level for \S+: (\S+)", res.stdout)
        check(
            res.returncode == 0,
            f"{rel(unit)}: systemd-analyze security rates the exposure {level}, above {SYSTEMD_EXPOSURE_MAX / 10}",
        )


# ---- Dockerfile ----


def check_dockerfile(server_help, container_ports):
    path = DEPLOY / "Dockerfile"
    hadolint = Path(sys.executable).parent / "hadolint"
    res = subprocess.run([str(hadolint), "--no-color", str(path)], capture_output=True, text=True)
    check(res.returncode == 0, f"{rel(path)}: hadolint: {(res.stdout + res.stderr).strip()}")
    text = path.read_text().replace("\\\n", " ")
    copied = set()
    env_names = []
    exposed = set()
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            sources = [w for w in words[1:-1] if not w.startswith("--")]
            for source in sources:
                copied.add(source.rstrip("/"))
                check(
                    (ROOT / source).exists(),
                    f"{rel(path)}: COPY source {source} is not in the repository",
                )
        if words[0] == "ENV":
            env_names += [w.split("=", 1)[0] for w in words[1:] if w.startswith("ALCOR_")]
        if words[0] == "EXPOSE":
            exposed |= {int(w.split("/")[0]) for w in words[1:]}
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    for member in members:
        check(member in copied, f"{rel(path)}: does not COPY workspace member {member}")
    server_help.check_names(flags_in(text), env_names, str(rel(path)))
    check(
        exposed == set(container_ports.values()),
        f"{rel(path)}: EXPOSE {sorted(exposed)} but the StatefulSet opens {sorted(container_ports.values())}",
    )


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check.py ALCOR_BIN")
    server_help = ServerHelp(sys.argv[1])
    container_ports = check_kubernetes(server_help)
    check_systemd(server_help)
    check_dockerfile(server_help, container_ports)
    print(f"deploy-check: {passes} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
