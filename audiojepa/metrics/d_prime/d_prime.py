"""d-prime: the class-averaged ROC AUC expressed as the separation of two unit-variance Gaussians.

A local `evaluate` module shipped with audiojepa; load it offline with
`evaluate.load(audiojepa.readout.metric_path('d_prime'))`.
"""
from statistics import NormalDist

import datasets
import evaluate
import numpy as np

from audiojepa.metrics import score_matrices, score_matrix_info

_DESCRIPTION = """The AudioSet convention: the ROC AUC of each class (the probability that a random positive clip
scores above a random negative one, ties counting half) is averaged over the classes that have both positive and
negative clips, then d' = sqrt(2) * Phi^-1(AUC), the distance between the means of two unit-variance Gaussians that
would give that AUC. Chance is 0; AUC 0.99 is d' 3.29."""
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of float): a score per clip and class, [N, C]; higher means more likely.
    references (list of list of int): multi-hot targets per clip and class, [N, C].
Returns:
    d_prime (float): sqrt(2) * inverse normal CDF of the mean AUC (infinite when the AUC is 1).
    auc (float): the mean ROC AUC.
    n_classes (int): how many classes were averaged.
Examples:
    >>> metric.compute(predictions=[[0.9, 0.6], [0.2, 0.8], [0.6, 0.4]], references=[[1, 0], [0, 1], [0, 1]])
    {'d_prime': 0.9538725524089398, 'auc': 0.75, 'n_classes': 2}
"""


def roc_auc(scores, positives):
    "ROC AUC of one class from the Mann-Whitney U statistic; tied scores share their mean rank."
    order = np.argsort(scores, kind='stable')
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends): ranks[order[start:end]] = (start + end + 1) / 2
    n_pos = positives.sum()
    n_neg = len(scores) - n_pos
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_to_d_prime(auc):
    if auc >= 1: return float('inf')
    if auc <= 0: return float('-inf')
    return float(np.sqrt(2) * NormalDist().inv_cdf(auc))


class DPrime(evaluate.Metric):
    def _info(self): return score_matrix_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references):
        scores, targets = score_matrices(predictions, references)
        n_pos = targets.sum(0)
        both = np.flatnonzero((n_pos > 0) & (n_pos < len(targets)))
        if len(both) == 0: raise ValueError("d-prime needs a class with both positive and negative references")
        auc = float(np.mean([roc_auc(scores[:, c], targets[:, c]) for c in both]))
        return {'d_prime': auc_to_d_prime(auc), 'auc': auc, 'n_classes': len(both)}
