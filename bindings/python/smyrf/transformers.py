"""libsmyrf in Hugging Face transformers: the attention implementations "smyrf" and
"smyrf_hybrid".

    import smyrf.transformers
    smyrf.transformers.configure(n_hashes=4, q_cluster_size=32)   # optional
    model = AutoModel.from_pretrained(path, attn_implementation="smyrf")
    # or: model.set_attn_implementation("smyrf_hybrid")

Any model whose attention goes through transformers' AttentionInterface (BERT and ViT
families, LLaMA-style decoders, ...) runs on libsmyrf, for inference and for training
(gradients through smyrf.torch's registered backward). Attention dropout, logit
soft-capping (Gemma 2), a position bias (T5) and sink logits (gpt-oss) are refused with
NotImplementedError. "smyrf" runs the configured mode (default: the paper's SMYRF);
"smyrf_hybrid" always runs HYBRID. Exact attention (libsmyrf's dense mode) is used below
`min_seq_len` keys and for single-query decoder steps.

Masks: both names are also registered with the AttentionMaskInterface, which hands the
attention a [batch, keys] key-padding mask (or None) for plain bidirectional and causal
patterns; causality comes from the layer (bottom-right aligned, which is what a KV cache
needs). Any other pattern (sliding windows, packed sequences, a caller's own 4-D mask)
arrives as transformers' 4-D SDPA mask and that layer runs transformers' exact SDPA.
With a padding mask and as many queries as keys, each sequence of the batch runs alone on
its valid keys (so a sentence gets the same result whatever it is batched with, exact
below `min_seq_len` valid keys); every query row gets attention over those keys, as SDPA
gives it, except a causal layer's padded rows, which get zeros.

output_attentions=True returns no attention weights (none are formed); a warning says so,
as transformers' SDPA does: use attn_implementation="eager" for them.

torch.compile: a model called without an attention_mask compiles to one graph
(fullgraph=True works; configure() makes it recompile). An attention_mask, even one of all
ones, needs graph breaks, because which keys of each sequence are valid, and how many,
decide the shapes and the mode: compile such calls with fullgraph=False.
"""

import threading

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers import masking_utils
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.utils import logging

from ._core import MODES, integer
from . import torch as _smyrf_torch  # noqa: F401  (registers torch.ops.smyrf)

__all__ = ["configure", "NAMES"]

NAMES = ("smyrf", "smyrf_hybrid")

_log = logging.get_logger(__name__)
_lock = threading.Lock()  # serialises configure() calls
# configure() replaces _config with a new dict and never changes one in place, so the
# attention reads it without the lock (torch.compile cannot trace a lock, and a new dict
# makes a compiled model recompile with the new settings).
_config = {
    "mode": "smyrf",
    "budget": 128,         # HYBRID keys per query
    "n_hashes": 2,         # SMYRF hash rounds
    "q_cluster_size": 64,  # SMYRF queries per cluster
    "seed": 0,
    "min_seq_len": 128,    # fewer keys than this: exact attention
    "expand": -1,          # HYBRID keys per query expanding the heaviest summaries
                           # (-1: derived from the budget)
}
_warned_fallback = set()


def configure(mode=None, budget=None, n_hashes=None, q_cluster_size=None, seed=None,
              min_seq_len=None, expand=None):
    """Sets how "smyrf" and "smyrf_hybrid" compute; None keeps the current value.

    mode: "smyrf" (the paper's algorithm), "hybrid" or "dense", for the "smyrf" name
    ("smyrf_hybrid" always runs HYBRID). budget: HYBRID keys per query. n_hashes,
    q_cluster_size: SMYRF hash rounds and queries per cluster (keys per query =
    n_hashes x cluster size). seed: hashing / k-means seed. min_seq_len: sequences with
    fewer keys run exact attention. expand: HYBRID keys per query (out of budget) spent
    on the exact members of the summaries with the most weight; -1 = derived from the
    budget (the default, round(budget / 3)), 0 = none; causal layers, and sequences whose
    groups average more than `expand` keys, do not expand (those keys join the window). Takes effect on the next
    forward pass; returns the active configuration as a new dict.
    """
    updates = {}
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
        updates["mode"] = mode
    for name, value, low in (("budget", budget, 1), ("n_hashes", n_hashes, 1),
                             ("q_cluster_size", q_cluster_size, 1),
                             ("min_seq_len", min_seq_len, 0), ("expand", expand, -1)):
        if value is not None:
            value = integer(name, value)
            if value < low:
                raise ValueError(f"{name} must be >= {low}; got {value}")
            updates[name] = value
    if seed is not None:
        updates["seed"] = integer("seed", seed)
    global _config
    with _lock:
        _config = {**_config, **updates}
        return dict(_config)


def _padding_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0,
                  mask_function=masking_utils.causal_mask_function, attention_mask=None,
                  **kwargs):
    """Mask function for the AttentionMaskInterface: a [batch, kv_length] bool key-padding
    mask (None when every key is valid) for plain patterns, else the 4-D SDPA mask."""
    causal = mask_function is masking_utils.causal_mask_function
    plain = causal or mask_function is masking_utils.bidirectional_mask_function
    aligned = isinstance(q_offset, int) and isinstance(kv_offset, int) and kv_offset == 0 \
        and (not causal or q_offset + q_length == kv_length)
    if plain and aligned and (attention_mask is None or attention_mask.shape[-1] == kv_length):
        if attention_mask is None or bool(attention_mask.all()):
            return None
        return attention_mask.to(torch.bool)
    kwargs.update(allow_is_causal_skip=False, allow_is_bidirectional_skip=False)
    return masking_utils.sdpa_mask(batch_size=batch_size, q_length=q_length,
                                   kv_length=kv_length, q_offset=q_offset,
                                   kv_offset=kv_offset, mask_function=mask_function,
                                   attention_mask=attention_mask, **kwargs)


def _attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
               is_causal=None, mode=None, **kwargs):
    """AttentionInterface function: query [B, H, Nq, d], key/value [B, Hkv, Nk, *]
    -> ([B, Nq, H, dv], None)."""
    # First, so that the exact fallback below (SDPA, which has none of these either) is
    # never where a model learns of it.
    for unsupported in ("softcap", "position_bias", "s_aux"):
        if kwargs.get(unsupported) is not None:
            raise NotImplementedError(f"smyrf attention does not support {unsupported}")
    if attention_mask is not None and attention_mask.dim() == 4:
        name = type(module).__name__
        if name not in _warned_fallback:
            _warned_fallback.add(name)
            _log.warning("smyrf: %s gets a mask pattern other than padding + causal; "
                         "it runs transformers' exact SDPA", name)
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, is_causal=is_causal,
                                      **kwargs)
    if kwargs.get("output_attentions") and not torch.compiler.is_compiling():
        # As transformers' SDPA and flash attention say: no weights are ever formed.
        _log.warning_once("smyrf attention does not return attention weights "
                          "(output_attentions=True): set the model's attention to 'eager' "
                          "to get them")
    if dropout and module.training:
        raise NotImplementedError("smyrf attention has no attention dropout: set the model's "
                                  "attention dropout to 0 to train with it")
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    cfg = _config
    mode = mode or cfg["mode"]
    nq, nk = query.shape[2], key.shape[2]
    if nk < cfg["min_seq_len"] or nq == 1:
        mode = "dense"
    causal = bool(is_causal and nq > 1)
    # (Not while torch.compile traces: a log call breaks the graph.)
    if causal and mode == "smyrf" and not torch.compiler.is_compiling():
        _log.warning_once("smyrf: SMYRF mode on a causal layer: the mask keeps weights off "
                          "later tokens, but the hashing sees them, so a later token can "
                          "change an earlier output (docs/guarantees.md); causal models "
                          "should use 'smyrf_hybrid' or configure(mode='hybrid')")

    def run(q, k, v, mask, mode):
        out, _ = torch.ops.smyrf.attention(
            q, k, v, mask, causal, float(scaling or 0.0), mode, cfg["n_hashes"],
            cfg["q_cluster_size"], 0, cfg["seed"], cfg["budget"], "bnhd", 0,
            cfg["expand"] if mode == "hybrid" else -1)
        return out.transpose(1, 2)

    if attention_mask is None or mode == "dense" or nq != nk:
        return run(query, key, value, attention_mask, mode), None
    # Each sequence alone on its valid keys, so padding neither takes cluster slots nor
    # makes a sentence's result depend on its batch; below min_seq_len such keys it runs
    # exact, as it does alone. Equal lengths need not mean self-attention (cross-attention
    # to as many encoder tokens) and nothing here tells the two apart, so the queries at
    # padded positions get the same keys in a call of their own; in a causal layer
    # (self-attention) they get zeros, which models ignore.
    out = query.new_zeros((query.shape[0], nq, query.shape[1], value.shape[3]))
    for b in range(query.shape[0]):
        valid = attention_mask[b].to(torch.bool)
        idx = valid.nonzero().squeeze(1)
        if not idx.numel():
            continue
        mode_b = "dense" if idx.numel() < cfg["min_seq_len"] else mode
        k_b, v_b = (t[b:b + 1].index_select(2, idx) for t in (key, value))
        out[b, idx] = run(query[b:b + 1].index_select(2, idx), k_b, v_b, None, mode_b)[0]
        rest = (~valid).nonzero().squeeze(1)
        if rest.numel() and not causal:
            out[b, rest] = run(query[b:b + 1].index_select(2, rest), k_b, v_b, None,
                               mode_b)[0]
    return out, None


def _hybrid_attention(module, query, key, value, attention_mask, **kwargs):
    return _attention(module, query, key, value, attention_mask, mode="hybrid", **kwargs)


AttentionInterface.register("smyrf", _attention)
AttentionInterface.register("smyrf_hybrid", _hybrid_attention)
for _name in NAMES:
    AttentionMaskInterface.register(_name, _padding_mask)
