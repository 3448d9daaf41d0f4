#!/usr/bin/env python3
"""Times pwrite + fdatasync of small records on one file, with a busy-wait gap
between one sync's return and the next write, for four file layouts: appended
(size grows per write), preallocated with FALLOC_FL_KEEP_SIZE (RocksDB's WAL),
preallocated with the size set (etcd's WAL), and written and synced beforehand
(overwrites only). Shows whether a sync's cost depends on the file's layout or on
how long the disk was idle before it.

Usage: fsync_gap_probe.py [DIR] [SYNCS]   (DIR defaults to /var/tmp)
"""
import ctypes
import os
import statistics
import sys
import time

FALLOC_FL_KEEP_SIZE = 1
PREALLOCATED = 64 << 20
RECORD = b"x" * 200


def run(directory, mode, gap_us, syncs):
    path = os.path.join(directory, f"fsync-gap-probe-{os.getpid()}-{mode}.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if mode == "fallocate":
            os.posix_fallocate(fd, 0, PREALLOCATED)
        elif mode == "keep-size":
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_long(0), ctypes.c_long(PREALLOCATED)):
                raise OSError(ctypes.get_errno(), "fallocate")
        elif mode == "prewritten":
            block = b"\0" * (1 << 20)
            for _ in range(PREALLOCATED >> 20):
                os.write(fd, block)
        os.fsync(fd)
        times = []
        offset = 0
        for _ in range(syncs):
            started = time.perf_counter()
            os.pwrite(fd, RECORD, offset)
            offset += len(RECORD)
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1e6)
            until = time.perf_counter() + gap_us / 1e6
            while time.perf_counter() < until:
                pass
    finally:
        os.close(fd)
        os.remove(path)
    times.sort()
    print(
        f"{mode:10s} gap {gap_us:4d} us: p50 {times[len(times) // 2]:6.0f}  "
        f"mean {statistics.mean(times):6.0f}  p99 {times[int(len(times) * 0.99)]:6.0f} us"
    )


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"
    syncs = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
    with open("/proc/loadavg") as f:
        print("load average before:", f.read().strip())
    for mode in ["append", "keep-size", "fallocate", "prewritten"]:
        for gap_us in [0, 100, 500]:
            run(directory, mode, gap_us, syncs)


if __name__ == "__main__":
    main()
