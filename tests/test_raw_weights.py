"""`ParameterMonitor.raw_weights` through every kind of scaler: exact through affine ones (per column, in any
composition), a documented local linearisation through monotone transforms, checked against the trained model."""
import warnings
import numpy as np, pandas as pd, pytest
from fastai.tabular.all import TabularPandas, RandomSplitter, tabular_learner, tabular_config, Normalize
from fastai_scaling.procs import RobustNormalize, MinMaxNormalize, StandardNormalize
from fastai_scaling.transforms import QuantileNormalize, PowerNormalize
from fastai_scaling.squash import SquashNormalize
from fastai_scaling.auto import AutoNormalize, mixed_table
from fastai_scaling.monitor import ParameterMonitor, input_affine

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')


def linear_learner(df, procs, conts, epochs=2):
    to = TabularPandas(df, procs=procs, cont_names=conts, y_names='y', splits=RandomSplitter(seed=0)(df))
    learn = tabular_learner(to.dataloaders(bs=64), layers=[], config=tabular_config(use_bn=False, bn_cont=False), n_out=1,
                            cbs=ParameterMonitor())
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-2)
    return learn

def predict(learn, df):
    with learn.no_bar(): return learn.get_preds(dl=learn.dls.test_dl(df))[0].numpy().ravel().astype(np.float64)

@pytest.fixture(scope='module')
def table():
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({'a': rng.normal(50, 10, n), 'b': rng.lognormal(3, 1, n), 'c': rng.uniform(0, 100, n), 'd': rng.normal(size=n)})
    df['y'] = 0.1 * df.a + np.log(df.b) + df.c / 50 + df.d
    return df


def test_raw_weights_through_a_per_column_affine_composition_equal_a_hand_computation(table):
    procs = [StandardNormalize(cols=['a']), RobustNormalize(cols=['b']), MinMaxNormalize(cols=['c'])]   # 'd' unscaled
    learn = linear_learner(table, procs, ['a', 'b', 'c', 'd'])
    mon = learn.parameter_monitor
    w, bias = mon.weights[-1, 0].double().numpy(), mon.biases[-1, 0].item()
    dls = learn.dls
    center = {'a': dls.standard_normalize.centers['a'], 'b': dls.robust_normalize.centers['b'], 'c': dls.min_max_normalize.centers['c'], 'd': 0.}
    scale = {'a': dls.standard_normalize.scales['a'], 'b': dls.robust_normalize.scales['b'], 'c': dls.min_max_normalize.scales['c'], 'd': 1.}
    cols = ['a', 'b', 'c', 'd']
    expected = [w[j] / scale[c] for j, c in enumerate(cols)] + [bias - sum(w[j] * center[c] / scale[c] for j, c in enumerate(cols))]
    raw = mon.raw_weights()
    np.testing.assert_allclose(raw.loc[0, cols + ['bias']].to_numpy(dtype=float), expected, rtol=1e-6)
    assert raw.attrs['linearized'] == []
    # and the model's own output, in raw units, is that affine function
    rows = table.iloc[:20]
    np.testing.assert_allclose(predict(learn, rows), rows[cols].to_numpy() @ np.array(expected[:-1]) + expected[-1], rtol=1e-4, atol=1e-3)

@pytest.mark.parametrize('make', [QuantileNormalize, lambda: QuantileNormalize(output_distribution='uniform'), PowerNormalize,
                                  lambda: PowerNormalize(method='box-cox'), SquashNormalize, lambda: QuantileNormalize(recipe='tabm')])
def test_raw_weights_through_a_transform_are_the_documented_secant_of_the_trained_model(table, make):
    learn = linear_learner(table, [make()], ['a', 'b', 'c'])
    mon, proc = learn.parameter_monitor, next(p for p in learn.dls.procs.fs if hasattr(p, 'encoded_center'))
    raw = mon.raw_weights()
    assert raw.attrs['linearized'] == ['a', 'b', 'c']
    base = table.iloc[[0]][['a', 'b', 'c']].copy()
    for col in ['a', 'b', 'c']:
        e0, delta = proc.encoded_center(col)
        lo, hi = proc.decode_column(col, np.array([e0 - delta, e0 + delta]))
        rows = pd.concat([base.assign(**{col: lo}), base.assign(**{col: hi})]).assign(y=0.)
        p = predict(learn, rows)
        slope = (p[1] - p[0]) / (hi - lo)               # a finite difference of the trained model, in raw units
        np.testing.assert_allclose(raw.loc[0, col], slope, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match=rf"{type(proc).__name__} is not affine .*'a', 'b', 'c'.* linearize=True"):
        mon.raw_weights(linearize=False)

def test_raw_weights_through_auto_are_exact_where_the_choice_is_affine():
    df = mixed_table(2000, seed=3)
    conts = ['flag', 'price', 'pct', 'temp', 'visits']
    learn = linear_learner(df, [AutoNormalize(warn=False)], conts)
    auto = learn.dls.auto_normalize
    raw = learn.parameter_monitor.raw_weights()
    w = learn.parameter_monitor.weights[-1, 0].double().numpy()
    nonaffine = [c for c in conts if not auto.is_affine_column(c)]
    assert raw.attrs['linearized'] == nonaffine and nonaffine == ['price', 'visits']
    for j, c in enumerate(conts):
        a, _ = auto.local_affine(c)
        np.testing.assert_allclose(raw.loc[0, c], w[j] * a, rtol=1e-9)
        if c == 'flag': assert a == 1.                                # advised 'none': the identity
        if c == 'temp': np.testing.assert_allclose(a, 1 / auto.scaler_of('temp').scales['temp'])

def test_input_affine_keeps_fastai_normalize_exact(table):
    learn = linear_learner(table, [Normalize], ['a', 'd'])
    a, b = input_affine(learn.dls, learn.model)
    norm = learn.dls.normalize
    np.testing.assert_allclose(a, [1 / norm.stds['a'], 1 / norm.stds['d']], rtol=1e-6)
    np.testing.assert_allclose(b, [-norm.means['a'] / norm.stds['a'], -norm.means['d'] / norm.stds['d']], rtol=1e-6)
