"The package's layers (issue 19): each module imports only modules below it, at module level, and none imports another's private names"
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parents[1] / 'fastai_scaling'
# from the ground up; a module may import any module of an earlier layer
LAYERS = [['stats'], ['sources', 'cdf', 'drift_stats'], ['summaries', 'patches'], ['core'], ['drift_batch'], ['procs', 'drift', 'transforms', 'encode'], ['squash'],
          ['registry', 'compare_pool', 'monitor', 'loader', 'drift_report'], ['auto', 'target', 'compare_data', 'compare_results'], ['compare_report', 'compare_protocol'],
          ['compare'], ['cli']]
LEVEL = {m: i for i, layer in enumerate(LAYERS) for m in layer}


def package_imports(mod):
    "(module imported, names, line, at module level) for every import of a package module in `mod`"
    tree = ast.parse((PKG / f'{mod}.py').read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('fastai_scaling')):
            name = (node.module or '').removeprefix('fastai_scaling').lstrip('.') or None
            out.append((name, [a.name for a in node.names], node.lineno, id(node) in top))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('fastai_scaling'): out.append((a.name.removeprefix('fastai_scaling.'), [], node.lineno, id(node) in top))
    return out


@pytest.mark.parametrize('mod', list(LEVEL))
def test_imports_point_down_only(mod):
    for name, names, line, at_top in package_imports(mod):
        assert at_top, f"{mod}.py:{line} imports {name} inside a function"
        assert name in LEVEL and LEVEL[name] < LEVEL[mod], f"{mod}.py:{line} imports {name}, which is not below it"
        private = [n for n in names if n.startswith('_')]
        assert not private, f"{mod}.py:{line} imports private names {private} of {name}"


def test_every_module_has_a_layer():
    "A new module joins LAYERS (and so this check); `all` and nbdev's index are not layers"
    modules = {p.stem for p in PKG.glob('*.py')} - {'__init__', 'all', '_modidx'}
    assert modules == set(LEVEL), f"modules without a layer: {sorted(modules - set(LEVEL))}; layers without a module: {sorted(set(LEVEL) - modules)}"

def test_no_module_over_500_lines():
    long = {p.name: n for p in PKG.glob('*.py') if p.name != '_modidx.py' and (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"


def test_the_engine_knows_no_scaler():
    "The two-pass engine serves what a scaler's `summary_fit` asks for; its code names no scaler class"
    tree = ast.parse((PKG / 'summaries.py').read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not [n for n in names if n.endswith('Normalize') or n in ('ColumnScaler', 'MonotoneTransform')]
