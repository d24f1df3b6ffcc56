#!/usr/bin/env python3
"""Times one PyTorch contender of bench/compare.py, in a process of its own.

compare.py runs each contender in its own process so that each gets the allocator
setting that suits it (PyTorch reads THP_MEM_ALLOC_ENABLE once, at its first allocation)
and so that the paper's package, which is also called `smyrf`, never meets ours.

Contenders, on one (batch, head) problem of N x d fp32 queries, keys and values:
  sdpa      torch.nn.functional.scaled_dot_product_attention (exact)
  plain     bench/torch_smyrf.py, SMYRF step by step in PyTorch
  paper     the paper's own PyTorch code, SmyrfAttention from a checkout of
            https://github.com/giannisdaras/smyrf (--paper-code DIR; nothing is fetched)
  reformer  Reformer's LSH self-attention (transformers' LSHSelfAttention), one head,
            --hashes rounds of chunks of --cluster keys and no neighbouring chunks: the
            same keys per query as SMYRF. It projects shared query-keys and values from
            one N x d input, two N x d x d products more than the others do.
  hyper     HyperAttention, HyperAttention from a checkout of
            https://github.com/insuhan/hyper-attn (--hyper-code DIR), its PyTorch path:
            sorted blocks of --cluster keys plus (--hashes - 1) x --cluster sampled keys,
            the same keys per query as SMYRF, at every N (its exact attention below
            min_seq_len turned off).
Prints one JSON line per N: {"contender", "n", "median_ms", "min_ms"}; or one line
{"contender", "error"} saying why the contender cannot run.
"""
import argparse
import atexit
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def int_list(text):
    return [int(x) for x in text.split(",")]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("contender", choices=["sdpa", "plain", "paper", "reformer", "hyper"])
    p.add_argument("--n", type=int_list, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--hashes", type=int, default=2)
    p.add_argument("--cluster", type=int, default=64)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--paper-code", type=Path, help="a checkout of giannisdaras/smyrf")
    p.add_argument("--hyper-code", type=Path, help="a checkout of insuhan/hyper-attn")
    return p.parse_args()


def time_ms(fn, reps):
    """(median, min) wall time of reps calls after a warm-up call, in ms."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def import_paper(checkout):
    """SmyrfAttention from a copy of the checkout's smyrf/ package. The copy gets one
    compatibility edit: its XBOX+ builds a column of zeros with
    `.repeat(x.shape[:-1], 1)`, which PyTorch 1.6 read as the shape x.shape[:-1] and
    PyTorch 2 refuses; `.repeat(*x.shape[:-1])` is that shape. Nothing else changes."""
    package = checkout / "smyrf"
    if not (package / "torch" / "attn.py").is_file():
        raise RuntimeError(f"{checkout} is not a checkout of giannisdaras/smyrf "
                           "(no smyrf/torch/attn.py)")
    root = Path(tempfile.mkdtemp(prefix="smyrf-paper-"))
    atexit.register(shutil.rmtree, root, True)  # the copy lives as long as this process
    shutil.copytree(package, root / "smyrf")
    utils = root / "smyrf" / "torch" / "utils.py"
    text = utils.read_text()
    if "repeat(x.shape[:-1], 1)" not in text:
        raise RuntimeError(f"{utils}: the expected XBOX+ line is not there; is this the "
                           "paper's code at its published state?")
    utils.write_text(text.replace("repeat(x.shape[:-1], 1)", "repeat(*x.shape[:-1])"))
    sys.path.insert(0, str(root))
    from smyrf.torch.attn import SmyrfAttention
    return SmyrfAttention


def contender(args, torch, F):
    """fn(q, k, v) -> out for [N, d] tensors, after a self-check where one exists."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(256, args.d, generator=gen) for _ in range(3))
    exact = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]

    def check(out, what):  # one cluster of every key: SMYRF is exact attention
        err = (out - exact).abs().max().item()
        if err > 1e-4:
            raise RuntimeError(f"self-check failed: {what} with one cluster differs from "
                               f"SDPA by {err}")

    if args.contender == "sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q[None, None], k[None, None],
                                                              v[None, None])
    if args.contender == "plain":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from torch_smyrf import smyrf_attention
        check(smyrf_attention(q, k, v, args.hashes, 256, gen), "bench/torch_smyrf.py")
        return lambda q, k, v: smyrf_attention(q, k, v, args.hashes, args.cluster, gen)
    if args.contender == "paper":
        if args.paper_code is None:
            raise RuntimeError("no --paper-code checkout of giannisdaras/smyrf given")
        SmyrfAttention = import_paper(args.paper_code)
        scale = args.d ** 0.5  # its norm_factor divides the logits
        check(SmyrfAttention(args.hashes, 256, 256)(q[None], k[None], v[None],
                                                    norm_factor=scale)[0], "the paper's code")
        paper = SmyrfAttention(args.hashes, args.cluster, args.cluster)
        return lambda q, k, v: paper(q[None], k[None], v[None], norm_factor=scale)

    if args.contender == "hyper":
        if args.hyper_code is None:
            raise RuntimeError("no --hyper-code checkout of insuhan/hyper-attn given")
        if not (args.hyper_code / "models" / "attention" / "hyper_attn.py").is_file():
            raise RuntimeError(f"{args.hyper_code} is not a checkout of insuhan/hyper-attn")
        sys.path.insert(0, str(args.hyper_code))
        from models.attention.hyper_attn import HyperAttention
        # min_seq_len=0: by default (4096) it runs exact attention below 4096 queries,
        # N^2 work where SMYRF meets the same keys per query as here.
        hyper = HyperAttention(input_dim=args.d, block_size=args.cluster,
                               sample_size=(args.hashes - 1) * args.cluster, min_seq_len=0)
        return lambda q, k, v: hyper(q[None, None], k[None, None], v[None, None])

    from transformers import ReformerConfig
    from transformers.models.reformer.modeling_reformer import LSHSelfAttention
    layers = {}

    def reformer(q, k, v):  # Reformer attends from one input: q is that input
        n = q.shape[0]
        if n not in layers:
            config = ReformerConfig(
                hidden_size=args.d, num_attention_heads=1, attention_head_size=args.d,
                num_hashes=args.hashes, lsh_attn_chunk_length=args.cluster,
                num_buckets=max(2, n // args.cluster), lsh_num_chunks_before=0,
                lsh_num_chunks_after=0, is_decoder=False, attn_layers=["lsh"],
                max_position_embeddings=n, axial_pos_embds=False)
            layers[n] = LSHSelfAttention(config).eval()
        return layers[n](q[None]).hidden_states
    return reformer


def main():
    args = parse_args()
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(args.threads)
        with torch.inference_mode():
            fn = contender(args, torch, F)
            gen = torch.Generator().manual_seed(0)
            for n in args.n:
                q, k, v = (torch.randn(n, args.d, generator=gen) for _ in range(3))
                median, least = time_ms(lambda: fn(q, k, v), args.reps)
                print(json.dumps({"contender": args.contender, "n": n, "median_ms": median,
                                  "min_ms": least}), flush=True)
    except Exception as e:  # reported, not raised: compare.py prints why a row is missing
        print(json.dumps({"contender": args.contender, "error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()
