"""Accuracy: the fraction of clips whose predicted class is the true class.

A local `evaluate` module shipped with audiojepa; load it offline with
`evaluate.load(audiojepa.readout.metric_path('accuracy'))`.
"""
import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Fraction of predictions equal to the reference class (single-label classification)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class index per clip.
    references (list of int): true class index per clip.
Returns:
    accuracy (float): in [0, 1].
Examples:
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({'predictions': datasets.Value('int64'),
                                        'references': datasets.Value('int64')}))

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if len(references) == 0: raise ValueError("accuracy needs at least one prediction")
        return {'accuracy': float((predictions == references).mean())}
