"""Local `evaluate` metrics shipped with audiojepa (loaded offline by path), and what the score-matrix ones share."""
import datasets
import evaluate
import numpy as np

# predictions: a score per clip and class; references: multi-hot targets (mAP, d-prime)
SCORE_MATRIX_FEATURES = datasets.Features({'predictions': datasets.Sequence(datasets.Value('float32')),
                                           'references': datasets.Sequence(datasets.Value('int64'))})

def score_matrices(predictions, references) -> tuple:
    "`(scores [N, C] float64, targets [N, C] bool)`; a `ValueError` when the two are not matrices of one shape."
    scores, targets = np.asarray(predictions, dtype=np.float64), np.asarray(references) > 0
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"predictions and references must both be [N, C], got {scores.shape} and {targets.shape}")
    return scores, targets

def score_matrix_info(description:str, kwargs_description:str) -> evaluate.MetricInfo:
    "The `MetricInfo` of a metric of score and target matrices."
    return evaluate.MetricInfo(description=description, citation="", inputs_description=kwargs_description,
                               features=SCORE_MATRIX_FEATURES)
