"""Every console script is a `dashed_call_parse` command: `--help` works, and every flag reads spelled with dashes."""
import argparse, configparser, importlib, os, subprocess, sys
from pathlib import Path

import pytest

from audiojepa.cli import UNDERSCORES_NOTE, cli_parser, dashed_flags

ROOT = Path(__file__).resolve().parents[1]
cfg = configparser.ConfigParser(); cfg.read(ROOT / 'settings.ini')
SCRIPTS = dict(line.split('=') for line in cfg['DEFAULT']['console_scripts'].split())


def _entry(spec):
    module, func = spec.split(':')
    return getattr(importlib.import_module(module), func)


@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_help(script):
    "`SCRIPT --help` prints the one help style (docstring, one line per flag, the note on underscores) and exits 0."
    module, func = SCRIPTS[script].split(':')
    code = f"import sys; sys.argv = [{script!r}, '--help']; from {module} import {func}; {func}()"
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f'usage: {script}') and UNDERSCORES_NOTE in ' '.join(res.stdout.split())


@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_dashed_flags(script):
    "Each flag is registered with dashes, and its underscored spelling reads the same."
    parser = cli_parser(_entry(SCRIPTS[script]))
    flags = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    assert flags and all('_' not in s for a in flags for s in a.option_strings), [a.option_strings for a in flags]
    positionals = ['X' for a in parser._actions if not a.option_strings and a.nargs is None]
    for action in flags:
        value = [] if action.nargs == 0 else ['1']
        for spelling in (action.option_strings[0], action.option_strings[0].replace('-', '_').replace('__', '--', 1)):
            args = parser.parse_intermixed_args(dashed_flags([spelling, *value, *positionals]))
            assert getattr(args, action.dest) != action.default, spelling
