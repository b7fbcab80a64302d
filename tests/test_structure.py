"""The shape of the house (see the index chapter): data flows one way, no private name crosses a module, modules and
functions stay small. Each check parses the source; none imports or runs it."""
import ast, json, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'audiojepa'
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 600, 60
OURS = ('audiojepa', 'experiments', 'benchmarks')   # what "a module of this project" means below


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob('*.py') if p.name not in ('_modidx.py', '__init__.py'))


def python_files() -> list[Path]:
    "Every Python file of the project: the package, the experiments, the benchmarks, the tests and the tools."
    return [*modules(), *sorted(ROOT.glob('experiments/*.py')), *sorted(ROOT.glob('benchmarks/*.py')),
            *sorted(ROOT.glob('tests/*.py')), *sorted(ROOT.glob('tools/*.py'))]


def module_name(path:Path) -> str:
    return '.'.join(path.relative_to(ROOT).with_suffix('').parts)


def imported_module(node:ast.ImportFrom, path:Path) -> str:
    "The dotted module an `from X import ...` reads, relative imports resolved against `path`'s package."
    if not node.level: return node.module or ''
    package = module_name(path).split('.')[:-node.level]
    return '.'.join(package + ([node.module] if node.module else []))


def chapter_order() -> dict[str, str]:
    "Module -> the notebook that exports it (its number gives the reading order)."
    order = {}
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        for c in cells:
            m = re.match(r'#\|\s*default_exp\s+(\S+)', ''.join(c['source']))
            if m: order[f'audiojepa.{m[1]}'] = nb.stem; break
    return order


def project_imports(path:Path) -> list[tuple[str, list[str], int]]:
    "(module, names, line) of every import of a module of this project in `path`, at any depth."
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = imported_module(node, path)
            if mod.split('.')[0] in OURS: out.append((mod, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split('.')[0] in OURS]
    return out


def test_imports_run_one_way_down_the_chapters():
    "A module imports only modules of earlier chapters: no cycle, nothing that runs back up."
    order = chapter_order()
    assert len(order) >= 20, order
    wrong = []
    for path in modules():
        me = module_name(path)
        for mod, names, line in project_imports(path):
            # `from audiojepa import x` names the module x itself
            targets = [f'{mod}.{n}' for n in names] if mod == 'audiojepa' else [mod]
            for target in targets:
                if target in order and me in order and order[target] >= order[me]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} ({order[target]}), "
                                 f"which is not above {me} ({order[me]})")
    assert not wrong, '\n'.join(wrong)


def private(name:str) -> bool: return name.startswith('_') and not name.startswith('__')


def private_crossings(path:Path) -> list[str]:
    "`from x import _name` and `x._name` where x is another module of this project."
    found, tree, me = [], ast.parse(path.read_text()), module_name(path)
    aliases = {}   # local name -> project module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = imported_module(node, path)
            if mod.split('.')[0] not in OURS: continue
            for a in node.names:
                if private(a.name) and mod != me: found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name} from {mod}")
                aliases[a.asname or a.name] = f'{mod}.{a.name}'
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split('.')[0] in OURS: aliases[a.asname or a.name.split('.')[0]] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr) and isinstance(node.value, ast.Name):
            target = aliases.get(node.value.id)
            if target and target != me and (target.split('.')[-1] not in ('', 'self')):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} reads {node.value.id}.{node.attr}")
    return found


def test_no_private_name_crosses_a_module():
    "Names shared between modules are public; a `_name` is used only where it is defined."
    found = [f for path in python_files() for f in private_crossings(path)]
    assert not found, '\n'.join(found)


@pytest.mark.parametrize('path', modules(), ids=lambda p: p.name)
def test_modules_and_functions_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines (at most {MAX_MODULE_LINES}): split the chapter"
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize('path', [*sorted(ROOT.glob('experiments/*.py')), *sorted(ROOT.glob('benchmarks/*.py'))],
                         ids=lambda p: f'{p.parent.name}/{p.name}')
def test_scripts_have_no_function_over_the_limit(path):
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_checks_catch_what_they_look_for(tmp_path, monkeypatch):
    "The checks themselves: a private import and a private attribute are found, a module's own names are not."
    pkg = tmp_path / 'audiojepa'; pkg.mkdir()
    (pkg / 'a.py').write_text('def _helper(): pass\nx = _helper()\n')
    (pkg / 'b.py').write_text('from .a import _helper\nfrom audiojepa import a\ny = a._helper()\n')
    monkeypatch.setattr(__import__(__name__), 'ROOT', tmp_path)
    assert private_crossings(pkg / 'a.py') == []
    assert private_crossings(pkg / 'b.py') == ['audiojepa/b.py:1 imports _helper from audiojepa.a', 'audiojepa/b.py:3 reads a._helper']
