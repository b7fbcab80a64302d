"""Timing and fault-injection scripts, run from the repository root as `python -m benchmarks.NAME` (`--help` for
each); the shell scripts as `bash benchmarks/NAME.sh`. They write under `benchmarks/results/` (git-ignored)."""
