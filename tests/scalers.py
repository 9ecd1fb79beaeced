"""Every scaling proc the package ships, as factories: the suites that protect all of them (bad input, the fastai
tutorial flow, round trips) parametrize over this list, and `test_inputs.py` fails when an exported scaler is missing.

The classes come from the registry (`fastai_scaling.registry`): a scaler registered there joins every suite with no
line here; one exported but not registered fails `test_inputs.test_every_exported_scaler_is_tested_here`."""
from fastai_scaling.registry import REGISTRY, load_scaler

# the package's own procs, in the registry's order (fastai's `Normalize`, `none` and `batchnorm` are compare choices only);
# a preset of one of them (an entry with options) joins VARIANTS below
_ENTRIES = [e for e in REGISTRY if e.kind == 'proc' and e.module.startswith('fastai_scaling.') and not e.options]
CLASSES = [e.where.split(':')[1] for e in _ENTRIES]
# bound in this module by class name: a factory looks its class up here at each call, which lets a test swap a class for a
# recorder of the options it is given (`test_scale.options`)
globals().update({cls: load_scaler(e.name) for cls, e in zip(CLASSES, _ENTRIES)})

# options every suite needs: AutoNormalize would warn about the constant columns the suites feed it on purpose
DEFAULTS = {'AutoNormalize': dict(warn=False)}
# more settings of some scalers, each a suite entry of its own: (entry name, class name, options)
VARIANTS = [
    ('RobustNormalize(unit_variance)', 'RobustNormalize', dict(unit_variance=True)),
    ('MinMaxNormalize(clip, quantile_range)', 'MinMaxNormalize', dict(feature_range=(-1, 1), clip=True, quantile_range=(1, 99))),
    ('QuantileNormalize(uniform, noise)', 'QuantileNormalize', dict(n_quantiles=100, output_distribution='uniform', noise=1e-3)),
    ('PowerNormalize(unstandardized)', 'PowerNormalize', dict(standardize=False)),
]
# the registry's presets, by their registered names (e.g. 'QuantileTabM': QuantileNormalize(recipe='tabm'))
VARIANTS += [(e.name, e.where.split(':')[1], dict(e.options)) for e in REGISTRY if e.kind == 'proc' and e.options]
_unlisted = sorted({c for _, c, _ in VARIANTS} - set(CLASSES))
assert not _unlisted, f"tests/scalers.py: VARIANTS name {_unlisted}, which the registry does not list as procs of this package"

def _factory(cls_name:str, **options):
    "factory(**kwargs) of a fresh `cls_name(**options, **kwargs)`, the class looked up by name in this module when called"
    return lambda **kw: globals()[cls_name](**{**DEFAULTS.get(cls_name, {}), **options, **kw})

# name -> factory(**kwargs) of a fresh proc; kwargs are passed on (e.g. cols=)
SCALERS = {}
for _cls in CLASSES:
    SCALERS[_cls] = _factory(_cls)
    SCALERS.update({name: _factory(c, **options) for name, c, options in VARIANTS if c == _cls})

# the scalers whose encoding is (x - center) / scale
AFFINE = [n for n in SCALERS if SCALERS[n]().is_affine]
# the scalers fitted on training values plus noise (QuantileNormalize's `noise`, or a published recipe's): the training
# extremes move by the noise, so they decode to the noisy ends
NOISY = [n for n in SCALERS if getattr(SCALERS[n](), 'noise', None) or getattr(SCALERS[n](), 'recipe', None)]

# the scalers that write their encoding into the frame, for the tests that read encoded frames. A proc whose
# `encodes_in_model` is True (PiecewiseLinearEncode) leaves the values there, refusing missing ones; its model encodes
# each batch, and tests/test_encode.py checks that encoding (and its from_data, dtypes and bad input)
FRAME = [n for n in SCALERS if not SCALERS[n]().encodes_in_model]
