"""Mean average precision (mAP): the mean over classes of the area under each class's precision-recall curve.

A local `evaluate` module shipped with audiojepa; load it offline with
`evaluate.load(audiojepa.readout.metric_path('mean_average_precision'))`.
"""
import datasets
import evaluate
import numpy as np

from audiojepa.metrics import score_matrices, score_matrix_info

_DESCRIPTION = """The AudioSet tagging metric. For each class, clips are ranked by score and average precision is the
mean of the precision at the rank of each positive clip (tied scores share one threshold, as in scikit-learn's
`average_precision_score`). Classes without any positive clip are left out of the mean, as in AudioSet evaluations."""
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of float): a score per clip and class, [N, C]; higher means more likely.
    references (list of list of int): multi-hot targets per clip and class, [N, C].
Returns:
    mAP (float): in [0, 1].
    n_classes (int): how many classes had a positive clip and were averaged.
Examples:
    >>> metric.compute(predictions=[[0.9, 0.6], [0.2, 0.8], [0.6, 0.4]], references=[[1, 0], [0, 1], [0, 1]])
    {'mAP': 0.9166666666666666, 'n_classes': 2}
"""


def average_precision(scores, positives):
    "Average precision of one class; `positives` is a bool array."
    order = np.argsort(-scores, kind='stable')
    scores, positives = scores[order], positives[order]
    # the last index of each run of tied scores is a threshold
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_pos = np.cumsum(positives)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall_gain = np.diff(np.r_[0, true_pos]) / positives.sum()
    return float((precision * recall_gain).sum())


class MeanAveragePrecision(evaluate.Metric):
    def _info(self): return score_matrix_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references):
        scores, targets = score_matrices(predictions, references)
        with_positives = np.flatnonzero(targets.any(0))
        if len(with_positives) == 0: raise ValueError("mAP needs at least one positive reference")
        aps = [average_precision(scores[:, c], targets[:, c]) for c in with_positives]
        return {'mAP': float(np.mean(aps)), 'n_classes': len(with_positives)}
