r"""Running mean and variance that merge exactly in structure and hold at any magnitude.

A window's numeric values arrive in slices (flushes of a few thousand values, blocks of a
batch), windows merge, cohorts roll up. Keeping :math:`\sum x` and :math:`\sum x^2` and
taking :math:`E[x^2] - E[x]^2` cancels catastrophically when the mean is large against
the spread: values around :math:`10^9 \pm 1` give a variance of 0 or less. Instead each
slice gives its count, mean and sum of squared deviations :math:`M_2` (two passes over the
slice), and slices merge with Chan, Golub and LeVeque's update:

.. math::

    n = n_a + n_b, \quad \delta = \bar x_b - \bar x_a, \quad
    \bar x = \bar x_a + \delta\,\frac{n_b}{n}, \quad
    M_2 = M_{2,a} + M_{2,b} + \delta^2 \frac{n_a n_b}{n}

The population variance is :math:`M_2 / n`. Merging is associative up to rounding, and
the same slices merged in the same order give the same bits.

Reference: Chan, T. F., Golub, G. H., LeVeque, R. J. (1979). *Updating formulae and a
pairwise algorithm for computing sample variances*. Stanford CS-TR-79-773.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, mean and sum of squared deviations of a set of numbers."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @property
    def variance(self) -> float:
        """Population variance ``M2 / n`` (0 for fewer than one value).

        >>> of(np.array([1e9 + 1, 1e9 - 1])).variance
        1.0
        """
        return self.m2 / self.n if self.n > 0 else 0.0

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))


EMPTY = Moments()


def of(values: npt.NDArray[np.float64]) -> Moments:
    """The moments of one slice of values (two passes: the mean, then the deviations).

    >>> of(np.array([1.0, 2.0, 3.0]))
    Moments(n=3, mean=2.0, m2=2.0)
    """
    n = int(values.size)
    if n == 0:
        return EMPTY
    with np.errstate(over="ignore", invalid="ignore"):  # a value near 1e308 overflows: inf, said by the check
        mean = float(values.mean())
        deviations = values - mean
        m2 = float((deviations * deviations).sum())
    return Moments(n, mean, m2)


def merge(a: Moments, b: Moments) -> Moments:
    """Chan et al.'s merge of two sets' moments.

    >>> merge(of(np.array([1.0, 2.0])), of(np.array([3.0])))
    Moments(n=3, mean=2.0, m2=2.0)
    """
    if b.n == 0:
        return a
    if a.n == 0:
        return b
    n = a.n + b.n
    with np.errstate(over="ignore", invalid="ignore"):
        delta = b.mean - a.mean
        mean = a.mean + delta * (b.n / n)
        m2 = a.m2 + b.m2 + delta * delta * (a.n * b.n / n)
    return Moments(n, float(mean), float(m2))
