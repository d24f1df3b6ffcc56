"""Train a tiny byte-level transformer language model with dense and with SMYRF attention,
then swap the attention of each trained model (the paper's interchangeability).

The text is Python's own standard library: the sources of the Lib/*.py modules of the
running interpreter (code, comments and docstrings written by the CPython developers),
concatenated in name order; the last tenth (modules late in the alphabet) is held out.

Two models with the same initial weights and the same batches are trained, one with exact
causal attention (torch's scaled_dot_product_attention) and one with libsmyrf's SMYRF
attention (smyrf.torch, gradients through smyrf_execute_backward: each query attends only
to the keys of its clusters, n_hashes rounds of q_cluster_size keys; the causal mask
keeps its weights off later tokens, but which cluster a query lands in depends on the
later keys too, docs/guarantees.md, so this is the paper's experiment, not a recipe for
causal models, which should use HYBRID or dense attention). Afterwards each is
evaluated on held-out text with both attentions, giving four losses:

    trained dense, evaluated dense   |  trained dense, evaluated smyrf
    trained smyrf, evaluated smyrf   |  trained smyrf, evaluated dense

Written to --out-dir (default train_tiny_transformer_out/ in the current directory, which
the clone's .gitignore ignores): losses.csv (per step training loss of both runs, and the
periodic held-out losses) and loss_curves.png (matplotlib when installed, else a small
built-in PNG renderer); an ASCII version of the plot is printed.

    PY=$(scripts/python-env.sh | tail -n 1)
    cmake --preset test -DSMYRF_BUILD_PYTHON=ON -DPython_EXECUTABLE=$PY
    cmake --build --preset test          # scripts/test.sh does both (and runs the tests)
    PYTHONPATH=build-test/bindings/python $PY examples/python/train_tiny_transformer.py
    ... --steps 2000 --seq-len 512 --d-model 128 --layers 4      # a longer run
"""

import argparse
import csv
import glob
import math
import os
import struct
import sys
import sysconfig
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import smyrf.torch as st


# ---------------------------------------------------------------- data

def stdlib_text(max_bytes):
    """The bytes of the standard library's top-level modules, in name order."""
    lib = sysconfig.get_path("stdlib")
    files = sorted(glob.glob(os.path.join(lib, "*.py")))
    if not files:
        raise SystemExit(f"no standard-library sources found under {lib}")
    chunks, total = [], 0
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        chunks.append(data + b"\n")
        total += len(data) + 1
    data = b"".join(chunks)
    if max_bytes and len(data) > max_bytes:
        # keep both ends so the held-out part stays the alphabet's tail
        head = int(max_bytes * 0.9)
        data = data[:head] + data[-(max_bytes - head):]
    return np.frombuffer(data, dtype=np.uint8), len(files), lib


def batches(data, seq_len, batch, gen):
    """Random windows [batch, seq_len + 1] (inputs and next-byte targets)."""
    while True:
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
        idx = starts[:, None] + torch.arange(seq_len + 1)[None]
        yield torch.from_numpy(data[idx.numpy()].astype(np.int64))


def eval_windows(data, seq_len, n):
    """n evenly spaced windows of the held-out text."""
    starts = np.linspace(0, len(data) - seq_len - 1, n).astype(np.int64)
    idx = starts[:, None] + np.arange(seq_len + 1)[None]
    return torch.from_numpy(data[idx].astype(np.int64))


# ---------------------------------------------------------------- model

class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, attention, layer):
        b, n, d = x.shape
        qkv = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.unbind(2)                   # [B, N, H, hd] strided views
        y = attention(q, k, v, layer)             # [B, N, H, hd]
        x = x + self.proj(y.reshape(b, n, d))
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self, d, heads, layers, seq_len):
        super().__init__()
        self.embed = nn.Embedding(256, d)
        self.pos = nn.Parameter(torch.zeros(seq_len, d))
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.embed.weight, std=0.02)  # tied: logits start near uniform

    def forward(self, ids, attention):
        x = self.embed(ids) + self.pos[:ids.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, attention, i)
        return self.ln(x) @ self.embed.weight.t()  # tied output layer


def dense_attention(q, k, v, layer):
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)


def smyrf_attention(args, seed_of):
    def attention(q, k, v, layer):
        # q, k, v are [B, N, H, hd] views of the fused projection: read in place.
        return st.attention(q, k, v, layout="bnhd", causal=True, n_hashes=args.n_hashes,
                            q_cluster_size=args.q_cluster_size, seed=seed_of(layer),
                            threads=args.threads)
    return attention


# ---------------------------------------------------------------- training

def loss_of(model, ids, attention):
    logits = model(ids[:, :-1], attention)
    return F.cross_entropy(logits.reshape(-1, 256), ids[:, 1:].reshape(-1))


@torch.no_grad()
def evaluate(model, windows, attention, batch):
    model.eval()
    total = 0.0
    for i in range(0, len(windows), batch):
        part = windows[i:i + batch]
        total += loss_of(model, part, attention).item() * len(part)
    model.train()
    return total / len(windows)


def train(name, args, init_state, train_data, held_out, eval_attention):
    torch.manual_seed(args.seed)
    model = TinyLM(args.d_model, args.heads, args.layers, args.seq_len)
    model.load_state_dict(init_state)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95),
                            weight_decay=0.01)
    warmup = max(1, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, args.steps))))))
    step_counter = {"step": 0}
    if name == "dense":
        attention = dense_attention
    else:
        # Fresh hash directions every step and layer: no key pair is missed for good.
        attention = smyrf_attention(args, lambda layer: args.seed * 7919 + 1000003 *
                                    step_counter["step"] + layer)
    data = batches(train_data, args.seq_len, args.batch,
                   torch.Generator().manual_seed(args.seed))
    losses, evals = [], []
    start = time.perf_counter()
    for step in range(args.steps):
        step_counter["step"] = step
        loss = loss_of(model, next(data), attention)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        last = step + 1 == args.steps
        if args.eval_every and ((step + 1) % args.eval_every == 0 or last):
            evals.append((step + 1, evaluate(model, held_out, eval_attention[name],
                                             args.batch)))
        if args.log_every and ((step + 1) % args.log_every == 0 or last):
            print(f"  [{name}] step {step + 1:5d}  train loss {loss.item():.3f}  "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
    return model, losses, evals, time.perf_counter() - start


# ---------------------------------------------------------------- plots

def smooth(values, weight=0.9):
    out, acc = [], None
    for x in values:
        acc = x if acc is None else weight * acc + (1 - weight) * x
        out.append(acc)
    return out


# A 3 x 5 bitmap font for the labels of the built-in renderer.
_FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001010010", "8": "111101111101111",
    "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
    " ": "000000000000000", "a": "000111101111101", "b": "100111101101111",
    "d": "001111101101111", "e": "111100111100111", "f": "111100110100100",
    "g": "111100101101111", "h": "101101111101101", "i": "010000010010010",
    "l": "100100100100111", "m": "101111111101101", "n": "000110101101101",
    "o": "000111101101111", "p": "111101111100100", "r": "000111100100100",
    "s": "111100111001111", "t": "111010010010010", "u": "000101101101111",
    "v": "000101101101010", "w": "101101111111101", "y": "101101111001111",
    "(": "010100100100010", ")": "010001001001010", ",": "000000000010100",
    "x": "000101010101101", "c": "000111100100111", "k": "101110100110101",
    "q": "111101111001001",
}


def _text(img, x, y, s, color, scale=2):
    for ch in s.lower():
        bits = _FONT.get(ch, _FONT[" "])
        for r in range(5):
            for c in range(3):
                if bits[r * 3 + c] == "1":
                    img[y + r * scale:y + (r + 1) * scale, x + c * scale:x + (c + 1) * scale] = color
        x += 4 * scale


def _line(img, x0, y0, x1, y1, color):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.round(np.linspace(x0, x1, n)).astype(int)
    ys = np.round(np.linspace(y0, y1, n)).astype(int)
    ok = (xs >= 0) & (xs < img.shape[1]) & (ys >= 0) & (ys < img.shape[0])
    for dx in (0, 1):
        img[ys[ok], np.minimum(xs[ok] + dx, img.shape[1] - 1)] = color


def _write_png(path, img):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def plot_png(path, curves, evals, title):
    """curves: {name: per-step losses}; evals: {name: [(step, loss)]}."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    colors = {"dense": (31, 119, 180), "smyrf": (214, 39, 40)}
    if plt is not None:
        fig, ax = plt.subplots(figsize=(8, 5))
        for name, ys in curves.items():
            c = [x / 255 for x in colors[name]]
            ax.plot(range(1, len(ys) + 1), ys, color=c, alpha=0.25, lw=0.8)
            ax.plot(range(1, len(ys) + 1), smooth(ys), color=c, label=f"{name} (train, EMA)")
            if evals.get(name):
                s, l = zip(*evals[name])
                ax.plot(s, l, "o--", color=c, label=f"{name} (held-out)")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats / byte)")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        return "matplotlib"
    w, h, left, right, top, bottom = 800, 500, 70, 20, 40, 50
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    steps = max(len(ys) for ys in curves.values())
    skip = steps // 50  # the first steps' losses (near log 256) would flatten the rest
    every = [y for ys in curves.values() for y in ys] + \
        [l for e in evals.values() for _, l in e]
    lo = min(every)
    hi = max([y for ys in curves.values() for y in smooth(ys)[skip:]] +
             [l for e in evals.values() for _, l in e])

    def px(step, loss):
        x = left + (step - 1) / max(1, steps - 1) * (w - left - right)
        y = top + (hi - min(max(loss, lo), hi)) / max(1e-9, hi - lo) * (h - top - bottom)
        return x, y

    grey, black = (200, 200, 200), (0, 0, 0)
    for i in range(6):  # grid and tick labels
        loss = lo + (hi - lo) * i / 5
        _, y = px(1, loss)
        _line(img, left, y, w - right, y, grey)
        _text(img, 5, int(y) - 5, f"{loss:.2f}", black)
        step = 1 + round((steps - 1) * i / 5)
        x, _ = px(step, lo)
        _line(img, x, top, x, h - bottom, grey)
        _text(img, int(x) - 10, h - bottom + 8, str(step), black)
    _line(img, left, h - bottom, w - right, h - bottom, black)
    _line(img, left, top, left, h - bottom, black)
    for name, ys in curves.items():
        light = tuple(int(255 - (255 - c) * 0.3) for c in colors[name])
        for ys_, col in ((ys, light), (smooth(ys), colors[name])):
            pts = [px(i + 1, y) for i, y in enumerate(ys_)]
            for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                _line(img, x0, y0, x1, y1, col)
        for s, l in evals.get(name, []):
            x, y = px(s, l)
            img[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4] = colors[name]
    _text(img, left, 10, title, black)
    for i, name in enumerate(curves):
        _line(img, w - 300, 62 + 18 * i, w - 270, 62 + 18 * i, colors[name])
        _text(img, w - 262, 57 + 18 * i, f"{name}: train, squares held-out", black)
    _text(img, w // 2 - 60, h - 20, "step", black)
    _write_png(path, img)
    return "built-in renderer"


def ascii_plot(curves, width=64, height=14):
    rows = [[" "] * width for _ in range(height)]
    every = [y for ys in curves.values() for y in smooth(ys)]
    lo, hi = min(every), max(every)
    marks = {"dense": "d", "smyrf": "s"}
    for name, ys in curves.items():
        sm = smooth(ys)
        for c in range(width):
            y = sm[min(len(sm) - 1, int(c / (width - 1) * (len(sm) - 1)))]
            r = int(round((hi - y) / max(1e-9, hi - lo) * (height - 1)))
            rows[r][c] = "*" if rows[r][c] not in (" ", marks[name]) else marks[name]
    lines = [f"{hi:6.2f} |" + "".join(rows[0])]
    lines += ["       |" + "".join(r) for r in rows[1:-1]]
    lines += [f"{lo:6.2f} |" + "".join(rows[-1]), "       +" + "-" * width,
              "        step 1" + " " * (width - 16) + str(len(next(iter(curves.values()))))]
    return "\n".join(lines) + "\n        d = dense, s = smyrf, * = both (training loss, EMA)"


# ---------------------------------------------------------------- main

def at_least(low):
    """argparse type: an integer >= low, so a bad value stops before any training."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}; got {value}")
        return value
    return parse


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    positive, count = at_least(1), at_least(0)
    p.add_argument("--steps", type=positive, default=300)
    p.add_argument("--seq-len", type=positive, default=256)
    p.add_argument("--batch", type=positive, default=16)
    p.add_argument("--d-model", type=positive, default=128)
    p.add_argument("--heads", type=positive, default=4)
    p.add_argument("--layers", type=positive, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n-hashes", type=positive, default=2, help="SMYRF hash rounds")
    p.add_argument("--q-cluster-size", type=positive, default=32,
                   help="SMYRF queries (and keys) per cluster")
    p.add_argument("--eval-batches", type=positive, default=8,
                   help="held-out windows = eval-batches x batch")
    p.add_argument("--eval-every", type=count, default=100, help="0 = none during training")
    p.add_argument("--log-every", type=count, default=50, help="0 = no progress lines")
    p.add_argument("--data-bytes", type=count, default=8_000_000,
                   help="at most this much standard-library text (0 = all)")
    p.add_argument("--threads", type=count, default=0,
                   help="CPU threads for torch and libsmyrf (0 = their defaults)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="train_tiny_transformer_out")
    args = p.parse_args(argv)
    if args.d_model % args.heads:
        p.error("--d-model must be a multiple of --heads")
    if args.threads:
        torch.set_num_threads(args.threads)

    data, n_files, lib = stdlib_text(args.data_bytes)
    split = int(len(data) * 0.9)
    train_data, held_data = data[:split], data[split:]
    if len(held_data) < args.seq_len + 1:
        p.error(f"--seq-len {args.seq_len} needs {args.seq_len + 1} bytes of held-out text, "
                f"--data-bytes {args.data_bytes} leaves {len(held_data)}")
    held_out = eval_windows(held_data, args.seq_len, args.eval_batches * args.batch)
    keys = min(args.seq_len, args.n_hashes * args.q_cluster_size)
    print(f"data: {len(data) / 1e6:.2f} MB of {n_files} modules under {lib} "
          f"({len(train_data) / 1e6:.2f} MB train, {len(held_data) / 1e6:.2f} MB held out, "
          f"{len(held_out)} held-out windows)")
    print(f"model: {args.layers} layers, d_model {args.d_model}, {args.heads} heads, "
          f"sequence {args.seq_len} bytes; SMYRF: {args.n_hashes} rounds x "
          f"{args.q_cluster_size} per cluster = up to {keys} of {args.seq_len} keys per "
          f"query (causal: about half of those)")

    torch.manual_seed(args.seed)
    init_state = TinyLM(args.d_model, args.heads, args.layers, args.seq_len).state_dict()
    eval_smyrf = smyrf_attention(args, lambda layer: 12345 + layer)  # fixed for evaluation
    eval_attention = {"dense": dense_attention, "smyrf": eval_smyrf}

    runs = {}
    for name in ("dense", "smyrf"):
        print(f"training with {name} attention, {args.steps} steps")
        runs[name] = train(name, args, init_state, train_data, held_out, eval_attention)

    os.makedirs(args.out_dir, exist_ok=True)
    csv_path = os.path.join(args.out_dir, "losses.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "dense_train", "smyrf_train", "dense_held_out", "smyrf_held_out"])
        ev = {name: dict(runs[name][2]) for name in runs}
        for i in range(args.steps):
            s = i + 1
            w.writerow([s, f"{runs['dense'][1][i]:.5f}", f"{runs['smyrf'][1][i]:.5f}",
                        ev["dense"].get(s, ""), ev["smyrf"].get(s, "")])
    curves = {name: runs[name][1] for name in runs}
    evals = {name: runs[name][2] for name in runs}
    png_path = os.path.join(args.out_dir, "loss_curves.png")
    title = (f"tiny byte lm on python stdlib, {args.layers}x{args.d_model}, "
             f"seq {args.seq_len}, smyrf {args.n_hashes}x{args.q_cluster_size}")
    how = plot_png(png_path, curves, evals, title)
    print()
    print(ascii_plot(curves))
    print(f"\nwrote {csv_path} and {png_path} ({how})")

    print(f"\nheld-out loss (nats per byte; bits per byte in brackets), "
          f"{len(held_out)} windows of {args.seq_len} bytes:")
    results = {}
    for trained in ("dense", "smyrf"):
        model = runs[trained][0]
        for evaluated in (trained, "smyrf" if trained == "dense" else "dense"):
            loss = evaluate(model, held_out, eval_attention[evaluated], args.batch)
            results[trained, evaluated] = loss
            print(f"  trained {trained}, evaluated {evaluated}: {loss:.4f} "
                  f"({loss / math.log(2):.3f})")
    for name in runs:
        print(f"training time {name}: {runs[name][3]:.1f} s "
              f"({runs[name][3] / args.steps * 1000:.0f} ms/step)")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
