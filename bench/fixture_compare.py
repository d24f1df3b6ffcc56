#!/usr/bin/env python3
"""Accuracy on real attention: libsmyrf's modes, the paper's own code and HyperAttention.

Every method runs on every layer and head of the MiniLM fixture (tests/data/minilm_qkv.bin,
512 tokens; tests/data/README.md) at 32, 64 and 128 keys per query, for several seeds
each, and reports the mean over layers and heads of the per-head relative error
||approx - exact|| / ||exact||, its mean (min-max) over the seeds:
  libsmyrf SMYRF (1, 2, 4 rounds of clusters of 32), the sliding window and HYBRID, from
      `smyrf bench --fixture` (error against libsmyrf's DENSE mode);
  the paper's own PyTorch code (--paper-code DIR, a checkout of
      https://github.com/giannisdaras/smyrf) in the same configurations: the same
      algorithm with other random directions, so it should match libsmyrf's SMYRF to
      within the seed-to-seed spread;
  HyperAttention (--hyper-code DIR, a checkout of https://github.com/insuhan/hyper-attn,
      its PyTorch path): sorted blocks of b keys plus budget - b sampled keys, with the
      best of b in 16, 32, 64 for each budget (the choice most favourable to it).
Errors of the other methods are against float64 attention. Usage, with the interpreter
scripts/python-env.sh prints:
    "$(scripts/python-env.sh | tail -n 1)" bench/fixture_compare.py [--paper-code DIR] \
        [--hyper-code DIR]
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BUDGETS, CLUSTER = (32, 64, 128), 32
HYPER_BLOCKS = (16, 32, 64)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paper-code", type=Path, help="a checkout of github.com/giannisdaras/smyrf")
    p.add_argument("--hyper-code", type=Path, help="a checkout of github.com/insuhan/hyper-attn")
    p.add_argument("--build-dir", type=Path, default=ROOT / "build-default",
                   help="a build tree holding tools/smyrf (default: build-default)")
    p.add_argument("--fixture", type=Path, default=ROOT / "tests" / "data" / "minilm_qkv.bin")
    p.add_argument("--seeds", type=int, default=5, help="seeds per configuration")
    return p.parse_args()


def fixture_layers(path):
    """[(q, k, v)] per layer at the fixture's longest length, each [heads, n, dim] fp32."""
    raw = path.read_bytes()
    if raw[:8] != b"SMYRFQKV":
        sys.exit(f"{path}: not a fixture of tests/data/README.md's format")
    _, _, layers, heads, dim, count = np.frombuffer(raw, "<u4", 6, 8)
    lengths = np.frombuffer(raw, "<u4", count, 32)
    start = int(3 * layers * heads * dim * lengths[:-1].sum())  # skip the shorter lengths
    n = int(lengths[-1])
    data = np.frombuffer(raw, "<f2", offset=32 + 4 * int(count))[start:]
    blocks = data.reshape(layers, 3, heads, n, dim).astype(np.float32)
    return [tuple(blocks[layer]) for layer in range(layers)]


def libsmyrf_errors(args):
    """{(mode, budget): [mean per-head error for each seed]} from `smyrf bench --fixture`."""
    tool = args.build_dir / "tools" / "smyrf"
    if not tool.exists():
        sys.exit(f"fixture_compare: {tool} is missing: build first (scripts/demo.sh), or "
                 "--build-dir")
    result = {}
    for seed in range(args.seeds):
        out = subprocess.run([str(tool), "bench", "--fixture", str(args.fixture), "--json",
                              "--reps", "1", "--seed", str(seed)],
                             check=True, capture_output=True, text=True).stdout
        for row in map(json.loads, out.splitlines()):
            if row["mode"] != "dense":
                result.setdefault((row["mode"], row["keys_per_query"]), []).append(
                    row["mean_rel_err"])
    return result


class Errors:
    """Mean per-head error of attention functions on the fixture, against float64."""

    def __init__(self, layers, torch):
        self.torch = torch
        self.layers = [tuple(torch.from_numpy(x)[None] for x in qkv) for qkv in layers]
        self.exact = [torch.nn.functional.scaled_dot_product_attention(
            *(x.double() for x in qkv)) for qkv in self.layers]

    def seeds(self, make, seeds):
        """[mean error for each seed]; make() builds the method after the seed is set."""
        torch, result = self.torch, []
        with torch.inference_mode():
            for seed in range(seeds):
                torch.manual_seed(seed)  # both methods draw their randomness from torch
                method, errors = make(), []
                for (q, k, v), ref in zip(self.layers, self.exact):
                    diff = method(q, k, v).double() - ref
                    errors += (diff.norm(dim=(2, 3)) / ref.norm(dim=(2, 3)))[0].tolist()
                result.append(float(np.mean(errors)))
        return result


def paper_errors(args, errors, dim):
    sys.path.insert(0, str(ROOT / "bench"))
    from torch_contenders import import_paper
    SmyrfAttention = import_paper(args.paper_code)

    def make(rounds):
        paper = SmyrfAttention(rounds, CLUSTER, CLUSTER)
        return lambda q, k, v: paper(q[0], k[0], v[0], norm_factor=dim ** 0.5)[None]
    return {b: errors.seeds(lambda: make(b // CLUSTER), args.seeds) for b in BUDGETS}


def hyper_errors(args, errors):
    """{budget: (best block, [errors])}."""
    sys.path.insert(0, str(args.hyper_code))
    from models.attention.hyper_attn import HyperAttention
    dim = errors.layers[0][0].shape[-1]
    result = {}
    for budget in BUDGETS:
        tried = {b: errors.seeds(lambda: HyperAttention(input_dim=dim, block_size=b,
                                                        sample_size=budget - b, min_seq_len=1),
                                 args.seeds)
                 for b in HYPER_BLOCKS if b <= budget}
        best = min(tried, key=lambda b: statistics.mean(tried[b]))
        result[budget] = (best, tried[best])
    return result


def main():
    args = parse_args()
    layers = fixture_layers(args.fixture)
    print(f"[fixture] libsmyrf, {args.seeds} seeds...", file=sys.stderr)
    ours = libsmyrf_errors(args)
    columns = [("libsmyrf SMYRF", {b: ours[("smyrf", b)] for b in BUDGETS})]
    if args.paper_code or args.hyper_code:
        import torch
        errors = Errors(layers, torch)
        if args.paper_code:
            print(f"[fixture] the paper's code, {args.seeds} seeds...", file=sys.stderr)
            columns.append(("paper's code", paper_errors(args, errors, layers[0][0].shape[-1])))
        if args.hyper_code:
            print(f"[fixture] HyperAttention, {args.seeds} seeds per block size...",
                  file=sys.stderr)
            hyper = hyper_errors(args, errors)
            columns.append(("HyperAttention", {b: e for b, (_, e) in hyper.items()}))
    columns += [("libsmyrf window", {b: ours[("window", b)] for b in BUDGETS}),
                ("libsmyrf HYBRID", {b: ours[("hybrid", b)] for b in BUDGETS})]

    heads, n = layers[0][0].shape[:2]
    print(f"\nMiniLM fixture, {len(layers)} layers x {heads} heads, {n} tokens: mean "
          f"per-head relative error, mean (min-max) over {args.seeds} seeds")
    span = lambda e: f"{statistics.mean(e):.3f} ({min(e):.3f}-{max(e):.3f})"
    print(f"{'keys per query':>14s}" + "".join(f"  {name:>21s}" for name, _ in columns))
    for b in BUDGETS:
        print(f"{b:>14d}" + "".join(f"  {span(col[b]):>21s}" for _, col in columns))
    if args.hyper_code:
        print("HyperAttention's block size (best of " +
              ", ".join(map(str, HYPER_BLOCKS)) + "): " +
              ", ".join(f"{hyper[b][0]} at {b}" for b in BUDGETS))


if __name__ == "__main__":
    main()
