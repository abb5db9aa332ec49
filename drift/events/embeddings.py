"""The embedding of an event: a JSON list of numbers or base64 little-endian float32, read as a
``(dim,)`` float32 vector, or refused with the reason a dead letter carries.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
import numpy.typing as npt

from drift.events import DlqReason, _Reject


EMBEDDING_DTYPES = ("float32",)
"""``dtype`` values accepted in ``{"dtype": ..., "b64": ...}`` embeddings (little-endian)."""


def decode_embedding(value: object, dim: int, name: str = "embedding") -> npt.NDArray[np.float32] | None:
    """An embedding as sent in an event, as a ``(dim,)`` float32 vector; None when absent.

    Accepted forms: a JSON list of ``dim`` numbers, or ``{"dtype": "float32", "b64": "..."}``
    holding ``4 × dim`` bytes of little-endian float32. Raises ``_Reject`` (the decoder
    turns it into a dead letter) with reason ``wrong_type`` (neither form, or a list item
    that is not a number), ``bad_embedding`` (another dtype or key, invalid base64),
    ``wrong_dimension`` (a length other than ``dim``) or ``non_finite`` (NaN, infinity,
    or a number too large for float32).

    >>> decode_embedding([1, 0.5], 2).tolist()
    [1.0, 0.5]
    >>> decode_embedding({"dtype": "float32", "b64": "AACAPwAAAD8="}, 2).tolist()
    [1.0, 0.5]
    """
    if value is None:
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            if type(item) is not float and type(item) is not int:
                raise _Reject(DlqReason.WRONG_TYPE, f"{name}[{i}] must be a number; got {type(item).__name__}")
        if len(value) != dim:
            raise _Reject(DlqReason.WRONG_DIMENSION, f"{name} must have {dim} numbers; got {len(value)}")
        try:
            vector = np.asarray(value, dtype=np.float64)
        except OverflowError:  # an integer beyond float64
            raise _Reject(DlqReason.NON_FINITE, f"{name} holds a number too large for float32") from None
        with np.errstate(over="ignore"):
            out = vector.astype(np.float32)
    elif isinstance(value, dict):
        if set(value) != {"dtype", "b64"}:
            raise _Reject(
                DlqReason.BAD_EMBEDDING,
                f"{name} object must have exactly the keys dtype and b64; got {sorted(map(str, value))[:8]}",
            )
        dtype, text = value["dtype"], value["b64"]
        if dtype not in EMBEDDING_DTYPES:
            raise _Reject(
                DlqReason.BAD_EMBEDDING,
                f"{name}.dtype must be one of {', '.join(EMBEDDING_DTYPES)}; got {str(dtype)[:32]!r}",
            )
        if not isinstance(text, str):
            raise _Reject(DlqReason.BAD_EMBEDDING, f"{name}.b64 must be a base64 string; got {type(text).__name__}")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Reject(DlqReason.BAD_EMBEDDING, f"{name}.b64 is not valid base64: {exc}") from None
        if len(data) != 4 * dim:
            raise _Reject(
                DlqReason.WRONG_DIMENSION,
                f"{name}.b64 must decode to {4 * dim} bytes ({dim} float32); got {len(data)} bytes",
            )
        # Little-endian on the wire, native (and writable, so it pickles small) in memory.
        out = np.frombuffer(data, dtype="<f4").astype(np.float32)
    else:
        raise _Reject(
            DlqReason.WRONG_TYPE,
            f"{name} must be a list of numbers or an object {{dtype, b64}}; got {type(value).__name__}",
        )
    finite = np.isfinite(out)
    if not finite.all():
        first = int(np.argmin(finite))
        raise _Reject(DlqReason.NON_FINITE, f"{name}[{first}] is not finite as float32; got {float(out[first])!r}")
    return out
