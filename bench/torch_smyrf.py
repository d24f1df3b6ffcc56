"""SMYRF attention written plainly in PyTorch, step by step from ALGORITHM.md.

The yardstick "a straightforward PyTorch implementation of the same algorithm" for
bench/compare.py: tensor operations only, no custom kernels. One (batch, head) problem;
Nq must be a multiple of the cluster size and Nk a multiple of the cluster count, so
that the balanced cut is a reshape (the library itself has no such restriction).
"""
import torch


def smyrf_attention(q, k, v, n_hashes, cluster_size, generator=None, scale=None):
    """q [Nq, d], k [Nk, d], v [Nk, dv] -> out [Nq, dv]."""
    nq, d = q.shape
    nk, dv = v.shape
    clusters = nq // cluster_size
    if nq % cluster_size or nk % clusters:
        raise ValueError("Nq must be a multiple of cluster_size, Nk of Nq / cluster_size")
    scale = d ** -0.5 if scale is None else scale

    # 1. XBOX+: append two coordinates so that distance order is inner-product order.
    q_norm2 = q.pow(2).sum(-1, keepdim=True)
    k_norm2 = k.pow(2).sum(-1, keepdim=True)
    m2 = q_norm2.max() + k_norm2.max()
    q_ext = torch.cat([q, torch.zeros_like(q_norm2), (m2 - q_norm2).clamp_min(0).sqrt()], -1)
    k_ext = torch.cat([k, (m2 - k_norm2).clamp_min(0).sqrt(), torch.zeros_like(k_norm2)], -1)

    # 2. Hash: one Gaussian direction per round, the projection is the hash.
    directions = torch.randn(d + 2, n_hashes, generator=generator, dtype=q.dtype)
    q_hash = (q_ext @ directions).t()  # [R, Nq]
    k_hash = (k_ext @ directions).t()  # [R, Nk]

    # 3. Balanced clusters: stable sort, then equal consecutive groups.
    q_order = torch.argsort(q_hash, dim=-1, stable=True)
    k_order = torch.argsort(k_hash, dim=-1, stable=True)
    q_clustered = q[q_order].view(n_hashes, clusters, cluster_size, d)
    k_clustered = k[k_order].view(n_hashes, clusters, nk // clusters, d)
    v_clustered = v[k_order].view(n_hashes, clusters, nk // clusters, dv)

    # 4. Softmax attention inside each cluster, with each row's log-sum-exp.
    logits = q_clustered @ k_clustered.transpose(-1, -2) * scale
    lse = torch.logsumexp(logits, -1, keepdim=True)
    out_sorted = torch.exp(logits - lse) @ v_clustered

    # Back to query order, one slice per round.
    index = q_order.unsqueeze(-1)
    out = torch.empty(n_hashes, nq, dv, dtype=q.dtype)
    out.scatter_(1, index.expand(-1, -1, dv), out_sorted.reshape(n_hashes, nq, dv))
    round_lse = torch.empty(n_hashes, nq, 1, dtype=q.dtype)
    round_lse.scatter_(1, index, lse.reshape(n_hashes, nq, 1))

    # 5. Combine rounds by their log-sum-exp.
    return (torch.softmax(round_lse, dim=0) * out).sum(0)
