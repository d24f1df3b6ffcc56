#!/usr/bin/env python3
"""Decoder steps: one (or a few) new queries against a long key/value cache, the exact
attention `smyrf.transformers` runs while a model generates text.

libsmyrf's DENSE mode through `smyrf.torch.attention` against PyTorch's
`scaled_dot_product_attention` (`enable_gqa=True`), side by side in one run, on the same
threads; then, with --model, the time per generated token of a randomly initialised
4-layer LLaMA-shaped model (hidden 1024, 16 heads over 4 kv heads) after a long prompt,
with attn_implementation "smyrf" and "sdpa" in turn. Nothing is downloaded.

Run it with the interpreter scripts/python-env.sh prints and the package of a build on
PYTHONPATH (the test build assembles it under <build>/bindings/python):
    PYTHONPATH=build-test/bindings/python "$(scripts/python-env.sh | tail -n 1)" \\
        bench/decode.py [--threads 2] [--reps 30] [--model] [--prompt 8192]
"""
import argparse
import time

import torch

import smyrf.torch  # noqa: F401  (registers torch.ops.smyrf)
from torch_contenders import time_ms  # bench/, this script's folder

# (query heads, kv heads, cached keys, head dim, new queries)
SHAPES = [(12, 12, 512, 64, 1), (32, 32, 4096, 128, 1), (32, 8, 16384, 128, 1),
          (32, 8, 4096, 128, 4)]


def attention_steps(reps):
    print("heads/kv  keys     d  queries   smyrf ms    SDPA ms   SDPA/smyrf")
    for h, hkv, nk, d, nq in SHAPES:
        q = torch.randn(1, h, nq, d)
        k, v = torch.randn(1, hkv, nk, d), torch.randn(1, hkv, nk, d)
        # A cache's new queries are its last positions: causal for several, none for one.
        mask = None if nq == 1 else torch.ones(nq, nk, dtype=torch.bool).tril(nk - nq)
        with torch.no_grad():
            def ours_fn():
                return smyrf.torch.attention(q, k, v, mode="dense", causal=nq > 1)

            def sdpa_fn():
                return torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, enable_gqa=True, attn_mask=mask)

            # Both compute exact attention: compare before timing.
            gap = (ours_fn() - sdpa_fn()).abs().max().item()
            if gap > 1e-4:
                raise SystemExit(f"libsmyrf and SDPA differ by {gap} at {h}/{hkv}, {nk} keys")
            ours, sdpa = time_ms(ours_fn, reps)[0], time_ms(sdpa_fn, reps)[0]
        print(f"{h:>5}/{hkv:<3} {nk:>6} {d:>5} {nq:>8} {ours:>10.3f} {sdpa:>10.3f} {sdpa / ours:>11.2f}")


def generation(prompt, steps):
    import smyrf.transformers  # noqa: F401  (registers "smyrf")
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=1000, hidden_size=1024, intermediate_size=2048,
                      num_hidden_layers=4, num_attention_heads=16, num_key_value_heads=4,
                      max_position_embeddings=max(32768, prompt + steps))
    for impl in ("sdpa", "smyrf", "sdpa", "smyrf"):  # twice each, interleaved
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).eval()
        model.set_attn_implementation(impl)
        ids = torch.randint(0, cfg.vocab_size, (1, prompt))
        with torch.no_grad():
            out = model(ids, use_cache=True)
            cache, nxt = out.cache, out.logits[:, -1:].argmax(-1)
            t0 = time.perf_counter()
            for _ in range(steps):
                out = model(nxt, cache=cache, use_cache=True)
                cache, nxt = out.cache, out.logits[:, -1:].argmax(-1)
        per_token = (time.perf_counter() - t0) / steps * 1e3
        print(f"attn_implementation={impl!r:8} {per_token:7.2f} ms per generated token "
              f"after {prompt} tokens")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--model", action="store_true", help="also time a generating model")
    parser.add_argument("--prompt", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads")
    attention_steps(args.reps)
    if args.model:
        generation(args.prompt, args.steps)


if __name__ == "__main__":
    main()
