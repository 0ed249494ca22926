"""A baseline of the tests' own, registered from this one file: a fixed share in the first asset."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptorl.portfolio import Baseline, common_index, register_baseline


@register_baseline
class FirstAssetShare(Baseline):
    """``param`` of the portfolio in its first asset at every bar, the rest in cash."""

    key = "first_share"
    default = 0.5

    @classmethod
    def check(cls, param):
        if not 0 <= float(param) <= 1:
            raise ValueError(f"the share must be in [0, 1], got {param!r}")
        return float(param)

    def label(self) -> str:
        return f"{self.param:.0%} first asset"

    def rule(self, markets, assets, start, end):
        idx = common_index(markets, assets, start, end)
        values = np.zeros((len(idx), len(assets) + 1))
        values[:, 0], values[:, 1] = 1.0 - self.param, self.param
        return pd.DataFrame(values, index=idx, columns=["cash", *assets])
