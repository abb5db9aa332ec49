"""The canonical text of a category value, one rule for reference data and events.

A categorical feature is counted by the *text* of its value. The reference build
(Parquet columns read by Arrow), the one-by-one decoder (JSON values) and the batch
decoder (Arrow columns) must give the same text to the same value, or a stream that
matches its reference lands in ``unseen`` for ever. The rule:

========================  ==========================================  ====================
value                     text                                        examples
========================  ==========================================  ====================
boolean                   ``true`` / ``false``                        ``True`` → ``true``
integer (any width)       decimal digits, ``-`` for negatives         ``7`` → ``7``
float, integral           the integer's digits (``-0.0`` is ``0``)    ``7.0`` → ``7``
float, not integral       shortest round-trip decimal of its width    ``0.5`` → ``0.5``
float NaN / ±infinity     not a category (left out, like a null)
string                    itself, unchanged                           ``"DE"`` → ``DE``
dictionary column         the text of its value type
========================  ==========================================  ====================

So the int64 code ``1`` of a Parquet column, the JSON number ``1`` and the JSON number
``1.0`` are one category, and so are a Parquet boolean and the JSON ``true``. The string
``"1"`` is the same category as the number ``1`` (the text is all that is kept); the
string ``"1.0"`` is not. A float32 (or float16) value is written with the fewest digits
that give it back at its own width, so a float32 ``0.1`` is ``0.1``, as a JSON producer
prints it, not ``0.10000000149011612``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ENCODING = 2
"""Version of this rule, stored with reference profiles. Version 1 (before it) read
integer and boolean Parquet columns as floats (``1.0``, ``0.0``), which no event matches."""


def category_text(value: object) -> str:
    """The category a present value counts as (see the module's table).

    A float that is not finite has no category; callers leave NaN out before (the
    decoder refuses a non-finite feature, profiling skips it). Other objects count as
    ``str(value)``.

    >>> category_text(True), category_text(3), category_text(3.0), category_text(-0.0)
    ('true', '3', '3', '0')
    >>> category_text(0.25), category_text("DE"), category_text("1.0")
    ('0.25', 'DE', '1.0')
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, np.floating) and not isinstance(value, np.float64):
        return _narrow_float_text(value)
    if isinstance(value, (float, np.floating)):
        return float_text(float(value))
    return str(value)


def float_text(value: float) -> str:
    """A finite float64's category text: integral values as integers, else ``repr``.

    >>> float_text(2.0), float_text(1e20), float_text(2.5), float_text(1e-05)
    ('2', '100000000000000000000', '2.5', '1e-05')
    """
    return str(int(value)) if value.is_integer() else repr(value)


def _narrow_float_text(value: np.floating[Any]) -> str:
    # numpy prints the shortest decimal that round-trips at the value's own width;
    # read back as a float64, that is the number a JSON producer sends.
    if not np.isfinite(value):
        return repr(float(value))
    return float_text(float(str(value)))


def is_category(value: object) -> bool:
    """Whether a value has a category: not None and not a non-finite float.

    >>> is_category(None), is_category(float("nan")), is_category(float("inf")), is_category(0)
    (False, False, False, True)
    """
    if value is None:
        return False
    if isinstance(value, (float, np.floating)):
        return bool(np.isfinite(value))
    return True


def category_texts(array: Any) -> Any:
    """An Arrow array of category values as an Arrow string array of their texts.

    Nulls stay null, and so do NaN and ±infinity (not categories). Accepts string,
    large string, boolean, integer and floating arrays and dictionaries of them; the
    result is what :func:`category_text` gives each value, computed by Arrow where the
    cast is exact (strings, integers, booleans, integral floats below 2**53) and value
    by value for the rest.

    >>> import pyarrow as pa
    >>> category_texts(pa.array([1.0, 2.5, None, float("nan")])).to_pylist()
    ['1', '2.5', None, None]
    """
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], type=array.type)
    kind = array.type
    if pa.types.is_dictionary(kind):
        texts = category_texts(array.dictionary)
        return texts.take(array.indices)
    if pa.types.is_string(kind):
        return array
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return array.cast(pa.string())
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        # Arrow writes integers as decimal digits and booleans as true/false.
        return array.cast(pa.string())
    if pa.types.is_floating(kind):
        return _float_texts(array)
    raise TypeError(f"no category text for Arrow type {kind}")


def _float_texts(array: Any) -> Any:
    import pyarrow as pa

    values = array.to_numpy(zero_copy_only=False)  # nulls become NaN: no category either
    finite = np.isfinite(values)
    return pa.array(
        [category_text(v) if ok else None for v, ok in zip(values, finite.tolist())], type=pa.string(),
    )
