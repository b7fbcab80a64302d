"""Macro-F1: the unweighted mean over classes of each class's F1 score.

A local `evaluate` module shipped with audiojepa; load it offline with
`evaluate.load(audiojepa.readout.metric_path('macro_f1'))`.
"""
import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Mean over classes of F1 = 2·TP / (2·TP + FP + FN). Every class counts the same whatever its size,
so a probe cannot score well by ignoring rare classes. The classes averaged over are `labels` when given, otherwise
every class that occurs in the references or the predictions; a class with no reference, no prediction scores 0."""
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class index per clip.
    references (list of int): true class index per clip.
    labels (list of int, optional): the classes to average over.
Returns:
    macro_f1 (float): in [0, 1].
Examples:
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'macro_f1': 0.6666666666666666}
"""


class MacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({'predictions': datasets.Value('int64'),
                                        'references': datasets.Value('int64')}))

    def _compute(self, predictions, references, labels=None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if len(references) == 0: raise ValueError("macro_f1 needs at least one prediction")
        labels = np.union1d(predictions, references) if labels is None else np.asarray(labels)
        hit = predictions == references
        tp = np.array([(hit & (references == c)).sum() for c in labels], dtype=float)
        n_pred = np.array([(predictions == c).sum() for c in labels], dtype=float)
        n_true = np.array([(references == c).sum() for c in labels], dtype=float)
        denominator = n_pred + n_true
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        return {'macro_f1': float(f1.mean())}
