"""A channel's learned normal: mean and spread of its first values, then how far each new value strays."""

from __future__ import annotations

import math

# The spread used when the learned one is (nearly) zero, e.g. a sensor that read one constant while learning:
# max(std, RELATIVE_STD_FLOOR * |mean|, ABSOLUTE_STD_FLOOR). With it a constant 20.0 makes 20.1 read
# 5000 sigma instead of dividing by zero; the absolute part covers a mean of 0.
RELATIVE_STD_FLOOR = 1e-6
ABSOLUTE_STD_FLOOR = 1e-12


class Baseline:
    """Learns mean and standard deviation (Welford) from the first `learn_samples` values, then freezes.

    Once frozen, `sigma(value)` is (value - mean) / std, with std floored as described above. The standard
    deviation is the sample one (divided by n - 1). Non-finite values are neither learned nor scored.
    """

    def __init__(self, learn_samples: int) -> None:
        if learn_samples < 2:
            raise ValueError(f"learn_samples must be at least 2 to measure a spread, got {learn_samples}")
        self.learn_samples = learn_samples
        self.reset()

    def reset(self) -> None:
        """Forget what was learned and start learning again."""
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the running mean

    @property
    def learning(self) -> bool:
        return self._count < self.learn_samples

    @property
    def count(self) -> int:
        """Values learned so far (stops at `learn_samples`)."""
        return self._count

    @property
    def mean(self) -> float | None:
        return self._mean if self._count else None

    @property
    def std(self) -> float | None:
        """The learned standard deviation, before any floor; None below two values or after an overflow."""
        if self._count < 2 or not (math.isfinite(self._m2) and math.isfinite(self._mean)):
            return None
        return math.sqrt(max(self._m2, 0.0) / (self._count - 1))

    def update(self, value: float) -> float | None:
        """Learn from `value` while learning (returning None); once frozen, return its sigma."""
        value = float(value)  # a numpy scalar would turn an overflow into a RuntimeWarning
        if not math.isfinite(value):
            return None
        if self.learning:
            self._count += 1
            delta = value - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (value - self._mean)
            return None
        return self.sigma(value)

    def sigma(self, value: float) -> float | None:
        """How many standard deviations `value` lies from the learned mean; None while learning.

        May be +-inf when the numbers exceed the float range, never NaN.
        """
        std, value = self.std, float(value)
        if self.learning or std is None or not math.isfinite(value):
            return None
        spread = max(std, RELATIVE_STD_FLOOR * abs(self._mean), ABSOLUTE_STD_FLOOR)
        result = (value - self._mean) / spread
        return None if math.isnan(result) else result
