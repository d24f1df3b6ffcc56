"""libsmyrf from Python: SMYRF attention (NeurIPS 2020) through the library's C ABI.

    import smyrf
    out = smyrf.attention(q, k, v, n_hashes=2, q_cluster_size=64)   # NumPy, no copies
    with smyrf.Plan(batch=1, heads=8, q_len=4096, qk_dim=64) as plan:  # reuse per shape
        out = plan.execute(q, k, v)

smyrf.torch adds a torch.library custom op (CPU and CUDA tensors); smyrf.transformers
registers the "smyrf" and "smyrf_hybrid" attention implementations with Hugging Face
transformers. Both import their framework lazily: `import smyrf` needs only NumPy.
"""

from . import capi
from ._errors import (BackendUnavailableError, DeviceError, InternalError,
                      InvalidArgumentError, OutOfMemoryError, SmyrfError, UnsupportedError,
                      from_status)
from ._core import Plan, attention

capi._set_error_factory(from_status)

version_number = capi.smyrf_version_number()
__version__ = "{}.{}.{}".format(version_number // 10000, version_number // 100 % 100,
                                version_number % 100)

__all__ = [
    "attention", "Plan", "SmyrfError", "InvalidArgumentError", "UnsupportedError",
    "OutOfMemoryError", "BackendUnavailableError", "DeviceError", "InternalError",
    "version_number",
]
