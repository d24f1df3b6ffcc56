#!/usr/bin/env python3
"""libsmyrf's SMYRF mode against the paper's own PyTorch code, on real attention inputs.

Both run SMYRF on every layer and head of the MiniLM fixture (tests/data/minilm_qkv.bin,
512 tokens; tests/data/README.md) with 1, 2 and 4 hash rounds of clusters of 32 (32, 64
and 128 keys per query), for several seeds each, and each reports the mean over layers
and heads of the per-head relative error ||approx - exact|| / ||exact||. Same algorithm,
different random directions: the means should agree to within the seed-to-seed spread.
libsmyrf's figures come from `smyrf bench --fixture` (error against its DENSE mode), the
paper's against float64 attention. Usage, with the interpreter scripts/python-env.sh
prints and a checkout of https://github.com/giannisdaras/smyrf:
    "$(scripts/python-env.sh | tail -n 1)" bench/paper_parity.py --paper-code DIR
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ROUNDS, CLUSTER = (1, 2, 4), 32


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paper-code", type=Path, required=True,
                   help="a checkout of github.com/giannisdaras/smyrf")
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


def paper_errors(args, layers):
    """{rounds: [mean per-head error for each seed]} of the paper's SmyrfAttention."""
    sys.path.insert(0, str(ROOT / "bench"))
    from torch_contenders import import_paper
    import torch
    SmyrfAttention = import_paper(args.paper_code)
    dim = layers[0][0].shape[-1]
    tensors = [tuple(torch.from_numpy(x) for x in qkv) for qkv in layers]
    exact = [torch.nn.functional.scaled_dot_product_attention(*(x.double() for x in qkv))
             for qkv in tensors]
    result = {}
    with torch.inference_mode():
        for rounds in ROUNDS:
            result[rounds] = []
            for seed in range(args.seeds):
                torch.manual_seed(seed)  # the paper's directions come from torch's generator
                errors = []
                for (q, k, v), ref in zip(tensors, exact):
                    out = SmyrfAttention(rounds, CLUSTER, CLUSTER)(q, k, v,
                                                                   norm_factor=dim ** 0.5)
                    errors += ((out.double() - ref).norm(dim=(1, 2)) /
                               ref.norm(dim=(1, 2))).tolist()
                result[rounds].append(float(np.mean(errors)))
    return result


def libsmyrf_errors(args):
    """{rounds: [mean per-head error for each seed]} from `smyrf bench --fixture`."""
    tool = args.build_dir / "tools" / "smyrf"
    if not tool.exists():
        sys.exit(f"paper_parity: {tool} is missing: build first (scripts/demo.sh), or "
                 "--build-dir")
    result = {rounds: [] for rounds in ROUNDS}
    for seed in range(args.seeds):
        out = subprocess.run([str(tool), "bench", "--fixture", str(args.fixture), "--json",
                              "--reps", "1", "--seed", str(seed)],
                             check=True, capture_output=True, text=True).stdout
        for row in map(json.loads, out.splitlines()):
            if row["mode"] == "smyrf" and row["cluster"] == CLUSTER and row["hashes"] in result:
                result[row["hashes"]].append(row["mean_rel_err"])
    return result


def main():
    args = parse_args()
    layers = fixture_layers(args.fixture)
    print(f"[parity] the paper's code, {args.seeds} seeds...", file=sys.stderr)
    paper = paper_errors(args, layers)
    print(f"[parity] libsmyrf, {args.seeds} seeds...", file=sys.stderr)
    ours = libsmyrf_errors(args)
    print(f"\nMiniLM fixture, {len(layers)} layers x {layers[0][0].shape[0]} heads, "
          f"{layers[0][0].shape[1]} tokens; mean per-head relative error, mean (min-max) "
          f"over {args.seeds} seeds")
    print(f"{'keys per query':>15s}  {'paper code':>20s}  {'libsmyrf SMYRF':>20s}  ratio")
    span = lambda e: f"{statistics.mean(e):.3f} ({min(e):.3f}-{max(e):.3f})"
    for rounds in ROUNDS:
        p, o = paper[rounds], ours[rounds]
        print(f"{rounds * CLUSTER:>6d} ({rounds} x {CLUSTER:2d})  {span(p):>20s}  "
              f"{span(o):>20s}  {statistics.mean(o) / statistics.mean(p):5.3f}")


if __name__ == "__main__":
    main()
