"""Meta-labelling a trend rule: a classifier learns when the rule's long positions pay.

The primary model is a Crypto Module's prior (by default the vol-targeted Donchian ensemble,
:func:`cryptorl.portfolio.baselines.donchian_position`); the secondary model (López de Prado,
*Advances in Financial Machine Learning*, 2018, ch. 3) is a scikit-learn classifier fitted on
the bars where the rule is long, labelled by whether the coin rose over the next ``horizon``
bars. The agent holds the rule's position where the classifier gives the rise a probability
above ``threshold`` and cash elsewhere: the supervised counterpart of a module's learned filter,
on the same inputs (the market features and the prior's position), and with ``use_metrics`` the
on-chain / social metrics the portfolio's coins share, each (its log where positive) as a rolling
z-score over ``norm_window`` bars, the Data Refinement Unit's normalisation.

One classifier is fitted on all of the portfolio's coins (the inputs are scale-free), on rows
whose label is known by the fit end (a row's label needs ``horizon`` bars after it).
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cryptorl.data.files import infer_interval
from cryptorl.data.frames import align_metrics
from cryptorl.features.market import market_features
from cryptorl.features.rolling import rolling_zscore

from .base import Markets, MetricsMap, PortfolioAgent, check_markets, decision_times, weights_frame
from .config import DEFAULT_FEATURES, PRIORS
from .forecasters.features import metric_names

CLASSIFIERS = ("logistic", "forest")


def make_classifier(kind: str, seed: int = 0) -> ClassifierMixin:
    """``logistic``: standardised inputs, L2 logistic regression (C = 1); ``forest``: 300 trees
    with at least 50 rows per leaf."""
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    if kind == "forest":
        return RandomForestClassifier(n_estimators=300, min_samples_leaf=50, max_features="sqrt", random_state=seed)
    raise ValueError(f"unknown classifier {kind!r}: choose among {', '.join(CLASSIFIERS)}")


class MetaLabelAgent(PortfolioAgent):
    """Each coin at ``prior_t / n`` where the classifier expects the rule's long position to pay,
    cash elsewhere. Fitted attributes: ``assets``, ``fit_end``, ``classifier_``, ``rows_`` (training
    rows) and ``base_rate_`` (their share of rises)."""

    def __init__(
        self,
        classifier: str = "logistic",
        *,
        prior: str = "donchian",
        horizon: int = 10,
        features: tuple[str, ...] = DEFAULT_FEATURES,
        threshold: float = 0.5,
        use_metrics: bool | list[str] = False,
        norm_window: int = 90,
        seed: int = 0,
    ) -> None:
        if PRIORS.get(prior) is None:
            raise ValueError(
                f"meta-labelling needs a prior rule to label: choose among {', '.join(p for p in PRIORS if PRIORS[p])}"
            )
        if int(horizon) < 1:
            raise ValueError(f"the label horizon must be at least 1 bar, got {horizon}")
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"the threshold must be a probability in (0, 1), got {threshold}")
        if int(norm_window) < 2:
            raise ValueError(f"the metrics' normalisation window must be at least 2 bars, got {norm_window}")
        make_classifier(classifier)  # a clear error now, not at fit time
        self.classifier, self.prior, self.horizon = classifier, prior, int(horizon)
        self.features, self.threshold, self.seed = tuple(features), float(threshold), int(seed)
        self.use_metrics, self.norm_window = use_metrics, int(norm_window)
        self.name = f"meta_{classifier}"

    def _inputs(self, frame: pd.DataFrame, metrics: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.Series]:
        """The classifier's inputs per bar (the market features, the prior's position and the
        normalised metrics) and the prior's position; row t uses data up to t only."""
        prior = PRIORS[self.prior](frame["close"].astype("float64"), infer_interval(frame.index) or "1d")
        x = market_features(frame, self.features)
        x["prior"] = prior
        if self.metric_names_:
            values = align_metrics(metrics[self.metric_names_], frame.index)
            logged = values[self.logged_]
            values[self.logged_] = np.log(logged.where(logged > 0))
            z = rolling_zscore(values, self.norm_window, min_periods=max(2, self.norm_window // 2)).fillna(0.0)
            z.iloc[: self.norm_window - 1] = np.nan  # the warm-up; after it a missing value is the mean, 0
            x[self.metric_names_] = z
        return x, prior

    def _metrics(self, metrics: MetricsMap, asset: str) -> pd.DataFrame | None:
        """The asset's metrics frame when the agent reads metrics, with a clear error when it lacks some."""
        if not self.metric_names_:
            return None
        lacking = (
            self.metric_names_
            if metrics is None or asset not in metrics
            else [m for m in self.metric_names_ if m not in metrics[asset].columns]
        )
        if lacking:
            raise ValueError(f"agent '{self.name}' reads the metrics {lacking}, which {asset} lacks")
        return metrics[asset]

    def fit(self, market: Markets, metrics: MetricsMap = None, *, end=None) -> Self:
        assets, closes = check_markets(market, end)
        self.metric_names_ = metric_names(self.use_metrics, assets, metrics, common=True) or []
        frames = {a: self._metrics(metrics, a) for a in assets}
        until = closes.index[-1]
        self.logged_ = [  # a metric positive on every coin's fit range is read as its log
            m for m in self.metric_names_ if all((frames[a].loc[:until, m].dropna() > 0).all() for a in assets)
        ]
        xs, ys = [], []
        for a in assets:
            x, prior = self._inputs(market[a].loc[:until], frames[a])
            rise = closes[a].shift(-self.horizon) / closes[a] - 1.0  # NaN where the label is not known by the end
            keep = (prior > 0) & x.notna().all(axis=1) & rise.notna()
            xs.append(x[keep].to_numpy())
            ys.append((rise[keep] > 0).to_numpy())
        x_all, y_all = np.concatenate(xs), np.concatenate(ys)
        if len(np.unique(y_all)) < 2:
            raise ValueError(
                f"agent '{self.name}': the rule's long positions up to {until} have one outcome only "
                f"({len(y_all)} rows): nothing to classify; fit on a longer range"
            )
        self.classifier_ = make_classifier(self.classifier, self.seed).fit(x_all, y_all)
        self.rows_, self.base_rate_ = len(y_all), float(y_all.mean())
        self.assets, self.fit_end = assets, until
        return self

    def decisions(
        self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per coin and decision time in ``[start, end]``: whether the classifier takes the rule's
        position (1) or stays out (0), and the rule's position; a time whose inputs are not all
        known yet stays out."""
        self._check_fitted()
        self._check_assets(market)
        _, closes = check_markets({a: market[a] for a in self.assets}, end)
        times = decision_times(closes.index, start, end)
        take, rule = {}, {}
        for a in self.assets:
            x, prior = self._inputs(market[a].loc[: closes.index[-1]], self._metrics(metrics, a))
            x = x.loc[times]
            ok = x.notna().all(axis=1).to_numpy()
            taken = np.zeros(len(times))
            if ok.any():
                taken[ok] = self.classifier_.predict_proba(x[ok].to_numpy())[:, 1] > self.threshold
            take[a], rule[a] = taken, prior.loc[times].fillna(0.0).to_numpy()
        return pd.DataFrame(take, index=times), pd.DataFrame(rule, index=times)

    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        take, rule = self.decisions(market, metrics, start=start, end=end)
        risky = (take * rule).to_numpy() / len(self.assets)
        return weights_frame(take.index, self.assets, np.column_stack([1.0 - risky.sum(axis=1), risky]))
