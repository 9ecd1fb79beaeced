"""Every scaling proc the package ships, as factories: the suites that protect all of them (bad input, the fastai
tutorial flow, round trips) parametrize over this list, and `test_inputs.py` fails when an exported scaler is missing."""
from fastai_scaling.procs import RobustNormalize, MinMaxNormalize, StandardNormalize
from fastai_scaling.drift import DriftNormalize
from fastai_scaling.transforms import QuantileNormalize, PowerNormalize
from fastai_scaling.auto import AutoNormalize

# name -> factory(**kwargs) of a fresh proc; kwargs are passed on (e.g. cols=)
SCALERS = {
    'StandardNormalize': lambda **kw: StandardNormalize(**kw),
    'RobustNormalize': lambda **kw: RobustNormalize(**kw),
    'RobustNormalize(unit_variance)': lambda **kw: RobustNormalize(unit_variance=True, **kw),
    'MinMaxNormalize': lambda **kw: MinMaxNormalize(**kw),
    'MinMaxNormalize(clip, quantile_range)': lambda **kw: MinMaxNormalize(feature_range=(-1, 1), clip=True, quantile_range=(1, 99), **kw),
    'DriftNormalize': lambda **kw: DriftNormalize(**kw),
    'QuantileNormalize': lambda **kw: QuantileNormalize(**kw),
    'QuantileNormalize(uniform, noise)': lambda **kw: QuantileNormalize(n_quantiles=100, output_distribution='uniform', noise=1e-3, **kw),
    'PowerNormalize': lambda **kw: PowerNormalize(**kw),
    'PowerNormalize(unstandardized)': lambda **kw: PowerNormalize(standardize=False, **kw),
    'AutoNormalize': lambda **kw: AutoNormalize(warn=False, **kw),
}

# the scalers whose encoding is (x - center) / scale
AFFINE = [n for n in SCALERS if SCALERS[n]().is_affine]
