#!/usr/bin/env python3
"""Summarise one run of benches/run.sh: medians over the repetitions, ratios
(Alcor-RS / peer) against the issue-12 targets, as summary.json + summary.md,
and (with --plots, needs matplotlib) PNG plots, all in the run's folder.

Input files in RUN_DIR: alcor-rep<N>.json (cluster_load), etcd-rep<N>.json
(etcd_load), ovn-rep<N>.json (ovn_load), optionally alcor-restart.json,
alcor-push-kernel.json and push*.json. Usage: report.py RUN_DIR [--plots]
"""

import glob
import json
import os
import statistics
import sys


def load(run_dir, pattern):
    out = []
    for path in sorted(glob.glob(os.path.join(run_dir, pattern))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def rows_by_label(reports):
    """label -> list of row dicts, one per repetition."""
    by = {}
    for r in reports:
        for row in r.get("rows", []):
            by.setdefault(row["label"], []).append(row)
    return by


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def summarise(run_dir):
    alcor = load(run_dir, "alcor-rep*.json")
    etcd = load(run_dir, "etcd-rep*.json")
    ovn = load(run_dir, "ovn-rep*.json")
    restart = load(run_dir, "alcor-restart.json")
    push_kernel = [r["push_kernel"] for r in load(run_dir, "alcor-push-kernel.json")
                   if r.get("push_kernel")]
    a, e, o = rows_by_label(alcor), rows_by_label(etcd), rows_by_label(ovn)
    first = (alcor or etcd or ovn or [{}])[0]

    def m(by, label, key="requests_per_s"):
        return med(by.get(label, []), key)

    comp = []  # (metric, ours, peer, peer name, ratio, target text, met)

    def add(metric, ours, peer, peer_name, target=None, need=None, digits=0):
        r = ratio(ours, peer)
        met = None if need is None or r is None else r >= need
        comp.append(
            {
                "metric": metric,
                "alcor": ours,
                "peer": peer,
                "peer_name": peer_name,
                "ratio": r,
                "target": target,
                "met": met,
                "digits": digits,
            }
        )

    add("serial writes/s, 1 client", m(a, "create_port, 1 client"), m(e, "put, 1 client"),
        "etcd put", ">= 1.5x etcd", 1.5)
    p50a = m(a, "create_port, 1 client", "p50_ms")
    comp.append({"metric": "serial write p50 ms", "alcor": p50a,
                 "peer": m(e, "put, 1 client", "p50_ms"), "peer_name": "etcd put",
                 "ratio": ratio(p50a, m(e, "put, 1 client", "p50_ms")),
                 "target": "<= 0.6 ms", "met": None if p50a is None else p50a <= 0.6, "digits": 2})
    for c in (16, 64, 256):
        add(f"writes/s, {c} clients", m(a, f"create_port, {c} clients"),
            m(e, f"put, {c} clients"), "etcd put",
            ">= 1.5x etcd" if c == 256 else None, 1.5 if c == 256 else None)
    add("linearizable reads/s, 256 clients", m(a, "get_port linearizable, 256 clients"),
        m(e, "get linearizable, 256 clients"), "etcd get", ">= 1.5x etcd", 1.5)
    add("stale reads/s, 256 clients", m(a, "get_port stale, 256 clients"),
        m(e, "get serializable, 256 clients"), "etcd serializable get")
    raw100 = m(o, "ovsdb-client transact, 100/txn", "items_per_s")
    add("ports/s, 100 per request, 1 client", m(a, "create_ports x100, 1 clients", "items_per_s"),
        raw100, "OVN raw 100/txn")
    batch_rates = [m(a, f"create_ports x{size}, {c} clients", "items_per_s")
                   for size in (100, 1000) for c in (1, 4)]
    batch_rates = [v for v in batch_rates if v is not None]
    best_batch = max(batch_rates) if batch_rates else None
    add("ports/s, best batch row (x100/x1000, 1/4 clients)", best_batch, raw100,
        "OVN raw 100/txn", ">= 50,000/s and >= 3x OVN raw", 3.0)
    if best_batch is not None and comp[-1]["met"] is not None:
        comp[-1]["met"] = comp[-1]["met"] and best_batch >= 50_000
    add("ports/s, 100 per request vs ovn-nbctl", m(a, "create_ports x100, 1 clients", "items_per_s"),
        m(o, "ovn-nbctl lsp-add, 100 per txn", "items_per_s"), "OVN nbctl 100/txn")
    add("ports/s, 1 per request vs ovsdb-client", m(a, "create_port, 1 client", "items_per_s"),
        m(o, "ovsdb-client transact, 1/txn", "items_per_s"), "OVN raw 1/txn")
    add("ports/s, 1 per request vs ovn-nbctl", m(a, "create_port, 1 client", "items_per_s"),
        m(o, "ovn-nbctl lsp-add, 1 per txn", "items_per_s"), "OVN nbctl 1/txn")

    fa = [r["failover"] for r in alcor if r.get("failover")]
    fe = [r["failover"] for r in etcd if r.get("failover")]
    a_p99 = med(fa, "kill_to_ack_p99_ms")
    e_p50 = med(fe, "kill_to_ack_p50_ms")
    comp.append({"metric": "failover kill -9 -> ack ms (ours p99 / etcd p50)", "alcor": a_p99,
                 "peer": e_p50, "peer_name": "etcd", "ratio": ratio(a_p99, e_p50),
                 "target": "p99 <= 500 ms",
                 "met": None if a_p99 is None else a_p99 <= 500,
                 "digits": 0})
    comp.append({"metric": "failover kill -9 -> ack ms, p50 (ours / etcd)",
                 "alcor": med(fa, "kill_to_ack_p50_ms"), "peer": e_p50, "peer_name": "etcd",
                 "ratio": ratio(med(fa, "kill_to_ack_p50_ms"), e_p50), "target": None,
                 "met": None, "digits": 0})

    rs = [r.get("restart") for r in restart + alcor if r.get("restart")]
    summary = {
        "run_dir": os.path.abspath(run_dir),
        "date": first.get("date"),
        "machine": first.get("machine"),
        "fsync_probes": [
            {"bench": r.get("bench"), "date": r.get("date"), **(r.get("fsync_probe") or {})}
            for r in alcor + etcd + ovn + restart
        ],
        "repetitions": {"alcor": len(alcor), "etcd": len(etcd), "ovn": len(ovn)},
        "versions": {
            "etcd": (etcd[0]["config"].get("etcd_version") if etcd else None),
            "ovn": (ovn[0]["config"].get("ovn_version") if ovn else None),
        },
        "comparison": comp,
        "restart": rs,
        "push_kernel": push_kernel,
        "medians": {
            sysname: {
                label: {k: med(rows, k) for k in
                        ("requests_per_s", "items_per_s", "p50_ms", "p99_ms", "max_ms")}
                for label, rows in by.items()
            }
            for sysname, by in (("alcor", a), ("etcd", e), ("ovn", o))
        },
        "runs_per_row": {
            sysname: {label: [round(r["requests_per_s"]) for r in rows] for label, rows in by.items()}
            for sysname, by in (("alcor", a), ("etcd", e), ("ovn", o))
        },
    }
    return summary, alcor, etcd, ovn


def markdown(s):
    mach = s.get("machine") or {}
    lines = [
        f"Run {s.get('date')}: {mach.get('nproc')} vCPU {mach.get('cpu_model')}, "
        f"{mach.get('mem_total')}, Linux {mach.get('kernel')}, load at start "
        f"{mach.get('loadavg_at_start')}.",
        f"Repetitions (medians over them): Alcor-RS {s['repetitions']['alcor']}, "
        f"etcd {s['repetitions']['etcd']}, OVN {s['repetitions']['ovn']}. "
        f"etcd: {s['versions']['etcd']}; OVN: {s['versions']['ovn']}.",
        "fsync probe (4 KiB write + fdatasync, 200 times) at the start of each run: "
        + "; ".join(f"{p.get('bench')} p50 {p.get('p50_us')} µs / p99 {p.get('p99_us')} µs"
                    for p in s["fsync_probes"]) + ".",
        "",
        "| metric | Alcor-RS | peer | ours / peer | target | met? |",
        "|---|---|---|---|---|---|",
    ]
    for c in s["comparison"]:
        met = "" if c["met"] is None else ("yes" if c["met"] else "**no**")
        lines.append(
            f"| {c['metric']} | {fmt(c['alcor'], c['digits'])} | {fmt(c['peer'], c['digits'])} "
            f"({c['peer_name']}) | {fmt(c['ratio'], 2)}x | {c['target'] or ''} | {met} |"
        )
    lines += ["", "Medians per row (requests/s · items/s · p50 / p99 ms), with each repetition's requests/s:", "",
              "| system | row | req/s | items/s | p50 ms | p99 ms | runs (req/s) |", "|---|---|---|---|---|---|---|"]
    for sysname, by in s["medians"].items():
        for label, v in by.items():
            runs = " / ".join(f"{x:,}" for x in s["runs_per_row"][sysname][label])
            lines.append(
                f"| {sysname} | {label} | {fmt(v['requests_per_s'])} | {fmt(v['items_per_s'])} | "
                f"{fmt(v['p50_ms'], 2)} | {fmt(v['p99_ms'], 2)} | {runs} |")
    for r in s["restart"]:
        mem = ", ".join(f"member {x['id']}: {fmt(x['rss_bytes_per_port'])} B/port RSS, "
                        f"{fmt(x['data_dir_bytes'] / 1e6)} MB on disk" for x in r["members"])
        tries = ", ".join(f"{fmt(t['serving_ms'])} ms (API up {fmt(t['api_up_ms'])} ms)"
                          for t in r["tries"])
        lines += ["", f"Restart of a member holding {r['ports']:,} ports (built at "
                  f"{fmt(r['build_ports_per_s'])} ports/s): kill -9 → serving {tries}; "
                  f"median {fmt(r['serving_median_ms'])} ms. Memory: {mem}."]
    for r in s["push_kernel"]:
        def span(row):
            k = r[row]["acked_to_kernel"]
            return (f"{row}: acked → kernel p50 {fmt(k['p50_ms'], 1)} / p99 {fmt(k['p99_ms'], 1)} ms "
                    f"(write acked p50 {fmt(r[row]['write_acked']['p50_ms'], 1)} ms)")
        lines += ["", f"Controller to kernel (one Linux dataplane agent holding {r['ports']:,} ports): "
                  f"FullSync {fmt(r['full_sync_ms'])} ms; "
                  + "; ".join(span(row) for row in ("create_port", "delete_port", "rule_over_all_ports"))
                  + " (issue 14 targets: p99 ≤ 100 ms for a port change, ≤ 1 s for a rule)."]
    return "\n".join(lines) + "\n"


def plots(s, alcor, etcd, ovn, run_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    def curve(reports, label):
        for r in reports:
            for row in r.get("rows", []):
                if row["label"] == label and row.get("latency_curve_ms"):
                    return [q for q, _ in row["latency_curve_ms"]], [v for _, v in row["latency_curve_ms"]]
        return None

    # 1. Latency distributions (first repetition), matched rows.
    pairs = [("serial write, 1 client", "create_port, 1 client", "put, 1 client"),
             ("write, 256 clients", "create_port, 256 clients", "put, 256 clients"),
             ("linearizable read, 256 clients", "get_port linearizable, 256 clients",
              "get linearizable, 256 clients"),
             ("stale / serializable read, 256", "get_port stale, 256 clients",
              "get serializable, 256 clients")]
    fig, axes = plt.subplots(1, len(pairs), figsize=(16, 4))
    for ax, (title, la, le) in zip(axes, pairs):
        for reps, lab, name in ((alcor, la, "Alcor-RS"), (etcd, le, "etcd")):
            c = curve(reps, lab)
            if c:
                ax.plot(c[1], c[0], marker=".", label=name)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "latency_cdf.png"), dpi=90)
    plt.close(fig)

    # 2. Throughput and p99 against concurrency.
    med_a, med_e = s["medians"]["alcor"], s["medians"]["etcd"]
    xs = [1, 16, 64, 256]
    la = ["create_port, 1 client"] + [f"create_port, {c} clients" for c in xs[1:]]
    le = ["put, 1 client"] + [f"put, {c} clients" for c in xs[1:]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, med_, labels in (("Alcor-RS create_port", med_a, la), ("etcd put", med_e, le)):
        pts = [(x, med_[l]) for x, l in zip(xs, labels) if l in med_]
        if pts:
            ax1.plot([p[0] for p in pts], [p[1]["requests_per_s"] for p in pts], marker="o", label=name)
            ax2.plot([p[0] for p in pts], [p[1]["p99_ms"] for p in pts], marker="o", label=name)
    for ax, yl in ((ax1, "writes/s (median of runs)"), (ax2, "p99 latency ms")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(yl)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "throughput_vs_concurrency.png"), dpi=90)
    plt.close(fig)

    # 3. Port creation rates.
    med_o = s["medians"]["ovn"]
    bars = [(f"Alcor {l.replace('create_', '')}", med_a[l]["items_per_s"]) for l in med_a
            if l.startswith("create_port")]
    bars += [(f"OVN {l}", med_o[l]["items_per_s"]) for l in med_o]
    if bars:
        fig, ax = plt.subplots(figsize=(11, 5))
        ax.barh([b[0] for b in bars], [b[1] or 0 for b in bars],
                color=["tab:blue" if b[0].startswith("Alcor") else "tab:orange" for b in bars])
        ax.set_xscale("log")
        ax.set_xlabel("ports created per second (median of runs, log)")
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(run_dir, "port_creation.png"), dpi=90)
        plt.close(fig)

    # 4. Failover tries.
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, reps in (("Alcor-RS", alcor), ("etcd", etcd)):
        vals = [t["kill_to_ack_ms"] for r in reps if r.get("failover")
                for t in r["failover"].get("tries", []) if t.get("kill_to_ack_ms") is not None]
        if vals:
            ax.plot(range(1, len(vals) + 1), vals, marker="o", label=name)
    ax.set_xlabel("try")
    ax.set_ylabel("kill -9 leader -> first acked write (ms)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "failover.png"), dpi=90)
    plt.close(fig)

    # 5. Fan-out against agents, if a push benchmark left results.
    push = load(run_dir, "push*.json")
    pts = []
    for p in push:
        for row in p.get("rows", []):
            if row.get("agents") and row.get("p99_ms") is not None:
                pts.append((row["agents"], row["p99_ms"], row.get("p50_ms")))
    if pts:
        pts.sort()
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="p99")
        ax.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label="p50")
        ax.set_xscale("log")
        ax.set_xlabel("agents")
        ax.set_ylabel("write -> delivered at all agents (ms)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(run_dir, "fanout_vs_agents.png"), dpi=90)
        plt.close(fig)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    run_dir = sys.argv[1]
    s, alcor, etcd, ovn = summarise(run_dir)
    if not (alcor and etcd and ovn):
        print(f"missing results in {run_dir}: alcor {len(alcor)}, etcd {len(etcd)}, ovn {len(ovn)}",
              file=sys.stderr)
        sys.exit(1)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(s, f, indent=2)
    md = markdown(s)
    with open(os.path.join(run_dir, "summary.md"), "w") as f:
        f.write(md)
    print(md)
    if "--plots" in sys.argv:
        plots(s, alcor, etcd, ovn, run_dir)
        print("plots:", ", ".join(sorted(os.path.basename(p) for p in glob.glob(os.path.join(run_dir, "*.png")))))


if __name__ == "__main__":
    main()
