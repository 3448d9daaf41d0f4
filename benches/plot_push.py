#!/usr/bin/env python3
"""Plots push_fanout results against the number of connected agents.

Usage: plot_push.py OUT_DIR PUSH_JSON [PUSH_JSON ...]

Each PUSH_JSON is a `push_fanout --out` file; every file is one series
(labelled by its agents-per-connection and hosts-per-VPC settings). Writes
OUT_DIR/push_latency_vs_agents.png (security-group rule to each agent, p50
and p99, and to the last agent, p99) and OUT_DIR/push_memory_vs_agents.png
(node RSS growth per connected agent). Needs matplotlib.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(report, path):
    config = report.get("config", {})
    per_conn = config.get("agents_per_connection", 1)
    per_vpc = config.get("hosts_per_vpc", "all")
    conn = "own connection" if per_conn == 1 else f"{per_conn} agents/connection"
    return f"{conn}, {per_vpc} hosts/VPC ({os.path.basename(path)})"


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    out_dir = sys.argv[1]
    series = []
    for path in sys.argv[2:]:
        with open(path) as f:
            report = json.load(f)
        rows = sorted(report.get("rows", []), key=lambda r: r["agents"])
        if rows:
            series.append((label(report, path), rows))
    if not series:
        print("no rows", file=sys.stderr)
        sys.exit(1)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, rows in series:
        xs = [r["agents"] for r in rows]
        ax.plot(xs, [r["p99_ms"] for r in rows], marker="o", label=f"p99, {name}")
        ax.plot(xs, [r["p50_ms"] for r in rows], marker=".", linestyle="--",
                label=f"p50, {name}")
        ax.plot(xs, [r["last_agent_p99_ms"] for r in rows], marker="x", linestyle=":",
                label=f"last agent p99, {name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("connected agents")
    ax.set_ylabel("SG rule write -> applied at agent (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "push_latency_vs_agents.png"), dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, rows in series:
        xs = [r["agents"] for r in rows]
        ax.plot(xs, [r["node_bytes_per_idle_agent"] / 1024 for r in rows], marker="o",
                label=name)
    ax.axhline(16, color="grey", linestyle="--", label="target 16 KiB")
    ax.set_xscale("log")
    ax.set_xlabel("connected agents")
    ax.set_ylabel("node RSS growth per agent (KiB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "push_memory_vs_agents.png"), dpi=90)
    plt.close(fig)
    print("wrote push_latency_vs_agents.png, push_memory_vs_agents.png in", out_dir)


if __name__ == "__main__":
    main()
