#!/usr/bin/env python3
"""The performance comparison of the core issue, measured in one run on one thread count.

libsmyrf SMYRF and HYBRID (budget = hash rounds x cluster, the same keys per query) against
libsmyrf DENSE, PyTorch's CPU scaled_dot_product_attention, a straightforward PyTorch
SMYRF (bench/torch_smyrf.py), the paper's own PyTorch code and HyperAttention (each given
a checkout of it) and Reformer's LSH attention, side by side as ratios; growth from
N = 16384 to 65536; the in-cluster attention's FLOP rate (timed alone) against the
OpenBLAS sgemm 2048^3 peak; peak memory against inputs plus output. libsmyrf's tensors
of 4 MiB and more sit on transparent huge pages (NumPy's default on Linux); the PyTorch
contenders run one per process (bench/torch_contenders.py says which allocator setting
each gets, and why).

Run it with the interpreter scripts/python-env.sh prints (it has PyTorch and
transformers); a contender that cannot run is left out and the reason printed. The
libsmyrf figures come from the `smyrf bench --json` and `smyrf_attention_peak` programs
of a Release build:
    scripts/demo.sh   (or cmake --preset default && cmake --build --preset default)
    "$(scripts/python-env.sh | tail -n 1)" bench/compare.py [--paper-code DIR] [--hyper-code DIR]
--paper-code: a checkout of https://github.com/giannisdaras/smyrf, the paper's code (GPLv3,
not part of libsmyrf; this script copies it to a temporary folder and runs it from there);
--hyper-code: a checkout of https://github.com/insuhan/hyper-attn (Apache-2.0, not part of
libsmyrf; run in place; needs einops, which scripts/python-env.sh installs).
"""
import argparse
import json
import os
import subprocess
import sys
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
    p.add_argument("--reps", type=int, default=5, help="timed calls, after one warm-up")
    p.add_argument("--paper-code", type=Path,
                   help="a checkout of github.com/giannisdaras/smyrf: time the paper's own "
                        "PyTorch code too")
    p.add_argument("--hyper-code", type=Path,
                   help="a checkout of github.com/insuhan/hyper-attn: time HyperAttention too")
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


# Each PyTorch contender in its own process (bench/torch_contenders.py), with the allocator
# setting that suits it: SDPA on transparent huge pages like libsmyrf's tensors (the same
# figures either way), the SMYRF-likes on PyTorch's default (THP made the plain one 1.2x
# slower: it allocates its intermediates afresh in every call).
CONTENDERS = [("sdpa", "PyTorch SDPA", True), ("plain", "PyTorch SMYRF, plain", False),
              ("paper", "paper's PyTorch SMYRF", False),
              ("reformer", "Reformer LSH (transformers)", False),
              ("hyper", "HyperAttention (its code)", False)]


def torch_times(args):
    """{contender: {n: (median, min)}}, or {contender: "why not"}."""
    result = {}
    for key, name, thp in CONTENDERS:
        if key == "paper" and args.paper_code is None:
            result[key] = "no --paper-code checkout of github.com/giannisdaras/smyrf given"
            continue
        if key == "hyper" and args.hyper_code is None:
            result[key] = "no --hyper-code checkout of github.com/insuhan/hyper-attn given"
            continue
        ns = [n for n in args.n if key != "sdpa" or n <= args.dense_max_n]
        if not ns:
            continue
        env = dict(os.environ)
        if thp:
            env["THP_MEM_ALLOC_ENABLE"] = "1"
        else:
            env.pop("THP_MEM_ALLOC_ENABLE", None)
        cmd = [sys.executable, str(ROOT / "bench" / "torch_contenders.py"), key,
               "--n", ",".join(map(str, ns)), "--threads", str(args.threads),
               "--reps", str(args.reps), "--hashes", str(args.hashes),
               "--cluster", str(args.cluster), "--d", str(args.d)]
        for flag, path in (("--paper-code", args.paper_code), ("--hyper-code", args.hyper_code)):
            if path is not None:
                cmd += [flag, str(path)]
        print(f"[compare] {name}...", file=sys.stderr)
        rows = run_json(cmd, env=env)
        errors = [r["error"] for r in rows if "error" in r]
        result[key] = errors[0] if errors else \
            {r["n"]: (r["median_ms"], r["min_ms"]) for r in rows}
    return result


def fmt_ms(ms):
    return f"{'-':>10s}" if ms is None else f"{ms:10.2f}"


def lib_times(row):
    return None if not row or row.get("status") != "ok" else (row["median_ms"], row["min_ms"])


def report(args, lib, torch_result, peak, load):
    smyrf = lambda n: lib[("smyrf", n)]
    timed = lambda key, n: torch_result[key].get(n) if isinstance(torch_result.get(key), dict) \
        else None
    if load > 0.5:
        print(f"\nnote: load average {load:.1f} before this run: other processes shared the "
              "CPUs, so the figures are noisy; compare medians with minimums")
    print(f"\nfp32, 1 batch, 1 head, d = {args.d}, {args.threads} threads for everyone; "
          f"SMYRF {args.hashes} hash rounds x cluster {args.cluster}; "
          f"median of {args.reps} calls after a warm-up")
    for key, name, _ in CONTENDERS:
        if isinstance(torch_result.get(key), str):
            print(f"{name} left out: {torch_result[key]}")
    for n in args.n:
        base = smyrf(n)["median_ms"]
        print(f"\nN = {n:<14d}         median ms      min ms   median / libsmyrf SMYRF")
        rows = [("libsmyrf SMYRF", lib_times(smyrf(n))),
                ("libsmyrf HYBRID", lib_times(lib.get(("hybrid", n)))),
                ("libsmyrf DENSE", lib_times(lib.get(("dense", n))))]
        rows += [(name, timed(key, n)) for key, name, _ in CONTENDERS
                 if not isinstance(torch_result.get(key), str)]
        for name, times in rows:
            if times is None:
                exact = name in ("libsmyrf DENSE", "PyTorch SDPA") and n > args.dense_max_n
                print(f"  {name:29s}  skipped" + (" (above --dense-max-n)" if exact else ""))
                continue
            print(f"  {name:29s} {fmt_ms(times[0])}  {fmt_ms(times[1])}   "
                  f"{times[0] / base:8.1f}x")

    print("\nTargets (issue 2):")
    if 16384 in args.n:
        base = smyrf(16384)["median_ms"]
        for name, times, want in [("DENSE / SMYRF", lib_times(lib.get(("dense", 16384))), 100),
                                  ("SDPA / SMYRF", timed("sdpa", 16384), 100),
                                  ("PyTorch SMYRF / SMYRF", timed("plain", 16384), 5),
                                  ("paper's code / SMYRF", timed("paper", 16384), 5)]:
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
        sdpa = timed("sdpa", 16384)
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
