"The one registry of scalers: light to import, well formed, and the list that compare, the advisor and the CLI read."
import subprocess, sys
from pathlib import Path

import pytest

from fastai_scaling.registry import REGISTRY, ScalerEntry, BatchNormInputs, scaler_names, scaler_entry, load_scaler

ROOT = Path(__file__).parents[1]
HEAVY = ('torch', 'fastai', 'pandas', 'numpy', 'matplotlib')


def test_the_registry_imports_only_the_standard_library():
    "The command line reads its names at startup: reading them must not import torch, fastai or pandas"
    code = "import sys, fastai_scaling.registry as r; r.scaler_names(); print([m for m in %r if m in sys.modules])" % (HEAVY,)
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == '[]', p.stdout + p.stderr


def test_names_are_unique_in_any_case():
    "`--procs` and `resolve_scalers` take names in any case: two names may not differ by case alone"
    lower = [e.name.lower() for e in REGISTRY]
    assert len(lower) == len(set(lower))


def test_every_entry_loads_to_what_its_kind_says():
    from fasttransform.transform import Transform
    for e in REGISTRY:
        obj = load_scaler(e.name)
        if e.kind == 'none':
            assert obj is None and e.where is None
            continue
        cls = obj if e.kind in ('proc', 'target') and not e.options else type(obj)   # a model marker or a preset: an instance
        assert e.where.split(':')[1] == cls.__name__, e
        assert issubclass(cls, Transform) == (e.kind in ('proc', 'target')), e
        assert all(getattr(obj, k) == v for k, v in e.options.items()), e
    assert isinstance(load_scaler('batchnorm'), BatchNormInputs)
    # a scaler of the target is no input choice: compare, the advisor and the input suites leave it out
    assert [e.name for e in REGISTRY if e.kind == 'target'] == ['TargetNormalize'] and 'TargetNormalize' not in scaler_names('compare')


def test_the_advisors_menu_is_the_registrys():
    "`suggest_scalers` and `AutoNormalize` choose among the `menu` entries, and only those"
    from fastai_scaling.auto import SCALER_PROCS
    from fastai_scaling.core import ColumnScaler
    assert set(SCALER_PROCS) == set(scaler_names('menu'))
    for name in scaler_names('menu'): assert SCALER_PROCS[name] is load_scaler(name) and issubclass(SCALER_PROCS[name], ColumnScaler)


def test_compare_reads_the_registry():
    from fastai_scaling import compare
    assert tuple(compare.SCALERS) == scaler_names('compare')
    assert tuple(compare.DEFAULT_CHOICES) == scaler_names('default')
    for name in scaler_names('compare', kind='proc'):
        e, got = scaler_entry(name), compare.SCALERS[name]
        if not e.options: assert got is load_scaler(name)
        else: assert type(got) is type(load_scaler(name)) and all(getattr(got, k) == v for k, v in e.options.items())   # a preset: a proc


def test_a_preset_is_a_proc_of_its_class_made_with_its_options():
    "QuantileTabM is QuantileNormalize(recipe='tabm'), fresh at each load; presets are compare choices, not the advisor's"
    from fastai_scaling.transforms import QuantileNormalize
    e = scaler_entry('QuantileTabM')
    assert e.where == 'fastai_scaling.transforms:QuantileNormalize' and e.options == dict(recipe='tabm') and e.roles == ('compare',)
    a, b = load_scaler('QuantileTabM'), load_scaler('QuantileTabM')
    assert type(a) is QuantileNormalize and a.recipe == 'tabm' and a is not b
    with pytest.raises(ValueError, match="only a 'proc' takes options"): ScalerEntry('x', 'm:X', 'x', kind='model', options=dict(a=1))
    with pytest.raises(ValueError, match="cannot have the 'menu' role"): ScalerEntry('x', 'm:X', 'x', ('menu',), options=dict(a=1))


def test_bad_names_and_entries_are_named():
    with pytest.raises(KeyError, match="unknown scaler 'Robust'; the registry has none, Normalize"): scaler_entry('Robust')
    with pytest.raises(ValueError, match="unknown role 'advisor'"): scaler_names('advisor')
    with pytest.raises(ValueError, match="kind 'layer' is not one of proc, model, none"): ScalerEntry('x', 'm:X', 'x', kind='layer')
    with pytest.raises(ValueError, match="'module:attribute'"): ScalerEntry('x', 'fastai_scaling.procs.X', 'x')
