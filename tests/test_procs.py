"Edge cases, bad input, round trips, property tests and scikit-learn cross-checks for the affine procs."
import configparser, pickle, warnings
from pathlib import Path

import numpy as np, pandas as pd, pytest
from hypothesis import given, settings, assume, HealthCheck, strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import MinMaxScaler, RobustScaler
from scipy.stats import norm

from fastai.tabular.all import (TabularPandas, Normalize, FillMissing, Categorify, RandomSplitter, tabular_learner,
                                load_learner)
import fastai_scaling
from fastai_scaling.core import AffineNormalize
from fastai_scaling.procs import RobustNormalize, MinMaxNormalize

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
ROOT = Path(__file__).parents[1]


def make_to(df, proc, conts, splits=None, **kwargs):
    return TabularPandas(df, procs=[proc], cont_names=conts, y_names='y', splits=splits, **kwargs)

def proc_of(to):
    return next(p for p in to.procs.fs if isinstance(p, AffineNormalize))

def assert_encoded_close(ours, theirs, raw, scales):
    "Equal to 1e-5 relative to the raw column's magnitude in encoded units: TabularPandas stores inputs as float32"
    magnitude = np.nanmax(np.abs(np.asarray(raw, dtype=np.float64)), axis=0) / np.asarray(scales)
    np.testing.assert_array_less(np.abs(np.asarray(ours, np.float64) - theirs), 1e-5 * (np.abs(theirs) + magnitude) + 1e-12)

def encode_new(to, df):
    "Encode `df` with `to`'s fitted procs, as `test_dl` does"
    new = to.new(df.copy()); new.process()
    return new


@pytest.fixture(scope='module', params=['breast_cancer', 'diabetes'])
def real(request):
    "A real dataset with raw, unscaled features (breast_cancer spans 1e-3 to 4e3) and a fixed split"
    X = load_breast_cancer(as_frame=True).data if request.param == 'breast_cancer' else load_diabetes(as_frame=True, scaled=False).data
    X.columns = [c.replace(' ', '_') for c in X.columns]
    df = X.assign(y=0.)
    splits = RandomSplitter(valid_pct=0.25, seed=0)(df)
    return df, list(X.columns), [list(s) for s in splits]


# ---- cross-checks against scikit-learn -------------------------------------------------------------------

ROBUST_ARGS = [dict(), dict(quantile_range=(10., 90.)), dict(unit_variance=True), dict(with_centering=False),
               dict(quantile_range=(5., 60.), unit_variance=True, with_scaling=False)]

@pytest.mark.parametrize('kwargs', ROBUST_ARGS, ids=str)
def test_robust_matches_sklearn(real, kwargs):
    df, conts, splits = real
    to = make_to(df, RobustNormalize(**kwargs), conts, splits)
    sk = RobustScaler(**kwargs).fit(df.iloc[splits[0]][conts])
    proc = to.procs.robust_normalize
    expected_center = sk.center_ if kwargs.get('with_centering', True) else np.zeros(len(conts))
    expected_scale = sk.scale_ if kwargs.get('with_scaling', True) else np.ones(len(conts))
    np.testing.assert_allclose([proc.centers[c] for c in conts], expected_center, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose([proc.scales[c] for c in conts], expected_scale, rtol=1e-5)
    for split, rows in zip((to.train, to.valid), splits):
        assert_encoded_close(split.conts[conts].values, sk.transform(df.iloc[rows][conts]), df[conts], expected_scale)

@pytest.mark.parametrize('kwargs', [dict(), dict(feature_range=(-1, 1)), dict(feature_range=(2, 7), clip=True)], ids=str)
def test_minmax_matches_sklearn(real, kwargs):
    df, conts, splits = real
    to = make_to(df, MinMaxNormalize(**kwargs), conts, splits)
    sk = MinMaxScaler(**kwargs).fit(df.iloc[splits[0]][conts])
    for split, rows in zip((to.train, to.valid), splits):
        np.testing.assert_allclose(split.conts[conts].values, sk.transform(df.iloc[rows][conts]), rtol=1e-5, atol=1e-5)
    # beyond the training range: clipped exactly as scikit-learn clips
    far = df.iloc[:20].copy()
    far[conts] = far[conts] * 10 - 5
    np.testing.assert_allclose(encode_new(to, far).conts[conts].values, sk.transform(far[conts]), rtol=1e-5, atol=1e-5)

def test_minmax_quantile_range_uses_percentiles(real):
    df, conts, splits = real
    to = make_to(df, MinMaxNormalize(quantile_range=(1, 99), feature_range=(-1, 1)), conts, splits)
    train = df.iloc[splits[0]][conts].astype(np.float32)
    lo, hi = np.percentile(train, [1, 99], axis=0)
    enc = to.train.conts[conts].values
    expected = (train.values - lo) / (hi - lo) * 2 - 1
    np.testing.assert_allclose(enc, expected, rtol=1e-4, atol=1e-5)

def test_nan_ignored_like_sklearn_and_passed_through():
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=400); x[rng.random(400) < .2] = np.nan
    df = pd.DataFrame({'x': x, 'y': 0.})
    splits = [list(range(300)), list(range(300, 400))]
    for proc, sk in [(RobustNormalize(), RobustScaler()), (MinMaxNormalize(), MinMaxScaler())]:
        to = make_to(df, proc, ['x'], splits)
        expected = sk.fit(df.iloc[:300][['x']]).transform(df[['x']])[:, 0]
        enc = np.r_[to.train.conts['x'].values, to.valid.conts['x'].values]
        np.testing.assert_array_equal(np.isnan(enc), np.isnan(x))      # NaN where NaN was, nowhere else
        np.testing.assert_allclose(enc, expected, rtol=1e-5, atol=1e-6)


# ---- bad input ------------------------------------------------------------------------------------------

@pytest.fixture
def small():
    rng = np.random.default_rng(1)
    return pd.DataFrame({'a': rng.normal(10, 3, 50), 'b': rng.uniform(0, 1, 50), 'y': rng.normal(size=50)})

@pytest.mark.parametrize('proc', [RobustNormalize, MinMaxNormalize])
@pytest.mark.parametrize('bad', [np.inf, -np.inf])
def test_inf_in_training_data_names_column(small, proc, bad):
    small.loc[3, 'b'] = bad
    with pytest.raises(ValueError, match=r"column 'b' contains 1 infinite"):
        make_to(small, proc, ['a', 'b'])

@pytest.mark.parametrize('proc', [RobustNormalize, MinMaxNormalize])
def test_inf_in_new_data_names_column(small, proc):
    to = make_to(small, proc, ['a', 'b'])
    new = small.iloc[:5].copy(); new.loc[2, 'a'] = np.inf
    with pytest.raises(ValueError, match=r"column 'a' contains 1 infinite"):
        encode_new(to, new)
    dls = to.dataloaders(bs=8)
    with pytest.raises(ValueError, match=r"'a'"):
        dls.test_dl(new)

@pytest.mark.parametrize('proc', [RobustNormalize, MinMaxNormalize])
def test_zero_spread_gets_unit_scale(small, proc):
    small['const'] = 7.
    small['mostly'] = 3.; small.loc[:2, 'mostly'] = [1., 50., 9.]   # IQR 0, min-max range not 0
    to = make_to(small, proc, ['a', 'const', 'mostly'])
    p = proc_of(to)
    assert p.scales['const'] == (1. if proc is RobustNormalize else 1.)
    assert np.isfinite(to.conts.values).all()
    # IQR 0 but not constant (issue 18.4): a spread that exists, not scale 1. Sorted, 'mostly' is 1, 47 x 3, 9, 50: the
    # 10-90 and 5-95 percentiles (values of the column: ranks 5/45 and 3/48 of 50) are 3 and 3, the 1st and 99th are 1 and 50
    if proc is RobustNormalize:
        assert p.scales['mostly'] == 50. - 1.
        assert p.spread_rules['mostly'] == 'percentiles 1-99: the 25-75 percentiles are equal'
        assert p.spread_rules['const'] == 'constant: scale 1' and p.spread_rules['a'] == 'percentiles 25-75'
    # an unseen value keeps a sane magnitude (fastai's Normalize would give ~1e7)
    new = encode_new(to, small.iloc[:1].assign(const=8.))
    assert abs(new.conts['const'].item()) <= 1.
    normalize = encode_new(make_to(small, Normalize, ['a', 'const']), small.iloc[:1].assign(const=8.))
    assert abs(normalize.conts['const'].item()) > 1e6

@pytest.mark.parametrize('proc', [RobustNormalize, MinMaxNormalize])
def test_all_nan_column_names_column(small, proc):
    small['empty'] = np.nan
    with pytest.raises(ValueError, match=r"column 'empty' has no non-missing values"):
        make_to(small, proc, ['a', 'empty'])

def test_all_nan_in_training_split_only(small):
    small['late'] = np.nan; small.loc[40:, 'late'] = 1.
    with pytest.raises(ValueError, match=r"'late' has no non-missing values in the training split"):
        make_to(small, RobustNormalize, ['late'], splits=[list(range(40)), list(range(40, 50))])

@pytest.mark.parametrize('reduce_memory', [True, False])
def test_non_numeric_column_names_column(small, reduce_memory):
    small['city'] = np.where(small.a > 10, 'x', 'y')
    with pytest.raises(TypeError, match=r"column 'city' (has non-numeric dtype|holds \d+ value\(s\) that are not numbers, such as '[xy]')"):
        make_to(small, RobustNormalize, ['a', 'city'], reduce_memory=reduce_memory)

def test_non_numeric_column_in_new_data(small):
    to = make_to(small, RobustNormalize, ['a', 'b'])
    with pytest.raises(TypeError, match=r"'b' holds 3 value\(s\) that are not numbers, such as 'p'"):
        encode_new(to, small.iloc[:3].assign(b=['p', 'q', 'r']))

@pytest.mark.parametrize('proc', [RobustNormalize, MinMaxNormalize])
def test_int_bool_and_nullable_columns_come_out_float32(proc):
    df = pd.DataFrame({'i8': np.arange(40, dtype=np.int8), 'i64': np.arange(40) * 10**12, 'flag': np.arange(40) % 3 == 0,
                       'nullable': pd.array([1, None] * 20, dtype='Int64'), 'f64': np.linspace(0, 1, 40), 'y': 0.})
    conts = ['i8', 'i64', 'flag', 'nullable', 'f64']
    for reduce_memory in (True, False):
        to = make_to(df, proc, conts, reduce_memory=reduce_memory)
        assert all(to.items[c].dtype == np.float32 for c in conts)
        assert np.isfinite(to.items[conts].drop(columns='nullable').values).all()
        assert to.items['nullable'].isna().sum() == 20
        decoded = to.procs.decode(to.new(to.items.copy())).items
        np.testing.assert_allclose(decoded['i8'], df['i8'], rtol=1e-6)  # float32 encoded values: exact to float32 rounding
        np.testing.assert_allclose(decoded['flag'], df['flag'].astype(float))

def test_empty_training_split(small):
    with pytest.raises(ValueError, match='training split is empty'):
        make_to(small, RobustNormalize, ['a'], splits=[[], list(range(50))])

def test_missing_column_in_test_dl(small):
    to = make_to(small, RobustNormalize, ['a', 'b'])
    dls = to.dataloaders(bs=8)
    with pytest.raises(KeyError, match=r"continuous column\(s\) \['b'\] are missing"):
        dls.test_dl(small.drop(columns='b'))

def test_missing_column_with_fill_missing_still_named(small):
    "FillMissing runs before us and raises first; its KeyError still names the column (documented)"
    to = TabularPandas(small, procs=[FillMissing, RobustNormalize], cont_names=['a', 'b'], y_names='y')
    with pytest.raises(KeyError, match=r"'b'"):
        to.dataloaders(bs=8).test_dl(small.drop(columns='b'))

@pytest.mark.parametrize('make', [lambda: RobustNormalize(quantile_range=(75, 25)), lambda: RobustNormalize(quantile_range=(-1, 50)),
                                  lambda: RobustNormalize(quantile_range=(50, 50)), lambda: MinMaxNormalize(feature_range=(1, 0)),
                                  lambda: MinMaxNormalize(quantile_range=(0, 101))])
def test_bad_arguments(make):
    with pytest.raises(ValueError, match='quantile_range|feature_range'):
        make()


# ---- from_stats -----------------------------------------------------------------------------------------

def test_from_stats_does_not_refit(small):
    proc = RobustNormalize.from_stats({'a': 1., 'b': 2.}, {'a': 4., 'b': .5})
    to = make_to(small, proc, ['a', 'b'])
    assert proc.centers == {'a': 1., 'b': 2.} and proc.scales == {'a': 4., 'b': .5}
    np.testing.assert_allclose(to.conts['a'], (small['a'] - 1) / 4, rtol=1e-6)

def test_from_stats_checks(small):
    with pytest.raises(ValueError, match=r"has no statistics for columns \['b'\]"):
        make_to(small, MinMaxNormalize.from_stats({'a': 0.}, {'a': 1.}), ['a', 'b'])
    with pytest.raises(ValueError, match=r"scale of column 'a'"):
        RobustNormalize.from_stats({'a': 0.}, {'a': np.inf})
    with pytest.raises(ValueError, match=r"center of column 'a'"):
        RobustNormalize.from_stats({'a': np.nan}, {'a': 1.})
    with pytest.raises(ValueError, match=r"\['b'\]"):
        RobustNormalize.from_stats({'a': 0., 'b': 1.}, {'a': 1.})


# ---- round trips ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('proc', [RobustNormalize(unit_variance=True), MinMaxNormalize(feature_range=(-1, 1), clip=True)])
def test_export_load_learner_round_trip(tmp_path, proc):
    rng = np.random.default_rng(2)
    n = 600
    df = pd.DataFrame({'x1': rng.lognormal(3, 1, n), 'x2': rng.integers(0, 1000, n), 'cat': rng.choice(list('abc'), n)})
    df['y'] = np.log(df.x1) + df.x2 / 500 + (df.cat == 'b')
    to = TabularPandas(df, procs=[Categorify, FillMissing, proc], cat_names=['cat'], cont_names=['x1', 'x2'],
                       y_names='y', splits=RandomSplitter(seed=0)(df))
    learn = tabular_learner(to.dataloaders(bs=64), layers=[8], n_out=1)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    learn.export(tmp_path / 'model.pkl')
    loaded = load_learner(tmp_path / 'model.pkl')
    new = df.sample(50, random_state=1)
    dl_orig, dl_loaded = learn.dls.test_dl(new), loaded.dls.test_dl(new)
    pd.testing.assert_frame_equal(dl_orig.dataset.conts, dl_loaded.dataset.conts)
    with learn.no_bar(), loaded.no_bar():
        np.testing.assert_array_equal(learn.get_preds(dl=dl_orig)[0].numpy(), loaded.get_preds(dl=dl_loaded)[0].numpy())
    # `to.decode()` restores original units
    decoded = to.valid.new(to.valid.items.copy()).decode().items
    orig = df.loc[decoded.index]
    if proc.clip_range is None:
        np.testing.assert_allclose(decoded['x1'], orig['x1'], rtol=1e-5)
    np.testing.assert_allclose(decoded['x2'], orig['x2'].clip(df.loc[to.train.items.index, 'x2'].min(),
                                                             df.loc[to.train.items.index, 'x2'].max()), rtol=1e-5)

def test_show_batch_and_show_results_display_original_units(monkeypatch):
    import fastai.tabular.core as tabular_core, fastai_scaling.patches as our_core
    shown = []
    for module in (tabular_core, our_core): monkeypatch.setattr(module, 'display_df', shown.append)
    rng = np.random.default_rng(3)
    df = pd.DataFrame({'big': rng.normal(5000, 300, 300), 'small': rng.uniform(0, 1e-3, 300)})
    df['y'] = df.big / 1000 + df.small * 1000
    to = TabularPandas(df, procs=[RobustNormalize], cont_names=['big', 'small'], y_names='y', splits=RandomSplitter(seed=0)(df))
    learn = tabular_learner(to.dataloaders(bs=32), layers=[])
    learn.dls.show_batch(max_n=5)
    with learn.no_bar(): learn.show_results(max_n=5)
    assert len(shown) == 2
    for table in shown:
        assert table['big'].between(3500, 6500).all() and table['small'].between(0, 1e-3).all()

@pytest.mark.parametrize('proc', [RobustNormalize(quantile_range=(10, 90)), MinMaxNormalize(clip=True)])
def test_pickle_keeps_statistics(small, proc):
    make_to(small, proc, ['a', 'b'])
    again = pickle.loads(pickle.dumps(proc))
    assert again.centers == proc.centers and again.scales == proc.scales
    assert again.clip_range == proc.clip_range and again.name == proc.name

def test_proc_is_reachable_by_snake_case_name(small):
    to = TabularPandas(small, procs=[RobustNormalize(cols=['a']), MinMaxNormalize(cols=['b'])], cont_names=['a', 'b'], y_names='y')
    assert isinstance(to.procs.robust_normalize, RobustNormalize) and isinstance(to.procs.min_max_normalize, MinMaxNormalize)


# ---- properties -----------------------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
column = hnp.arrays(np.float32, st.integers(8, 60), elements=finite | st.just(np.nan))
PROCS = st.sampled_from([RobustNormalize, lambda: RobustNormalize(unit_variance=True), MinMaxNormalize,
                         lambda: MinMaxNormalize(feature_range=(-1, 1), quantile_range=(5, 95))])

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=column, make=PROCS)
def test_decode_inverts_encode(x, make):
    if np.isnan(x).all(): x[0] = 1.
    df = pd.DataFrame({'x': x, 'y': 0.})
    to = make_to(df, make(), ['x'])
    enc = to.items['x'].to_numpy()
    assert np.isfinite(enc[~np.isnan(x)]).all()                  # good data never turns into NaN/inf
    np.testing.assert_array_equal(np.isnan(enc), np.isnan(x))
    decoded = to.procs.decode(to.new(to.items.copy())).items['x'].to_numpy()
    p = proc_of(to)
    tol = 1e-5 * (abs(p.centers['x']) + abs(p.scales['x']) + np.nanmax(np.abs(x)))
    np.testing.assert_allclose(decoded, x, rtol=1e-5, atol=tol)

# ---- package ------------------------------------------------------------------------------------------

def test_version_matches_settings():
    cfg = configparser.ConfigParser(); cfg.read(ROOT / 'settings.ini')
    assert fastai_scaling.__version__ == cfg['DEFAULT']['version']

def test_star_import_of_all_brings_every_public_symbol():
    import importlib
    namespace = {}
    exec('from fastai_scaling.all import *', namespace)
    for mod in ('stats', 'sources', 'summaries', 'core', 'procs', 'drift', 'monitor', 'compare', 'loader', 'transforms', 'auto'):
        module = importlib.import_module(f'fastai_scaling.{mod}')
        assert module.__all__
        for name in module.__all__:
            if (mod, name) == ('compare', 'main'): assert 'main' not in namespace; continue
            assert namespace.get(name) is getattr(module, name), name


def test_large_frames_fit_on_threads_with_same_results_and_errors():
    "Past 2**20 cells the base fits columns on a thread pool: same statistics, and errors still name the column"
    rng = np.random.default_rng(4)
    X = rng.lognormal(0, 1, (60_000, 20)) * np.logspace(-2, 3, 20)
    df = pd.DataFrame(X, columns=[f'x{i}' for i in range(20)]).assign(y=0.)
    conts = [f'x{i}' for i in range(20)]
    to = make_to(df, RobustNormalize, conts)
    sk = RobustScaler().fit(df[conts].astype(np.float32))
    np.testing.assert_allclose([to.procs.robust_normalize.centers[c] for c in conts], sk.center_, rtol=1e-5)
    np.testing.assert_allclose([to.procs.robust_normalize.scales[c] for c in conts], sk.scale_, rtol=1e-5)
    df.loc[123, 'x13'] = np.inf
    with pytest.raises(ValueError, match=r"column 'x13' contains 1 infinite"):
        make_to(df, RobustNormalize, conts)


# ---- zero spread that is not a constant column (issue 18.4) -------------------------------------------------

# values within 44 orders of magnitude of each other: a spread of 1e-38 next to a value of 4 is real but encodes the 4
# beyond float32, which is an error of its own (`test_values_beyond_float32_after_scaling_are_errors_not_inf`)
_VALUE = st.floats(-1e6, 1e6, width=32).filter(lambda v: v == 0 or abs(v) > 1e-20)

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_ties=st.integers(1, 400), others=hnp.arrays(np.float64, st.integers(1, 12), elements=_VALUE),
       tie=_VALUE.filter(lambda v: abs(v) <= 1e3), unit_variance=st.booleans())
def test_robust_scale_is_one_only_for_constant_columns(n_ties, others, tie, unit_variance):
    x = np.r_[np.full(n_ties, tie), others]
    # leave out spreads within rounding of zero (e.g. 0 and a subnormal): the shared zero-spread rule calls those constant
    assume(np.ptp(x) == 0 or np.ptp(x) > 1e-6 * max(1., np.abs(x).max()))
    df = pd.DataFrame({'a': x, 'y': 0.})
    for proc in (RobustNormalize(unit_variance=unit_variance), MinMaxNormalize(quantile_range=(25, 75))):
        p = proc_of(make_to(df, proc, ['a'], reduce_memory=False))
        rule, scale = p.spread_rules['a'], p.scales['a']
        distinct = np.unique(x)
        if len(distinct) == 1:
            assert rule == 'constant: scale 1'
            continue
        assert rule != 'constant: scale 1'
        if 'are equal' in rule:      # a fallback: its spread is the difference of two values of the column, never an interpolation
            gap = np.diff(distinct).min()
            width = 1.
            if isinstance(proc, RobustNormalize) and unit_variance and rule.startswith('percentiles'):
                lo, hi = map(float, rule.split()[1].rstrip(':').split('-'))
                width = float(np.diff(norm.ppf([lo / 100, hi / 100]))[0])
            if rule.startswith('half the range'): width = 2.
            assert abs(scale) * width >= gap * (1 - 1e-9), (rule, scale, gap)
            assert abs(scale) * width <= np.ptp(x) * (1 + 1e-9)

def test_minmax_quantile_range_falls_back_like_robust():
    x = np.r_[np.zeros(900), np.linspace(10, 1000, 100)]    # 0 on 90%: the 25th and 75th percentiles are both 0
    df = pd.DataFrame({'a': x, 'y': 0.})
    p = proc_of(make_to(df, MinMaxNormalize(quantile_range=(25, 75)), ['a'], reduce_memory=False))
    # the 10th percentile is 0, the 90th is the 900th smallest value (numpy's inverted_cdf), the last zero: so 5-95
    assert p.spread_rules['a'] == 'percentiles 5-95: the 25-75 percentiles are equal'
    assert p.centers['a'] == 0. and p.scales['a'] == np.sort(x)[949]
