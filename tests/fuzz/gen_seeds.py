# Writes tests/fuzz/corpus/<target>/feature-NN: one seed per feature of fuzz_execute.cpp
# (tiles crossed, d > 16, GQA, dtypes, layouts, gaps, overlapping input rows, exact
# modes, invalid calls). Usage: python3 tests/fuzz/gen_seeds.py tests/fuzz/corpus
# Encodes decoded decisions of fuzz_execute.cpp into bytes (see its decoding order).
import os, sys, struct
out = sys.argv[1]
def length(n, small, step):
    return (n - 1) if n <= small else 224 + (n - small - 1) // step
def case(mode, B=1, Hkv=1, g=1, Nq=8, Nk=8, d=4, dv=4, causal=0, mask=0, lse=1, layout=0,
         dtype=0, strided=0, smyrf=(2, 4, None, 7), hybrid=(0, None, None, 3, 2), scale=None,
         pads=None, alias=(None, None, None), expand=None, bad=(0, 0)):
    b = [B - 1, Hkv - 1, g - 1, length(Nq, 24, 3), length(Nk, 24, 10), length(d, 16, 1),
         length(dv, 16, 1), causal, mask, lse, layout, dtype, 0 if strided else 1]
    if mode == 0:
        R, qc, kc, seed = smyrf
        b += [R - 1, qc - 1]
        b += [1] if kc is None else [0, kc - 1]
        b += list(struct.pack('<Q', seed))
    elif mode == 2:
        budget, w, G, sinks, it = hybrid
        b += [budget]
        b += [0] if w is None else [1, w]
        b += [0] if G is None else [1, G]
        b += [sinks, it]
    b += [1] if scale is None else [0, scale - 1]
    for t in range(4):
        if strided:
            pn, ph, pb = (pads or [(1, 2, 3)] * 4)[t]
            b += [pn, ph, pb]
            if t < 3:
                a = alias[t]
                b += [1] if a is None else [0, a[0], a[1]]
    if mode == 2:
        b += [0] if expand is None else [1, expand + 1]
    b += [bad[0], bad[1]]
    return bytes(b)

seeds = {
 'dense': [
  dict(Nq=70, Nk=20, d=20, dv=8),                       # two query tiles, d past 16
  dict(Nq=5, Nk=265, d=8, dv=5, causal=1, mask=1),      # two key tiles, causal, mask
  dict(B=2, Hkv=2, g=3, Nq=9, Nk=11, dtype=1, layout=1), # GQA, f16, BNHD
  dict(Nq=12, Nk=7, dtype=2, strided=1, causal=1),      # bf16, gaps
  dict(B=2, Hkv=2, Nq=6, Nk=9, strided=1, alias=((1, 2), (0, 0), None)),  # overlapping q, k rows
  dict(Nq=4, Nk=4, bad=(5, 9)), dict(Nq=4, Nk=4, bad=(10, 5)), dict(Nq=4, Nk=4, bad=(13, 7)),
  dict(Nq=3, Nk=30, mask=1, scale=64, bad=(7, 10)),
 ],
 'execute': [
  dict(mode=0, Nq=20, Nk=20, smyrf=(3, 32, None, 1)),    # one cluster: exact
  dict(mode=0, Nq=70, Nk=30, d=20, smyrf=(2, 8, None, 2)),
  dict(mode=0, Nq=10, Nk=265, smyrf=(2, 4, None, 3), mask=1),
  dict(mode=0, B=2, Hkv=2, g=2, Nq=9, Nk=11, dtype=2, layout=1, causal=1, smyrf=(4, 3, 6, 4)),
  dict(mode=0, B=2, Hkv=1, g=2, Nq=8, Nk=12, strided=1, dtype=1, alias=(None, (1, 3), (2, 1))),
  dict(mode=0, Nq=8, Nk=8, bad=(1, 1)), dict(mode=0, Nq=8, Nk=8, bad=(11, 6)),
  dict(mode=0, Nq=8, Nk=8, mask=1, bad=(14, 8)),
 ],
 'hybrid': [
  dict(mode=2, Nq=20, Nk=20, hybrid=(30, None, None, 3, 2)),   # budget >= keys: exact
  dict(mode=2, Nq=40, Nk=120, d=20, hybrid=(0, None, None, 3, 2)),
  dict(mode=2, Nq=70, Nk=300, d=6, dv=6, hybrid=(35, 8, 4, 3, 3), causal=1),
  dict(mode=2, B=2, Hkv=2, g=2, Nq=16, Nk=24, dtype=1, layout=1, mask=1, hybrid=(20, None, 3, 2, 1), expand=6),
  dict(mode=2, B=2, Hkv=2, Nq=10, Nk=30, dtype=2, strided=1, hybrid=(12, None, None, 0, 0), alias=(None, None, (2, 2))),
  dict(mode=2, Nq=8, Nk=30, bad=(12, 2), hybrid=(14, None, None, 3, 2)),
  dict(mode=2, Nq=8, Nk=30, bad=(6, 11), hybrid=(14, None, None, 3, 2)),
 ],
}
for target, cs in seeds.items():
    d = os.path.join(out, 'fuzz_' + target); os.makedirs(d, exist_ok=True)
    for i, c in enumerate(cs):
        mode = c.pop('mode', 1)
        open(os.path.join(d, 'feature-%02d' % i), 'wb').write(case(mode, **c))
