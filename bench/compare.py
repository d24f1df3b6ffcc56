#!/usr/bin/env python3
"""The performance comparison of the core issue, measured in one run on one thread count.

libsmyrf SMYRF and HYBRID (budget = hash rounds x cluster, the same keys per query) against
libsmyrf DENSE, PyTorch's CPU scaled_dot_product_attention and a straightforward PyTorch
SMYRF (bench/torch_smyrf.py), side by side as ratios; growth from
N = 16384 to 65536; the in-cluster attention's FLOP rate (timed alone) against the OpenBLAS
sgemm 2048^3 peak;
peak memory against inputs plus output. Every contender's tensors of 4 MiB and more sit on
transparent huge pages (NumPy's default on Linux; PyTorch's with THP_MEM_ALLOC_ENABLE=1).

Run it with the interpreter scripts/python-env.sh prints (it has PyTorch); without PyTorch
the PyTorch columns are left out and the reason is printed. The libsmyrf figures come from
the `smyrf bench --json` and `smyrf_attention_peak` programs of a Release build:
    scripts/demo.sh   (or cmake --preset default && cmake --build --preset default)
    "$(scripts/python-env.sh | tail -n 1)" bench/compare.py
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def int_list(text):
    return [int(x) for x in text.split(",")]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", type=Path, default=ROOT / "build-default",
                   help="a Release build tree holding tools/smyrf (default: build-default)")
    p.add_argument("--n", type=int_list, default=[16384, 65536], help="sequence lengths")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads for every contender (default: all CPUs)")
    p.add_argument("--hashes", type=int, default=2)
    p.add_argument("--cluster", type=int, default=64)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--reps", type=int, default=3, help="timed calls, after one warm-up")
    p.add_argument("--dense-max-n", type=int, default=16384,
                   help="run the exact contenders (DENSE, SDPA) only up to this N: they "
                        "grow as N^2 and take tens of seconds per call at 65536")
    return p.parse_args()


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def libsmyrf_rows(args, tool):
    rows = run_json([str(tool), "bench", "--json", "--modes", "smyrf,dense,hybrid",
                     "--n", ",".join(map(str, args.n)), "--hashes", str(args.hashes),
                     "--cluster", str(args.cluster), "--d", str(args.d),
                     "--threads", str(args.threads), "--reps", str(args.reps),
                     "--dense-max-n", str(args.dense_max_n)])
    return {(r["mode"], r["n"]): r for r in rows}


def attention_peak(args, tool):
    """The in-cluster attention at N = 16384 timed alone, and the sgemm peak, one run."""
    return run_json([str(tool), str(args.threads)])[0]


def time_ms(fn, reps):
    """(median, min) wall time of reps calls after a warm-up call, in ms."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def torch_times(args):
    """{n: {"sdpa": (median, min) or None, "torch_smyrf": (median, min)}}, or a string
    saying why not."""
    # PyTorch's tensors on transparent huge pages too, as libsmyrf's (smyrf bench allocates
    # its tensors as NumPy does): read before PyTorch's first allocation.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        return f"PyTorch is not importable from {sys.executable} ({e}); run this script " \
               "with the python that scripts/python-env.sh prints"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from torch_smyrf import smyrf_attention

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        # Self-check: with one cluster, SMYRF is exact attention.
        q, k, v = (torch.randn(256, args.d, generator=gen) for _ in range(3))
        exact = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
        err = (smyrf_attention(q, k, v, args.hashes, 256, gen) - exact).abs().max().item()
        if err > 1e-4:
            return f"torch_smyrf self-check failed: one cluster differs from SDPA by {err}"
        result = {}
        for n in args.n:
            q, k, v = (torch.randn(n, args.d, generator=gen) for _ in range(3))
            sdpa = None
            if n <= args.dense_max_n:
                print(f"[compare] PyTorch SDPA at N = {n}...", file=sys.stderr)
                sdpa = time_ms(lambda: F.scaled_dot_product_attention(
                    q[None, None], k[None, None], v[None, None]), args.reps)
            print(f"[compare] PyTorch SMYRF at N = {n}...", file=sys.stderr)
            plain = time_ms(lambda: smyrf_attention(q, k, v, args.hashes, args.cluster, gen),
                              args.reps)
            result[n] = {"sdpa": sdpa, "torch_smyrf": plain}
        return result


def fmt_ms(ms):
    return f"{'-':>10s}" if ms is None else f"{ms:10.2f}"


def lib_times(row):
    return None if not row or row.get("status") != "ok" else (row["median_ms"], row["min_ms"])


def report(args, lib, torch_result, peak, load):
    smyrf = lambda n: lib[("smyrf", n)]
    if load > 0.5:
        print(f"\nnote: load average {load:.1f} before this run: other processes shared the "
              "CPUs, so the figures are noisy; compare medians with minimums")
    print(f"\nfp32, 1 batch, 1 head, d = {args.d}, {args.threads} threads for everyone; "
          f"SMYRF {args.hashes} hash rounds x cluster {args.cluster}; "
          f"median of {args.reps} calls after a warm-up")
    if isinstance(torch_result, str):
        print(f"PyTorch columns left out: {torch_result}")
        torch_result = {}
    for n in args.n:
        base = smyrf(n)["median_ms"]
        t = torch_result.get(n, {})
        print(f"\nN = {n:<14d} median ms      min ms   median / libsmyrf SMYRF")
        for name, times in [("libsmyrf SMYRF", lib_times(smyrf(n))),
                            ("libsmyrf HYBRID", lib_times(lib.get(("hybrid", n)))),
                            ("libsmyrf DENSE", lib_times(lib.get(("dense", n)))),
                            ("PyTorch SDPA", t.get("sdpa")),
                            ("PyTorch SMYRF, plain", t.get("torch_smyrf"))]:
            if times is None:
                exact = name in ("libsmyrf DENSE", "PyTorch SDPA") and n > args.dense_max_n
                print(f"  {name:22s}  skipped" + (" (above --dense-max-n)" if exact else ""))
                continue
            print(f"  {name:22s} {fmt_ms(times[0])}  {fmt_ms(times[1])}   "
                  f"{times[0] / base:8.1f}x")

    print("\nTargets (issue 2):")
    if 16384 in args.n:
        base = smyrf(16384)["median_ms"]
        t = torch_result.get(16384, {})
        for name, times, want in [("DENSE / SMYRF", lib_times(lib.get(("dense", 16384))), 100),
                                  ("SDPA / SMYRF", t.get("sdpa"), 100),
                                  ("PyTorch SMYRF / SMYRF", t.get("torch_smyrf"), 5)]:
            if times is not None:
                print(f"  N = 16384 {name:22s} {times[0] / base:8.1f}x  (target >= {want}x)")
    if 16384 in args.n and 65536 in args.n:
        growth = smyrf(65536)["median_ms"] / smyrf(16384)["median_ms"]
        print(f"  time(65536) / time(16384)        {growth:8.2f}   (target <= 4.5)")
    print("\nTargets (issue 10, HYBRID at the same keys per query):")
    hybrid = lambda n: lib_times(lib.get(("hybrid", n)))
    if 16384 in args.n and hybrid(16384):
        h16 = hybrid(16384)[0]
        print(f"  N = 16384 HYBRID / SMYRF          {h16 / smyrf(16384)['median_ms']:8.2f}   "
              "(target <= 1.5)")
        sdpa = torch_result.get(16384, {}).get("sdpa")
        if sdpa:
            print(f"  N = 16384 SDPA / HYBRID           {sdpa[0] / h16:8.1f}x  (target >= 100x)")
        if 65536 in args.n and hybrid(65536):
            print(f"  time(65536) / time(16384)        {hybrid(65536)[0] / h16:8.2f}   "
                  "(target <= 4.5)")
    print(f"\n  OpenBLAS sgemm 2048^3 peak        {peak['sgemm_2048_gflops']:8.1f} GFLOP/s "
          f"({peak['threads']} threads)")
    print(f"  in-cluster attention alone       {peak['in_cluster_gflops']:8.1f} GFLOP/s = "
          f"{100 * peak['share_of_peak']:.0f}% of peak (target >= 40%; N = 16384, 2 x 64, "
          f"{peak['kernel']} kernel, softmax and merge included)")
    for n in args.n:
        rate = smyrf(n)["attention_gflops"]
        print(f"  N = {n:5d} whole SMYRF call     {rate:8.1f} GFLOP/s = "
              f"{100 * rate / peak['sgemm_2048_gflops']:.0f}% of peak (hashing and sorting "
              "included)")
    for n in args.n:
        r = smyrf(n)
        mem = r["io_mib"] + r["workspace_mib"] + max(0.0, r["extra_mib"] or 0.0)
        print(f"  N = {n:5d} memory / (q, k, v, out) {mem / r['io_mib']:8.2f}   (target <= 2; "
              f"{r['io_mib']:.1f} MiB io + {r['workspace_mib']:.1f} workspace + "
              f"{r['extra_mib']:.1f} extra peak RSS)")


def main():
    args = parse_args()
    load = os.getloadavg()[0]  # before our own work adds to it
    tool = args.build_dir / "tools" / "smyrf"
    peak_tool = args.build_dir / "tools" / "smyrf_attention_peak"
    for t in (tool, peak_tool):
        if not t.exists():
            sys.exit(f"compare: {t} is missing: build first (scripts/demo.sh, or cmake "
                     f"--preset default && cmake --build --preset default), or --build-dir")
    print("[compare] in-cluster attention and OpenBLAS sgemm peak...", file=sys.stderr)
    peak = attention_peak(args, tool=peak_tool)
    print("[compare] libsmyrf (smyrf bench)...", file=sys.stderr)
    lib = libsmyrf_rows(args, tool)
    torch_result = torch_times(args)
    report(args, lib, torch_result, peak, load)


if __name__ == "__main__":
    main()
