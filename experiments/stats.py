"""The statistics of the learning benchmark (`experiments/learning.py`): means and standard deviations over seeds, the
95 % interval of a difference of means (Welch), of a paired mean difference and of one run against a sample of runs
(a prediction interval), and the verdict an interval allows.

An effect is claimed only when its interval excludes zero: "gain" or "loss", otherwise "tie (inconclusive)"; with
fewer than two values on a side there is no interval, and the verdict says "not resolvable (one seed)". The
half-width of the interval is the smallest effect the design can resolve: a true difference smaller than it will
usually come out as a tie.

scipy is not a dependency of the library (settings.ini), so Student's t distribution is computed here: its CDF from
the regularised incomplete beta function (a continued fraction), its quantile by bisection on the CDF.
"""
from __future__ import annotations
import math
from statistics import mean, stdev

LEVEL = 0.95
VERDICTS = ('gain', 'loss', 'tie (inconclusive)', 'not resolvable (one seed)')


def incomplete_beta(x:float, a:float, b:float) -> float:
    "The regularised incomplete beta function I_x(a, b), for 0 <= x <= 1 and a, b > 0."
    if not 0 <= x <= 1: raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0, 1): return float(x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # the continued fraction converges fast for x < (a + 1) / (a + b + 2); beyond it use I_x(a, b) = 1 - I_{1-x}(b, a)
    if x < (a + 1) / (a + b + 2): return math.exp(log_front) * beta_fraction(x, a, b) / a
    return 1 - math.exp(log_front) * beta_fraction(1 - x, b, a) / b


def beta_fraction(x:float, a:float, b:float, tol:float=1e-15, max_terms:int=10_000) -> float:
    "The continued fraction of the incomplete beta function, evaluated by the modified Lentz method."
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    value = d
    for m in range(1, max_terms):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),               # the even step
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):    # the odd step
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            value *= c * d
        if abs(c * d - 1) < tol: return value
    raise ArithmeticError(f"the incomplete beta fraction did not converge for x={x}, a={a}, b={b}")


def t_cdf(t:float, df:float) -> float:
    "P(T <= t) for Student's t with `df` degrees of freedom (any positive real)."
    if df <= 0: raise ValueError(f"degrees of freedom must be positive, got {df}")
    tail = 0.5 * incomplete_beta(df / (df + t * t), df / 2, 0.5)   # P(T > |t|)
    return 1 - tail if t >= 0 else tail


def t_quantile(p:float, df:float, tol:float=1e-12) -> float:
    "The `p` quantile of Student's t with `df` degrees of freedom, by bisection on `t_cdf`."
    if not 0 < p < 1: raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5: return -t_quantile(1 - p, df, tol)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p: low, high = high, 2 * high
    while high - low > tol * max(1.0, high):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def mean_sd(values) -> dict:
    "{'mean', 'sd', 'n'} of `values` (sd with n - 1; None for fewer than two values)."
    values = [float(v) for v in values]
    if not values: return {'mean': None, 'sd': None, 'n': 0}
    return {'mean': mean(values), 'sd': stdev(values) if len(values) > 1 else None, 'n': len(values)}


def interval(difference:float, se:float, df:float, level:float=LEVEL) -> dict:
    "The two-sided `level` t interval `difference ± t · se` with its half-width (the smallest effect it resolves)."
    half = 0.0 if se == 0 else t_quantile((1 + level) / 2, df) * se
    return {'difference': difference, 'low': difference - half, 'high': difference + half, 'half_width': half,
            'se': se, 'df': df, 'level': level}


def welch_summary(mean_a:float, sd_a:float, n_a:int, mean_b:float, sd_b:float, n_b:int, level:float=LEVEL) -> dict:
    "Interval of mean_a - mean_b from two samples' means, standard deviations and sizes (Welch–Satterthwaite df)."
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b   # squared standard errors of the two means
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1)) if se > 0 else math.inf
    return interval(mean_a - mean_b, se, df, level)


def welch_interval(a, b, level:float=LEVEL) -> dict|None:
    "Interval of mean(a) - mean(b) for two independent samples of unequal variances; None below 2 values each."
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) < 2 or len(b) < 2: return None
    return welch_summary(mean(a), stdev(a), len(a), mean(b), stdev(b), len(b), level)


def paired_interval(after, before, level:float=LEVEL) -> dict|None:
    "Interval of the mean of `after[i] - before[i]` (one t interval on the differences, n - 1 df); None below 2 pairs."
    if len(after) != len(before): raise ValueError(f"paired samples of different sizes: {len(after)} and {len(before)}")
    diffs = [float(x) - float(y) for x, y in zip(after, before)]
    if len(diffs) < 2: return None
    return interval(mean(diffs), stdev(diffs) / math.sqrt(len(diffs)), len(diffs) - 1, level)


def prediction_interval(value:float, sample, level:float=LEVEL) -> dict|None:
    """Interval of `value` - mean(sample) for ONE run against a sample of runs, assuming the one run spreads as the
    sample's runs do (se = sd · sqrt(1 + 1/n), n - 1 df): how one long run is read against K shorter ones. None below
    2 values in the sample. The assumption is the weak point: say it wherever the interval is quoted."""
    sample = [float(v) for v in sample]
    if len(sample) < 2: return None
    return prediction_summary(value, mean(sample), stdev(sample), len(sample), level)


def prediction_summary(value:float, mean_b:float, sd_b:float, n_b:int, level:float=LEVEL) -> dict:
    "`prediction_interval` from the sample's mean, standard deviation and size."
    return interval(float(value) - mean_b, sd_b * math.sqrt(1 + 1 / n_b), n_b - 1, level)


def verdict(iv:dict|None) -> str:
    "'gain' or 'loss' when the interval excludes zero, else 'tie (inconclusive)'; no interval (one seed) is not a tie."
    if iv is None: return VERDICTS[3]
    return VERDICTS[0] if iv['low'] > 0 else VERDICTS[1] if iv['high'] < 0 else VERDICTS[2]
