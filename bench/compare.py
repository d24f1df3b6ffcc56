#!/usr/bin/env python3
"""The performance comparison of the core issue, measured in one run on one thread count.

libsmyrf SMYRF and HYBRID (budget = hash rounds x cluster, the same keys per query) against
libsmyrf DENSE, PyTorch's CPU scaled_dot_product_attention, a straightforward PyTorch
SMYRF (bench/torch_smyrf.py), the paper's own PyTorch code and HyperAttention (each given
a checkout of it) and Reformer's LSH attention, side by side as ratios; growth from
N = 16384 to 65536; the in-cluster attention's FLOP rate (timed alone, alternating with
OpenBLAS sgemm 2048^3, the peak) and the whole SMYRF call's against that peak; peak
memory against inputs plus output. libsmyrf's tensors
of 4 MiB and more sit on transparent huge pages (NumPy's default on Linux); the PyTorch
contenders run one per process (bench/torch_contenders.py says which allocator setting
each gets, and why).

Run it with the interpreter scripts/python-env.sh prints (it has PyTorch and
transformers); a contender that cannot run is left out and the reason printed. The
libsmyrf figures come from the `smyrf bench --json` and `smyrf_attention_peak` programs
of a Release build. The machines this runs on switch between a fast and a slow state for
seconds to minutes at a time, so with --rounds R everything is timed R times over, the
peak, libsmyrf, then each contender in turn, and each ratio is taken within a round (both
sides timed close together; a share of the peak against that round's peak) and reported
as the median over the rounds, with its range: one round caught in a slow spell moves the
range, not the figure. The tools' progress shows on stderr. Build first:
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
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def count(text):
    """A whole number of at least 1, or argparse's error where the text is not one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def count_list(text):
    return [count(x) for x in text.split(",")]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", type=Path, default=ROOT / "build-default",
                   help="a Release build tree holding tools/smyrf (default: build-default)")
    p.add_argument("--n", type=count_list, default=[16384, 65536], help="sequence lengths")
    p.add_argument("--threads", type=count, default=os.cpu_count(),
                   help="threads for every contender (default: all CPUs)")
    p.add_argument("--hashes", type=count, default=2)
    p.add_argument("--cluster", type=count, default=64)
    p.add_argument("--d", type=count, default=64)
    p.add_argument("--reps", type=count, default=5, help="timed calls, after one warm-up")
    p.add_argument("--rounds", type=count, default=3,
                   help="times over that everything is timed; ratios within a round, "
                        "reported as their median over the rounds (default 3)")
    p.add_argument("--paper-code", type=Path,
                   help="a checkout of github.com/giannisdaras/smyrf: time the paper's own "
                        "PyTorch code too")
    p.add_argument("--hyper-code", type=Path,
                   help="a checkout of github.com/insuhan/hyper-attn: time HyperAttention too")
    p.add_argument("--dense-max-n", type=count, default=16384,
                   help="run the exact contenders (DENSE, SDPA) only up to this N: they "
                        "grow as N^2 and take tens of seconds per call at 65536")
    return p.parse_args()


def run_json(cmd, env=None, quiet=False):
    """The JSON lines a tool prints on stdout. Its stderr (progress, notes) passes through;
    with quiet (PyTorch's and transformers' warnings) it is held back and shown only if the
    tool fails. A failed tool ends the comparison."""
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env,
                          stderr=subprocess.PIPE if quiet else None)
    if done.returncode != 0:
        if quiet:
            sys.stderr.write(done.stderr)
        sys.exit(f"compare: {' '.join(cmd)} exited with status {done.returncode}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def libsmyrf_rows(args, tool):
    rows = run_json([str(tool), "bench", "--json", "--modes", "smyrf,dense,hybrid",
                     "--n", ",".join(map(str, args.n)), "--hashes", str(args.hashes),
                     "--cluster", str(args.cluster), "--d", str(args.d),
                     "--threads", str(args.threads), "--reps", str(args.reps),
                     "--dense-max-n", str(args.dense_max_n)])
    return {(r["mode"], r["n"]): r for r in rows}


# OpenBLAS's generic x86 cores: what an OpenBLAS that does not know the CPU falls back to
# (Debian 12's 0.3.21 on Intel family 6 model 207 runs Prescott at a seventh of the peak).
GENERIC_OPENBLAS_CORES = {"Prescott", "Core2", "Katmai", "Coppermine", "Northwood", "Banias"}
# Its AVX2 cores: on a CPU with AVX-512 that this OpenBLAS predates (AMD Zen 5 runs Haswell
# kernels at 219 GFLOP/s on 2 threads, SkylakeX ones at 404) they use half the width.
AVX2_OPENBLAS_CORES = {"Haswell", "Zen"}


def attention_peak(args, tool, core):
    """One run of smyrf_attention_peak: the in-cluster attention at N = 16384 and the sgemm
    peak in alternating pairs, in one process; core: the OPENBLAS_CORETYPE to force, or
    None for OpenBLAS's own pick."""
    env = {**os.environ, "OPENBLAS_CORETYPE": core} if core else None
    return run_json([str(tool), str(args.threads)], env=env)[0]


def first_peak(args, tool):
    """The first round's peak run, and the OpenBLAS core every round forces (None: its own
    pick). Where OpenBLAS runs kernels narrower than this CPU's vectors (a generic core, or
    AVX2 ones on an AVX-512 CPU), the whole paired run is repeated with the core those
    vectors call for, and the run whose sgemm is faster is kept: its share was measured
    against its own sgemm."""
    peak = attention_peak(args, tool, None)
    flags = Path("/proc/cpuinfo").read_text()
    picked = peak.get("openblas_core")
    core = None
    if " avx512f" in flags and (picked in GENERIC_OPENBLAS_CORES or picked in AVX2_OPENBLAS_CORES):
        core = "SkylakeX"
    elif " avx2" in flags and picked in GENERIC_OPENBLAS_CORES:
        core = "Haswell"
    if not core:
        return peak, None
    forced = attention_peak(args, tool, core)
    print(f"[compare] OpenBLAS picked its {picked} kernels here "
          f"({peak['sgemm_2048_gflops']:.1f} GFLOP/s); with OPENBLAS_CORETYPE={core}: "
          f"{forced['sgemm_2048_gflops']:.1f} GFLOP/s", file=sys.stderr)
    if forced["sgemm_2048_gflops"] <= peak["sgemm_2048_gflops"]:
        return peak, None
    forced["picked_core"] = picked
    return forced, core


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
        rows = run_json(cmd, env=env, quiet=True)
        errors = [r["error"] for r in rows if "error" in r]
        result[key] = errors[0] if errors else \
            {r["n"]: (r["median_ms"], r["min_ms"]) for r in rows}
    return result


def fmt_ms(ms):
    return f"{'-':>10s}" if ms is None else f"{ms:10.2f}"


def lib_times(row):
    return None if not row or row.get("status") != "ok" else (row["median_ms"], row["min_ms"])


def row_failure(row):
    """Why a libsmyrf row has no figures: its status and message."""
    return "no row" if row is None else f"{row['status']}: {row['message']}"


class Rounds:
    """The figures of every round: the peak run, libsmyrf's rows and the PyTorch
    contenders' times."""

    def __init__(self, rounds):
        self.rounds = rounds  # [(peak, lib, torch_result)]

    def times(self, who, n):
        """[(median, min)] of each round, or None where some round lacks it. who:
        ("lib", mode) or ("torch", contender key)."""
        out = []
        for _, lib, torch_result in self.rounds:
            if who[0] == "lib":
                t = lib_times(lib.get((who[1], n)))
            else:
                got = torch_result.get(who[1])
                t = got.get(n) if isinstance(got, dict) else None
            if t is None:
                return None
            out.append(t)
        return out

    def missing(self, who, n):
        """Why times(who, n) is None: the first failed libsmyrf row, or a PyTorch
        contender that did not run at this N."""
        if who[0] == "lib":
            for _, lib, _ in self.rounds:
                row = lib.get((who[1], n))
                if lib_times(row) is None:
                    return row_failure(row)
        return "skipped (above --dense-max-n)"  # the exact contenders run only up to it

    def ratio(self, a, n_a, b, n_b):
        """a's median over b's, within each round: (median, low, high) over the rounds."""
        ta, tb = self.times(a, n_a), self.times(b, n_b)
        if ta is None or tb is None:
            return None
        r = sorted(x[0] / y[0] for x, y in zip(ta, tb))
        return statistics.median(r), r[0], r[-1]


def fmt_ratio(r, unit, digits):
    med, lo, hi = r
    spread = f"  ({lo:.{digits}f}-{hi:.{digits}f}{unit})" if hi > lo else ""
    return f"{med:8.{digits}f}{unit}{spread}"


def fmt_share(shares):
    """Shares of the sgemm peak, one per round, as their median (and range) in percent. No
    kernel runs above the GEMM peak, so a share above 1 is a measurement error: such
    rounds are left out and counted, and with none left no share is given."""
    valid = sorted(x for x in shares if x <= 1)
    bad = len(shares) - len(valid)
    if not valid:
        return (f"no share of the peak: above 100% in every round (up to {max(shares):.2f}x), "
                "a measurement error")
    pct = (100 * statistics.median(valid), 100 * valid[0], 100 * valid[-1])
    return (f"{fmt_ratio(pct, '%', 0).strip()} of peak"
            + (f" ({bad} round(s) above 100% left out: a measurement error)" if bad else ""))


def report(args, runs, load):
    SMYRF, HYBRID, DENSE = ("lib", "smyrf"), ("lib", "hybrid"), ("lib", "dense")
    last_torch = runs.rounds[-1][2]
    if load > 0.5:
        print(f"\nnote: load average {load:.1f} before this run: other processes shared the "
              "CPUs, so the figures are noisy; compare medians with minimums")
    print(f"\nfp32, 1 batch, 1 head, d = {args.d}, {args.threads} threads for everyone; "
          f"SMYRF {args.hashes} hash rounds x cluster {args.cluster}; "
          f"median of {args.reps} calls after a warm-up, in each of {args.rounds} round(s); "
          "ms: median over the rounds, min: the least of all; ratios: taken within each "
          "round, their median (and range)")
    for key, name, _ in CONTENDERS:
        if isinstance(last_torch.get(key), str):
            print(f"{name} left out: {last_torch[key]}")
    for n in args.n:
        print(f"\nN = {n:<14d}         median ms      min ms   median / libsmyrf SMYRF")
        rows = [("libsmyrf SMYRF", SMYRF), ("libsmyrf HYBRID", HYBRID),
                ("libsmyrf DENSE", DENSE)]
        rows += [(name, ("torch", key)) for key, name, _ in CONTENDERS
                 if not isinstance(last_torch.get(key), str)]
        for name, who in rows:
            times = runs.times(who, n)
            if times is None:
                print(f"  {name:29s}  {runs.missing(who, n)}")
                continue
            med = statistics.median(t[0] for t in times)
            least = min(t[1] for t in times)
            print(f"  {name:29s} {fmt_ms(med)}  {fmt_ms(least)}   "
                  f"{fmt_ratio(runs.ratio(who, n, SMYRF, n), 'x', 1)}")

    print("\nTargets (issue 2):")
    if 16384 in args.n:
        for name, who, want in [("DENSE / SMYRF", DENSE, 100),
                                ("SDPA / SMYRF", ("torch", "sdpa"), 100),
                                ("PyTorch SMYRF / SMYRF", ("torch", "plain"), 5),
                                ("paper's code / SMYRF", ("torch", "paper"), 5)]:
            r = runs.ratio(who, 16384, SMYRF, 16384)
            if r is not None:
                print(f"  N = 16384 {name:22s} {fmt_ratio(r, 'x', 1)}  (target >= {want}x)")
    if 16384 in args.n and 65536 in args.n:
        growth = runs.ratio(SMYRF, 65536, SMYRF, 16384)
        print(f"  time(65536) / time(16384)        {fmt_ratio(growth, '', 2)}   (target <= 4.5)")
    print("\nTargets (issue 10, HYBRID at the same keys per query):")
    if 16384 in args.n and runs.times(HYBRID, 16384):
        r = runs.ratio(HYBRID, 16384, SMYRF, 16384)
        print(f"  N = 16384 HYBRID / SMYRF          {fmt_ratio(r, '', 2)}   (target <= 1.5)")
        r = runs.ratio(("torch", "sdpa"), 16384, HYBRID, 16384)
        if r is not None:
            print(f"  N = 16384 SDPA / HYBRID           {fmt_ratio(r, 'x', 1)}  (target >= 100x)")
        if 65536 in args.n and runs.times(HYBRID, 65536):
            r = runs.ratio(HYBRID, 65536, HYBRID, 16384)
            print(f"  time(65536) / time(16384)        {fmt_ratio(r, '', 2)}   (target <= 4.5)")
    peaks = [peak for peak, _, _ in runs.rounds]
    first = peaks[0]
    print(f"\n  OpenBLAS sgemm 2048^3 peak        "
          f"{statistics.median(p['sgemm_2048_gflops'] for p in peaks):8.1f} GFLOP/s "
          f"(median over the rounds; {first['threads']} threads, OpenBLAS core "
          f"{first.get('openblas_core', '?')}"
          + (f", forced: it picked {first['picked_core']}" if "picked_core" in first else "")
          + ")")
    print(f"  in-cluster attention alone       "
          f"{statistics.median(p['in_cluster_gflops'] for p in peaks):8.1f} GFLOP/s = "
          f"{fmt_share([p['share_of_peak'] for p in peaks])} (target >= 40%; N = 16384, "
          f"2 x 64, {first['kernel']} kernel, softmax and merge included; each round's share "
          f"the median of {first['pairs']} calls paired with an sgemm)")
    for n in args.n:
        rows = [(lib.get(("smyrf", n)), peak) for peak, lib, _ in runs.rounds]
        ok = [(row["attention_gflops"], peak["sgemm_2048_gflops"]) for row, peak in rows
              if lib_times(row)]
        failed = [row_failure(row) for row, _ in rows if not lib_times(row)]
        if not ok:
            print(f"  N = {n:5d} whole SMYRF call     {'n/a':>8s}   ({failed[0]})")
            continue
        left_out = f"; {len(failed)} round(s) left out, {failed[0]}" if failed else ""
        print(f"  N = {n:5d} whole SMYRF call     "
              f"{statistics.median(rate for rate, _ in ok):8.1f} GFLOP/s = "
              f"{fmt_share([rate / peak for rate, peak in ok])} (hashing and sorting "
              f"included; each round against its own peak{left_out})")
    for n in args.n:
        r = runs.rounds[-1][1].get(("smyrf", n))
        if not lib_times(r):
            print(f"  N = {n:5d} memory / (q, k, v, out) {'n/a':>8s}   ({row_failure(r)})")
            continue
        io, ws, extra = r["io_mib"], r["workspace_mib"], r["extra_mib"]
        # extra is null where the tool could not reset the peak RSS (/proc/self/clear_refs)
        ratio = f"{'n/a':>8s}" if extra is None else f"{(io + ws + max(0.0, extra)) / io:8.2f}"
        extra_text = "n/a" if extra is None else f"{extra:.1f}"
        print(f"  N = {n:5d} memory / (q, k, v, out) {ratio}   (target <= 2; {io:.1f} MiB io + "
              f"{ws:.1f} workspace + {extra_text} extra peak RSS)")


def main():
    args = parse_args()
    load = os.getloadavg()[0]  # before our own work adds to it
    tool = args.build_dir / "tools" / "smyrf"
    peak_tool = args.build_dir / "tools" / "smyrf_attention_peak"
    for t in (tool, peak_tool):
        if not t.exists():
            sys.exit(f"compare: {t} is missing: build first (scripts/demo.sh, or cmake "
                     f"--preset default && cmake --build --preset default), or --build-dir; "
                     f"smyrf_attention_peak is built only where OpenBLAS is (libopenblas-dev)")
    rounds = []
    core = None  # the OpenBLAS core every round forces, chosen in the first
    for r in range(args.rounds):
        print(f"[compare] round {r + 1} of {args.rounds}: in-cluster attention and OpenBLAS "
              "sgemm peak, paired...", file=sys.stderr)
        if r == 0:
            peak, core = first_peak(args, peak_tool)
        else:
            peak = attention_peak(args, peak_tool, core)
        print(f"[compare] round {r + 1} of {args.rounds}: libsmyrf (smyrf bench)...",
              file=sys.stderr)
        lib = libsmyrf_rows(args, tool)
        rounds.append((peak, lib, torch_times(args)))
    report(args, Rounds(rounds), load)


if __name__ == "__main__":
    main()
