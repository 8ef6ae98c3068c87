"""IntentScorer: per-intent similarity of a query to its descriptions (zero-shot) and examples (few-shot).

Pure numpy over L2-normalised embeddings. An intent's score is the mean cosine similarity
of the query to the intent's `top_k` nearest examples, blended with its best description
match (`description_weight`); an intent without examples is scored by descriptions alone,
so zero-shot and few-shot intents live in one ranking. A trained IntentAdapter adds learned prototypes to the blend. Confidence is a logistic map of the
score (less the mean over intents) around a calibrated `center`: at `center` it is 0.5, the default routing threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _group_index(owners: np.ndarray, mask: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_groups, width) column indices of the rows each group owns, padded with -1; and counts."""
    members = [np.flatnonzero(mask & (owners == g)) for g in range(n_groups)]
    counts = np.array([len(m) for m in members], dtype=np.int64)
    width = max(int(counts.max(initial=0)), 1)
    index = np.full((n_groups, width), -1, dtype=np.int64)
    for g, m in enumerate(members):
        index[g, : len(m)] = m
    return index, counts


def _top_k_mean(sims: np.ndarray, index: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """For each query and group, the mean of the group's k highest similarities: (n, n_groups)."""
    gathered = sims[:, np.maximum(index, 0)]  # (n, groups, width)
    gathered = np.where(index[None] >= 0, gathered, -np.inf)
    k = min(k, index.shape[1])
    top = -np.sort(-gathered, axis=2)[:, :, :k] if k < index.shape[1] else -np.sort(-gathered, axis=2)
    per_group_k = np.minimum(counts, k)  # groups with fewer rows average what they have
    valid = np.arange(top.shape[2])[None, None, :] < per_group_k[None, :, None]
    total = np.where(valid, top, 0.0).sum(axis=2)
    return total / np.maximum(per_group_k, 1)[None, :]


class IntentScorer:
    """Scores queries against a catalogue's embedded texts; `owners[i]` is the intent of row i."""

    def __init__(
        self,
        intents: Sequence[str],
        vectors: np.ndarray,
        owners: np.ndarray,
        is_description: np.ndarray,
        *,
        description_weight: float = 0.35,
        top_k: int = 2,
        center: float = 0.5,
        scale: float = 0.05,
        prototypes: np.ndarray | None = None,
        prototype_weight: float = 0.5,
        baseline_weight: float = 1.0,
    ) -> None:
        self.intents = list(intents)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        owners = np.asarray(owners, dtype=np.int64)
        is_description = np.asarray(is_description, dtype=bool)
        n = len(self.intents)
        self._examples, self._n_examples = _group_index(owners, ~is_description, n)
        self._descriptions, self._n_descriptions = _group_index(owners, is_description, n)
        if np.any((self._n_examples == 0) & (self._n_descriptions == 0)):
            empty = [self.intents[i] for i in np.flatnonzero((self._n_examples == 0) & (self._n_descriptions == 0))]
            raise ValueError(f"intents with neither examples nor descriptions: {empty}")
        self.description_weight = description_weight
        self.top_k = top_k
        self.center = center
        self.scale = scale
        # Learned per-intent prototypes (IntentAdapter), blended in with `prototype_weight`.
        self.prototypes = None if prototypes is None else np.asarray(prototypes, dtype=np.float32)
        self.prototype_weight = prototype_weight if prototypes is not None else 0.0
        # Confidence is judged on score - baseline_weight * (mean score over all intents): an
        # encoder that finds every text of a language alike (MiniLM on Russian) lifts all
        # intents together, and the mean takes that lift back out.
        self.baseline_weight = baseline_weight if len(self.intents) > 2 else 0.0

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(n, n_intents) blended similarity scores of L2-normalised query rows."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        sims = queries @ self.vectors.T
        has_ex = self._n_examples > 0
        has_desc = self._n_descriptions > 0
        ex = _top_k_mean(sims, self._examples, self._n_examples, self.top_k) if has_ex.any() else None
        desc = _top_k_mean(sims, self._descriptions, self._n_descriptions, 1) if has_desc.any() else None
        if ex is None:
            blended = desc
        elif desc is None:
            blended = ex
        else:
            w = self.description_weight
            blended = np.where(has_ex & has_desc, (1 - w) * ex + w * desc, np.where(has_ex, ex, desc))
        if self.prototypes is None:
            return blended
        wp = self.prototype_weight
        return (1 - wp) * blended + wp * (queries @ self.prototypes.T)

    def relative(self, scores: np.ndarray) -> np.ndarray:
        """Scores less the baseline (mean over intents) of their row: what the center applies to."""
        scores = np.atleast_2d(scores)
        return scores - self.baseline_weight * scores.mean(axis=1, keepdims=True)

    def confidence(self, relative: np.ndarray) -> np.ndarray:
        """Logistic map of relative scores to (0, 1): 0.5 at the calibrated `center`."""
        return 1.0 / (1.0 + np.exp(-(np.asarray(relative) - self.center) / self.scale))

    def top(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best intent index per query and its relative score (the out-of-scope statistic)."""
        relative = self.relative(self.scores(queries))
        best = relative.argmax(axis=1)
        return best, relative[np.arange(len(best)), best]

    def rank(self, query: np.ndarray, limit: int = 5) -> list[tuple[str, float, float]]:
        """The best `limit` intents for one query as (name, confidence, raw score)."""
        row = self.scores(query)[0]
        relative = self.relative(row)[0]
        order = np.argsort(-row)[:limit]
        conf = self.confidence(relative[order])
        return [(self.intents[i], float(c), float(row[i])) for i, c in zip(order, conf, strict=True)]

    def predict(self, queries: np.ndarray, threshold: float = 0.5) -> tuple[list[str | None], np.ndarray]:
        """Top intent per query, or None below `threshold` confidence; also the top confidences."""
        best, top = self.top(queries)
        conf = self.confidence(top)
        names = [self.intents[b] if c >= threshold else None for b, c in zip(best, conf, strict=True)]
        return names, conf


def calibrate_center(
    top_scores: np.ndarray, correct: np.ndarray, in_scope: np.ndarray, min_accuracy: float | None = None
) -> float:
    """The score threshold that maximises in-scope accuracy + out-of-scope recall on held-out data.

    `top_scores` are the best intent score of each query, `correct` whether its top intent was
    right (always False for out-of-scope queries), `in_scope` whether the query had an intent.
    With `min_accuracy`, prefer the threshold with the best out-of-scope recall whose in-scope
    accuracy stays at or above it.
    """
    candidates = np.unique(np.round(top_scores, 4))
    n_in = max(int(in_scope.sum()), 1)
    n_out = max(int((~in_scope).sum()), 1)
    best, best_value = float(candidates[0]), -1.0
    fallback, fallback_value = best, -1.0
    for t in candidates:
        accept = top_scores >= t
        acc = float((accept & correct & in_scope).sum()) / n_in
        recall = float((~accept & ~in_scope).sum()) / n_out
        if acc + recall > fallback_value:
            fallback, fallback_value = float(t), acc + recall
        if min_accuracy is not None and acc >= min_accuracy and recall > best_value:
            best, best_value = float(t), recall
    return best if min_accuracy is not None and best_value >= 0 else fallback
