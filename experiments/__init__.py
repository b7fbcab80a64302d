"""Experiments on real audio, run from the repository root and not installed with the library (setup.py packages
`audiojepa` only):

    python -m experiments.corpora         # the real-audio corpora: a pretraining pool and labelled dev tasks
    python -m experiments.learning run    # does pretraining beat random networks? seeds, intervals, a stored report
    python -m experiments.tagging_hlp     # the HLP paper's effect on rendered instrument mixtures
    python -m experiments.xares_padding   # does a clip's X-ARES score depend on the clips batched with it?

Each measures accuracy (the timing and fault-injection scripts are in `benchmarks/`) and writes under
`experiments/results/` (git-ignored) unless told otherwise.
"""
