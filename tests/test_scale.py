"""Tests for `from_data` (the engine `fastai_scaling.summaries` and every family's `summary_fit`) on every scaler and every
source kind (frame, chunks, generator, callable, parquet, Dask), exactness against the in-memory `TabularPandas` fit, KLL error bounds, bad input, lazy imports, DDP"""
import os, pickle, socket, subprocess, sys, textwrap, warnings
import numpy as np, pandas as pd, pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from fastai.tabular.all import TabularPandas
from fastai_scaling import summaries
from fastai_scaling.sources import ChunkSource
from fastai_scaling.summaries import _Col1, Needs
from fastai_scaling.stats import rank_error_bound, Sketch
from fastai_scaling.procs import RobustNormalize, MinMaxNormalize, StandardNormalize
from fastai_scaling.drift import DriftNormalize
from fastai_scaling.transforms import QuantileNormalize, PowerNormalize
from fastai_scaling.squash import SquashNormalize
from fastai_scaling.auto import AutoNormalize, suggest_scalers, mixed_table
from scalers import SCALERS, FRAME

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
dd = pytest.importorskip('dask.dataframe')
import dask, datasketches, pyarrow as pa, pyarrow.parquet as pq

NAMES = ['a', 'b', 'c']


def make_df(n, seed=0, nan=0.1):
    "A large-offset normal (precision), a float32 log-normal (skew, float32), a tied integer column; NaN sprinkled in"
    r = np.random.default_rng(seed)
    df = pd.DataFrame({'a': 1e4 + r.normal(0, 0.01, n), 'b': r.lognormal(0, 1, n).astype(np.float32),
                       'c': r.integers(0, 5, n).astype(np.float64)})
    for c in NAMES: df.loc[r.random(n) < nan, c] = np.nan
    df['y'] = r.normal(size=n)
    return df


def in_memory(cls, df, names=NAMES, **kwargs):
    "The proc `TabularPandas` fits on all rows of `df` (float64 kept as is)"
    to = TabularPandas(df, procs=[cls(**kwargs)], cont_names=names, y_names='y', splits=[list(range(len(df))), []], reduce_memory=False)
    return next(p for p in to.procs if isinstance(p, cls))


def assert_state(a, b, names=NAMES, rtol=0.):
    "Same fitted state; rtol=0: bit for bit"
    assert a.state_names == b.state_names
    for attr in a.state_names:
        for n in names:
            x, y = np.asarray(getattr(a, attr)[n]), np.asarray(getattr(b, attr)[n])
            if rtol: np.testing.assert_allclose(x, y, rtol=rtol, atol=0, err_msg=f'{attr}[{n}]')
            else: np.testing.assert_array_equal(x, y, err_msg=f'{attr}[{n}]')


def chunks_of(df, cuts):
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(df))), len(df)]
    return [df.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def source(kind, df, cuts, tmp):
    "`df` as a source of `kind`, cut into chunks at `cuts`"
    parts = chunks_of(df, cuts)
    if kind == 'frame': return df
    if kind == 'list': return parts
    if kind == 'generator': return (p for p in parts)
    if kind == 'callable': return lambda: iter(parts)
    if kind == 'parquet':
        os.makedirs(tmp, exist_ok=True)
        for i, p in enumerate(parts): p.to_parquet(os.path.join(tmp, f'part-{i:04d}.parquet'), index=False)
        return tmp
    if kind == 'dask': return dd.from_delayed([dask.delayed(p) for p in parts], meta=df.iloc[:0], verify_meta=False)
    raise ValueError(kind)


KINDS = ['frame', 'list', 'generator', 'callable', 'parquet', 'dask']

# ---------------------------------------------------------------- sources

def test_chunk_source_kinds_and_labels(tmp_path):
    df = make_df(100)
    labels = lambda src: src.map_reduce(lambda c, label, i: [(label, i, len(c))], lambda a, b: a + b)
    assert labels(ChunkSource(df, batch_size=60)) == [('rows 0:60', 0, 60), ('rows 60:100', 1, 40)]
    assert labels(ChunkSource(source('list', df, [30], None), NAMES)) == [('chunk 0', 0, 30), ('chunk 1', 1, 70)]
    assert [l[2] for l in labels(ChunkSource(source('parquet', df, [30], str(tmp_path)), NAMES))] == [30, 70]
    assert labels(ChunkSource(source('dask', df, [30], None), NAMES)) == [('partition 0', 0, 30), ('partition 1', 1, 70)]
    assert ChunkSource(df).names == NAMES + ['y']
    assert ChunkSource(str(tmp_path)).names == NAMES + ['y']         # from the parquet schema
    assert ChunkSource(str(tmp_path / '*.parquet'), ['a']).names == ['a']
    assert not ChunkSource(iter([df])).reiterable and ChunkSource([df]).reiterable and ChunkSource(lambda: [df]).reiterable
    # without names, the first chunk's numeric columns; the chunk is read again (re-iterable) or kept (one-shot), never twice
    for src in ([df.iloc[:30], df.iloc[30:]], lambda: iter([df.iloc[:30], df.iloc[30:]]), iter([df.iloc[:30], df.iloc[30:]])):
        assert labels(ChunkSource(src)) == [('chunk 0', 0, 30), ('chunk 1', 1, 70)]


def test_parquet_is_read_in_batches_of_the_needed_columns(tmp_path):
    df = make_df(1000)
    df.to_parquet(tmp_path / 'one.parquet', index=False, row_group_size=100)
    src = ChunkSource(str(tmp_path / 'one.parquet'), ['a', 'c'], batch_size=250)
    seen = src.map_reduce(lambda c, label, i: [(len(c), list(c.columns))], lambda a, b: a + b)
    assert len(seen) >= 4 and all(rows <= 250 and cols == ['a', 'c'] for rows, cols in seen)
    assert sum(rows for rows, _ in seen) == 1000


# ---------------------------------------------------------------- exactness: moments, min/max, counts, exact quantiles

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 300), cuts=st.lists(st.integers(0, 300), max_size=6), seed=st.integers(0, 10_000),
       nan=st.sampled_from([0., .3]), kind=st.sampled_from(KINDS))
def test_random_chunkings_equal_in_memory_fit(tmp_path_factory, n, cuts, seed, nan, kind):
    df = make_df(n, seed, nan)
    names = [c for c in NAMES if df[c].notna().any()]
    if not names: return
    tmp = str(tmp_path_factory.mktemp('pq'))
    src = lambda: source(kind, df, cuts, tmp)
    kw = dict(batch_size=max(1, min(cuts or [n]))) if kind == 'frame' else {}
    # mean/std (ddof=0) to 1e-9 relative, min/max and counts exactly
    assert_state(StandardNormalize.from_data(src(), names, **kw), in_memory(StandardNormalize, df, names), names, rtol=1e-9)
    assert_state(MinMaxNormalize.from_data(src(), names, **kw), in_memory(MinMaxNormalize, df, names), names)
    drift = DriftNormalize.from_data(src(), names, **kw) if kind != 'generator' else None
    if drift is not None:
        assert_state(drift, in_memory(DriftNormalize, df, names), names, rtol=1e-9)
        assert drift.source_reference['count'] == {c: float(df[c].notna().sum()) for c in names}
    # exact quantiles: bit for bit (two passes: not from a generator)
    if kind != 'generator':
        assert_state(RobustNormalize.from_data(src(), names, quantile_range=(10, 90), **kw),
                     in_memory(RobustNormalize, df, names, quantile_range=(10, 90)), names)
        assert_state(QuantileNormalize.from_data(src(), names, n_quantiles=50, **kw), in_memory(QuantileNormalize, df, names, n_quantiles=50), names)
        assert_state(SquashNormalize.from_data(src(), names, **kw), in_memory(SquashNormalize, df, names), names)


@pytest.mark.parametrize('kind', ['list', 'parquet', 'dask'])
def test_exact_quantiles_on_a_large_skewed_tied_column(tmp_path, kind):
    "Large enough that the guide sketch estimates (n >> k): the second pass must still give numpy's result bit for bit"
    r = np.random.default_rng(3)
    n = 300_000
    df = pd.DataFrame({'skew': r.lognormal(0, 2, n), 'tied': r.integers(0, 3, n).astype(np.float32),
                       'f32': r.normal(0, 1, n).astype(np.float32), 'y': 0.})
    names = ['skew', 'tied', 'f32']
    src = source(kind, df, list(range(0, n, 37_000)), str(tmp_path))
    for cls, kw in [(RobustNormalize, {}), (RobustNormalize, dict(quantile_range=(1, 99), unit_variance=True)),
                    (MinMaxNormalize, dict(quantile_range=(0.5, 99.5), feature_range=(-1, 1))), (SquashNormalize, {})]:
        assert_state(cls.from_data(src, names, **kw), in_memory(cls, df, names, **kw), names)
    assert_state(QuantileNormalize.from_data(src, names, subsample=20_000, noise=1e-3),
                 in_memory(QuantileNormalize, df, names, subsample=20_000, noise=1e-3), names)   # the in-memory subsample, noise and all


def test_a_bracket_that_misses_is_repaired_with_a_warning(monkeypatch):
    r = np.random.default_rng(4)
    df = pd.DataFrame({'a': r.normal(size=200_000), 'y': 0.})
    orig = summaries._brackets
    monkeypatch.setattr(summaries, '_brackets', lambda c1, t, widen=1.: orig(c1, t, 0. if widen == 1. else widen))   # zero-width first brackets
    with pytest.warns(UserWarning, match="missed order statistic"):
        proc = RobustNormalize.from_data([df.iloc[:90_000], df.iloc[90_000:]], ['a'])
    assert_state(proc, in_memory(RobustNormalize, df, ['a']), ['a'])


# every scaler variant of the package: from_data (exact) on chunks equals TabularPandas' fit
VARIANTS = [(StandardNormalize, {}), (RobustNormalize, {}), (RobustNormalize, dict(unit_variance=True)),
            (RobustNormalize, dict(with_centering=False, quantile_range=(5, 95))), (MinMaxNormalize, {}),
            (MinMaxNormalize, dict(feature_range=(-1, 1), clip=True, quantile_range=(1, 99))), (DriftNormalize, {}),
            (DriftNormalize, dict(strategy='window', window=50)), (QuantileNormalize, {}),
            (QuantileNormalize, dict(n_quantiles=100, output_distribution='uniform', noise=1e-3)), (PowerNormalize, {}),
            (PowerNormalize, dict(standardize=False, cols=['b', 'c'])), (PowerNormalize, dict(method='box-cox', cols=['b'])),
            (SquashNormalize, {}), (SquashNormalize, dict(quantile_range=(10, 90), max_absolute_value=2., cols=['b', 'c']))]

@pytest.mark.parametrize('cls,kw', VARIANTS, ids=[f'{c.__name__}{k}' for c, k in VARIANTS])
def test_every_scaler_from_data_equals_in_memory(cls, kw):
    df = make_df(3000, seed=5)
    chunks = chunks_of(df, [700, 1400, 2999])
    names = kw.get('cols', NAMES)
    proc = cls.from_data(chunks, NAMES, **kw)
    assert isinstance(proc, cls) and proc.preset
    rtol = 1e-9 if cls in (StandardNormalize, DriftNormalize) else 0.
    assert_state(proc, in_memory(cls, df, names, **kw), names, rtol=rtol)


@pytest.mark.parametrize('cls,kw', VARIANTS[:9], ids=[f'{c.__name__}{k}' for c, k in VARIANTS[:9]])
def test_tabular_pandas_uses_the_statistics_without_refitting(cls, kw):
    df = make_df(2000, seed=6)
    proc = cls.from_data([df.iloc[:1000], df.iloc[1000:]], NAMES, **kw)
    before = {a: dict(getattr(proc, a)) for a in proc.state_names}
    to = TabularPandas(df.iloc[:50], procs=[proc], cont_names=NAMES, y_names='y', reduce_memory=False)
    assert all(getattr(proc, a) == before[a] for a in proc.state_names)
    mem = in_memory(cls, df, NAMES, **kw)
    test = mem.encodes(TabularPandas(df.iloc[:50].copy(), procs=[], cont_names=NAMES, y_names='y', reduce_memory=False))
    np.testing.assert_allclose(to.conts.values, test.conts.values, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- KLL sketches: the documented rank error

def rank_ok(x_sorted, v, p, eps):
    "Whether value `v` has a rank (any rank of its ties) within `eps` of the fraction `p`"
    n = len(x_sorted)
    lo, hi = np.searchsorted(x_sorted, v, 'left') / n, np.searchsorted(x_sorted, v, 'right') / n
    return lo - eps <= p <= hi + eps


@pytest.mark.parametrize('k', [200, 400])
def test_sketched_quantiles_within_the_rank_error_bound(k):
    r = np.random.default_rng(7)
    n = 200_000
    df = pd.DataFrame({'skew': r.lognormal(0, 2, n), 'tied': r.integers(0, 5, n).astype(float), 'pareto': r.pareto(1.2, n), 'y': 0.})
    names = ['skew', 'tied', 'pareto']
    chunks = chunks_of(df, range(0, n, 25_000))
    eps = rank_error_bound(k, n)
    assert eps > datasketches.kll_doubles_sketch.get_normalized_rank_error(k, False)   # 200,000 values: decimated, the bound says so
    mm = MinMaxNormalize.from_data(chunks, names, exact=False, k=k, quantile_range=(5, 95))
    rb = RobustNormalize.from_data(chunks, names, exact=False, k=k)
    qn = QuantileNormalize.from_data(chunks, names, exact=False, k=k, n_quantiles=101)
    for c in names:
        s = np.sort(df[c].to_numpy())
        low, high = mm.centers[c], mm.centers[c] + mm.scales[c]          # feature_range (0, 1): center = low, scale = high - low
        assert rank_ok(s, low, .05, eps + 1 / n) and rank_ok(s, high, .95, eps + 1 / n), c
        assert rank_ok(s, rb.centers[c], .5, eps + 1 / n), c
        q = qn.quantiles[c]
        assert all(rank_ok(s, v, p, eps + 1 / n) for v, p in zip(q, np.linspace(0, 1, 101))), c
        assert q[0] == s[0] and q[-1] == s[-1]                           # the ends are exact


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(['skew', 'tied', 'sorted', 'reversed', 'sawtooth']), n=st.integers(1, 400_000),
       cuts=st.lists(st.integers(0, 400_000), max_size=12), seed=st.integers(0, 2**16))
def test_decimation_adds_at_most_its_bound(kind, n, cuts, seed):
    "With k so large that KLL keeps every value it is given, the rank error left is the decimation's: within its bound"
    r = np.random.default_rng(seed)
    x = {'skew': lambda: r.lognormal(0, 2, n), 'tied': lambda: r.integers(0, 7, n).astype(float),
         'sorted': lambda: np.sort(r.normal(size=n)), 'reversed': lambda: np.sort(r.normal(size=n))[::-1].copy(),
         'sawtooth': lambda: np.arange(n) % 977.}[kind]()
    parts = np.split(x, sorted(c for c in cuts if c < n))
    sk = Sketch(65535, parts[0])
    for p in parts[1:]: sk.merge(Sketch(65535, p))
    assert sk.n == n and sk.extremes() == (x.min(), x.max())
    bound = sk.decimation_error()
    assert bound <= rank_error_bound(65535, n) - rank_error_bound(65535, 1) + 1e-15     # the documented bound holds
    if n < 65536: assert bound == 0 and sk.flushes == 0                                  # short columns: every value sketched
    xs, p = np.sort(x), np.linspace(0, 1, 41)
    assert all(rank_ok(xs, v, q, bound + 1 / n) for v, q in zip(sk.quantiles(p), p))


# ---------------------------------------------------------------- PowerNormalize and AutoNormalize

def test_power_lambda_from_a_sample_then_exact_moments():
    df = make_df(20_000, seed=8, nan=0.).assign(e=lambda d: np.random.default_rng(8).exponential(3, len(d)))
    names = NAMES + ['e']
    p = PowerNormalize.from_data(chunks_of(df, [5000, 12000]), names, fit_sample=4000)
    mem = in_memory(PowerNormalize, df, names)
    for c in names:
        x = df[c].to_numpy().astype(np.float64)
        y = p._forward(x, p.lambdas[c])
        np.testing.assert_allclose([p.means[c], p.stds[c]], [y.mean(), y.std()], rtol=1e-9)   # exact, given the lambda
    # the sampled lambda is near the full MLE on well-conditioned columns (standard error ~ 1/sqrt(4000) here); the
    # offset column 'a' (1e4 + noise 0.01) is ill-conditioned: its likelihood is flat, and the fallback decides
    for c in ['b', 'c', 'e']: assert abs(p.lambdas[c] - mem.lambdas[c]) < 0.1, (c, p.lambdas[c], mem.lambdas[c])
    mem = in_memory(PowerNormalize, df)
    # the sample holds the whole column: the in-memory fit, bit for bit, in one pass
    reads = []
    src = lambda: (reads.append(1), iter(chunks_of(df, [5000])))[1]
    assert_state(PowerNormalize.from_data(src, NAMES, fit_sample=20_000), mem)
    assert len(reads) == 1
    PowerNormalize.from_data(src, NAMES, fit_sample=4000)
    assert len(reads) == 3                 # a sample of the column: two passes


def test_power_box_cox_checks_the_full_minimum():
    df = pd.DataFrame({'p': np.r_[np.linspace(1, 2, 9999), -1.], 'y': 0.})
    with pytest.raises(ValueError, match=r"column 'p': method='box-cox' needs strictly positive"):
        PowerNormalize.from_data([df.iloc[:5000], df.iloc[5000:]], ['p'], method='box-cox', fit_sample=100)


@pytest.mark.parametrize('kind', ['list', 'parquet', 'dask'])
def test_auto_normalize_from_data(tmp_path, kind):
    mixed = mixed_table(2000)
    conts = ['flag', 'price', 'pct', 'temp', 'visits']
    src = source(kind, mixed, [500, 1300], str(tmp_path))
    auto = AutoNormalize.from_data(src, conts)
    mem_choices = suggest_scalers(mixed, conts)
    pd.testing.assert_frame_equal(auto.choices.drop(columns=['mean', 'std', 'skewness', 'kurtosis']),
                                  mem_choices.drop(columns=['mean', 'std', 'skewness', 'kurtosis']))
    to = TabularPandas(mixed.iloc[:100], procs=[auto], cont_names=conts, y_names='y', reduce_memory=False)
    mem = in_memory(AutoNormalize, mixed, conts)
    for c in conts:
        ours, theirs = to.procs.auto_normalize.scaler_of(c), mem.scaler_of(c)
        assert type(ours) is type(theirs)
        assert_state(ours, theirs, [c], rtol=1e-9)
    # a sample smaller than the column: exact summaries, quartile statistics from the sample, same advice here
    small = AutoNormalize.from_data(src, conts, fit_sample=500)
    assert (small.choices['scaler'] == mem_choices['scaler']).all()
    for col in ['n', 'min', 'max', 'n_unique', 'integer', 'binary', 'constant']:
        assert small.choices[col].tolist() == mem_choices[col].tolist(), col
    for col in ['mean', 'std', 'skewness', 'kurtosis', 'missing_share']:
        np.testing.assert_allclose(small.choices[col], mem_choices[col], rtol=1e-9, atol=1e-12, err_msg=col)


# ---------------------------------------------------------------- statistics of more columns than the data's cont_names

def plain_df(n, seed):
    "`make_df` with 'a' on a unit scale: every scaler can fit every column (unstandardized powers of 1e4 overflow float32)"
    df = make_df(n, seed=seed)
    df['a'] = (df['a'] - 1e4) * 100
    return df

def options(name):
    "(class, keyword options) of the proc `SCALERS[name]` makes: its factory, called with a recorder in the class's place"
    make = SCALERS[name]
    cls, space = type(make()), make.__globals__
    space[cls.__name__] = lambda **kw: kw
    try: return cls, make()
    finally: space[cls.__name__] = cls

@pytest.mark.parametrize('name', FRAME)   # it compares encoded frames (PiecewiseLinearEncode's from_data: tests/test_encode.py)
def test_every_scaler_fitted_on_every_numeric_column_scales_fewer_cont_names(name):
    "`from_data(df)` fits every numeric column, the target included; a TabularPandas with fewer cont_names uses only theirs"
    cls, kw = options(name)
    df = plain_df(600, seed=20)
    proc = cls.from_data(df, **kw)
    assert proc.fitted_columns() == ['a', 'b', 'c', 'y']
    to = TabularPandas(df, procs=[proc], cont_names=['b', 'c'], y_names='y', reduce_memory=False)
    # the in-memory fit of the same columns (a published recipe draws its noise over all of them), read on b and c
    mem = TabularPandas(df.assign(t=0.), procs=[SCALERS[name]()], cont_names=['a', 'b', 'c', 'y'], y_names='t', reduce_memory=False)
    np.testing.assert_allclose(to.items[['b', 'c']], mem.items[['b', 'c']], rtol=1e-6, atol=1e-6)
    pd.testing.assert_series_equal(to.items['a'], df['a'])                  # fitted, but not a continuous column here: untouched
    pd.testing.assert_series_equal(to.items['y'], df['y'])                  # nor the target
    with pytest.raises(ValueError, match=r"has no statistics for columns \['z'\]"):   # a column it was not fitted on: named
        TabularPandas(df.assign(z=1.), procs=[cls.from_data(df, ['a', 'b'], **kw)], cont_names=['a', 'z'], y_names='y')

@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('cls', [AutoNormalize, StandardNormalize, RobustNormalize])
def test_every_source_kind_fitted_on_every_numeric_column_scales_fewer_cont_names(tmp_path, kind, cls):
    df = plain_df(800, seed=21)
    src = source(kind, df, [300, 550], str(tmp_path))
    kw = dict(warn=False) if cls is AutoNormalize else {}
    if kind == 'generator' and cls is not StandardNormalize:   # these read twice: a one-shot source is refused, as documented
        with pytest.raises(ValueError, match='can be read only once'): cls.from_data(src, **kw)
        return
    proc = cls.from_data(src, **kw)
    assert proc.fitted_columns() == ['a', 'b', 'c', 'y']
    to = TabularPandas(df, procs=[proc], cont_names=['b', 'c'], y_names='y', reduce_memory=False)
    mem = TabularPandas(df, procs=[cls(**kw)], cont_names=['b', 'c'], y_names='y', reduce_memory=False)
    np.testing.assert_allclose(to.items[['b', 'c']], mem.items[['b', 'c']], rtol=1e-6, atol=1e-6)
    if cls is AutoNormalize:
        auto, mem_auto = to.procs.auto_normalize, mem.procs.auto_normalize
        assert auto.choices.index.tolist() == ['b', 'c']                    # only the columns it scales
        assert auto.choices['scaler'].tolist() == mem_auto.choices['scaler'].tolist()
        assert sorted(c for p in auto.scalers.values() for c in p.cols) == ['b', 'c']
        assert proc.source_choices.index.tolist() == ['a', 'b', 'c', 'y']   # the source's advice stays whole

def test_auto_from_data_set_up_on_other_columns_and_its_own_cols():
    df = plain_df(500, seed=22)
    auto = AutoNormalize.from_data(df, warn=False)
    TabularPandas(df, procs=[auto], cont_names=['b'], y_names='y')
    assert auto.choices.index.tolist() == ['b']
    to = TabularPandas(df, procs=[auto], cont_names=['a', 'b', 'c'], y_names='y', reduce_memory=False)   # set up again: all three
    assert auto.choices.index.tolist() == ['a', 'b', 'c']
    picked = auto.choices['scaler']
    for c in 'abc':   # one fitted scaler per advice, on exactly the columns that got it
        assert auto.scaler_of(c).fitted_columns() == [k for k in 'abc' if picked[k] == picked[c]]
    assert picked.nunique() > 1, picked   # the data has columns of two kinds (a and c near-normal, b skewed)
    np.testing.assert_allclose(to.items['c'], auto.scaler_of('c').encode_column('c', df['c'].to_numpy()).astype(np.float32))
    # its own `cols` must still all be continuous columns of the data
    with pytest.raises(ValueError, match=r"AutoNormalize\(cols=...\): \['c'\] are not continuous columns"):
        TabularPandas(df, procs=[AutoNormalize.from_data(df, cols=['a', 'c'], warn=False)], cont_names=['a', 'b'], y_names='y')


# ---------------------------------------------------------------- DriftNormalize: the reference of the whole source

def test_drift_reference_from_the_source():
    df = make_df(4000, seed=9)
    proc = DriftNormalize.from_data(chunks_of(df, [1000, 2500]), NAMES, sample_size=5000)
    to = TabularPandas(df.iloc[:100], procs=[proc], cont_names=NAMES, y_names='y', reduce_memory=False)
    ours, mem = to.procs.drift_normalize, in_memory(DriftNormalize, df, sample_size=5000)
    for c in NAMES:
        np.testing.assert_array_equal(ours.bin_edges[c], mem.bin_edges[c])
        np.testing.assert_array_equal(ours.ref_fracs[c], mem.ref_fracs[c])
        np.testing.assert_array_equal(ours.ref_sample[c], mem.ref_sample[c])    # <= sample_size values: all of them
    np.testing.assert_allclose(ours.ref_state['count'], mem.ref_state['count'])
    new = make_df(3000, seed=10)
    a, b = ours.drift_scores(new), mem.drift_scores(new)
    pd.testing.assert_frame_equal(a[['psi', 'ks', 'n', 'nan_frac']], b[['psi', 'ks', 'n', 'nan_frac']])
    # the centers agree to 1e-9 relative; |mean - center| / scale cancels for column 'a' (1e4 + noise of 0.01), so compare
    # on the scale of center / scale
    np.testing.assert_allclose(a['mean_shift'], b['mean_shift'], rtol=0, atol=1e-9 * 1e4 / 0.01)
    # sketched: edges and shares from the sketch, each cumulative share within the sketch's rank error of the truth
    big = make_df(100_000, seed=19)
    sk = DriftNormalize.from_data(chunks_of(big, range(0, 100_000, 30_000)), NAMES, exact=False)
    eps = rank_error_bound(200, 100_000, cdf=True)      # get_cdf's documented (double-sided) bound, plus decimation's
    for c in NAMES:
        fr, edges, x = sk.source_reference['ref_fracs'][c], sk.source_reference['bin_edges'][c], big[c].dropna().to_numpy()
        assert abs(fr.sum() - 1) < 1e-12 and (fr >= 0).all()
        truth = np.array([(x <= e).mean() for e in edges])
        assert (np.abs(np.cumsum(fr)[:-1] - truth) <= eps + 1 / len(x)).all(), c


def test_drift_window_reference_is_the_last_values():
    df = make_df(1000, seed=11)
    proc = DriftNormalize.from_data(chunks_of(df, [300, 650]), NAMES, strategy='window', window=120)
    for c in NAMES: np.testing.assert_array_equal(proc.source_reference['tail'][c], df[c].dropna().to_numpy()[-120:])


# ---------------------------------------------------------------- bad input: named column and chunk, nothing half-fitted

def bad_chunks(**change):
    parts = chunks_of(make_df(300, seed=12), [100, 200])
    for i, f in change.items(): parts[int(i[1:])] = f(parts[int(i[1:])].copy())
    return parts

@pytest.mark.parametrize('cls', [StandardNormalize, RobustNormalize, QuantileNormalize, PowerNormalize, DriftNormalize, AutoNormalize])
@pytest.mark.parametrize('make,exc,match', [
    (lambda: bad_chunks(c2=lambda d: d.drop(columns='b')), KeyError, r"chunk 2: column\(s\) \['b'\] are missing"),
    (lambda: bad_chunks(c1=lambda d: d.assign(c='x')), TypeError, r"chunk 1: Continuous column 'c' holds .* not numbers"),
    (lambda: bad_chunks(c2=lambda d: d.assign(a=np.where(np.arange(len(d)) == 5, np.inf, d['a']))), ValueError,
     r"chunk 2: column 'a' contains 1 infinite"),
    (lambda: [], ValueError, 'the source has no rows'),
    (lambda: [make_df(10).iloc[:0]], ValueError, 'the source has no rows'),
    (lambda: bad_chunks(c0=lambda d: d.assign(b=np.nan), c1=lambda d: d.assign(b=np.nan), c2=lambda d: d.assign(b=np.nan)),
     ValueError, r"column\(s\) \['b'\] have no non-missing values"),
    (lambda: [make_df(10), np.zeros((3, 3))], TypeError, 'chunk 1 is a ndarray, not a pandas DataFrame'),
])
def test_bad_input_names_column_and_chunk(cls, make, exc, match):
    with pytest.raises(exc, match=match): cls.from_data(make(), NAMES)


def test_bad_input_in_parquet_and_dask(tmp_path):
    df = make_df(300, seed=13)
    df.iloc[:150].to_parquet(tmp_path / 'p0.parquet', index=False)
    df.iloc[150:].drop(columns='b').to_parquet(tmp_path / 'p1.parquet', index=False)
    with pytest.raises(KeyError, match=r"p1.parquet: column\(s\) \['b'\] are missing"): StandardNormalize.from_data(str(tmp_path), NAMES)
    with pytest.raises(KeyError, match=r"column\(s\) \['zz'\] are missing"): StandardNormalize.from_data(str(tmp_path), ['a', 'zz'])
    with pytest.raises(FileNotFoundError, match='no parquet file'): StandardNormalize.from_data(str(tmp_path / 'none*.parquet'), NAMES)
    bad = df.copy(); bad.loc[250, 'a'] = np.inf
    with pytest.raises(ValueError, match=r"partition 2: column 'a' contains 1 infinite"):
        RobustNormalize.from_data(dd.from_pandas(bad, npartitions=3, sort=False), NAMES)
    with pytest.raises(KeyError, match=r"\['zz'\] are missing from the dask source"):
        RobustNormalize.from_data(dd.from_pandas(df, npartitions=3), ['zz'])


def test_options_are_checked_before_reading():
    def never():
        raise AssertionError('the source was read')
        yield
    for call, match in [(lambda: RobustNormalize.from_data(never(), NAMES, quantile_range=(90, 10)), 'quantile_range'),
                        (lambda: StandardNormalize.from_data(never(), NAMES, k=3), 'k=3'),
                        (lambda: StandardNormalize.from_data(never(), NAMES, exact='yes'), 'exact must be'),
                        (lambda: RobustNormalize.from_data(never(), NAMES, batch_size=0), 'batch_size')]:
        with pytest.raises((ValueError, TypeError), match=match): call()


def test_one_shot_sources_and_two_passes():
    df = make_df(500, seed=14)
    gen = lambda: (c for c in chunks_of(df, [200]))
    with pytest.raises(ValueError, match='can be read only once'): RobustNormalize.from_data(gen(), NAMES)
    with pytest.raises(ValueError, match='can be read only once'): PowerNormalize.from_data(gen(), NAMES)
    assert RobustNormalize.from_data(gen(), NAMES, exact=False).preset                     # one pass: fine
    assert_state(StandardNormalize.from_data(gen(), NAMES), in_memory(StandardNormalize, df), rtol=1e-9)
    assert_state(RobustNormalize.from_data(gen, NAMES), in_memory(RobustNormalize, df))     # a function returning iterators: fine


def test_a_source_that_changes_between_passes_is_an_error():
    df = make_df(500, seed=15)
    calls = []
    def unstable():
        calls.append(1)
        return iter(chunks_of(df if len(calls) == 1 else df.iloc[:-10], [200]))
    with pytest.raises(RuntimeError, match='the source must yield the same chunks'): RobustNormalize.from_data(unstable, NAMES)


@pytest.mark.parametrize('n', [5000, 200_000])   # values still waiting to be sketched, and decimated runs
def test_summaries_pickle_with_their_sketch(n):
    x = np.random.default_rng(0).normal(size=n)
    c = _Col1(x, 0, 0, Needs(k=200, sample=100))
    q = c.sketch.quantiles([.1, .5, .9])             # sketches what waits: KLL's compactions are random, so compare after
    back = pickle.loads(pickle.dumps(c))
    assert back.sketch.n == n and back.sketch.flushes == c.sketch.flushes
    np.testing.assert_array_equal(back.sketch.quantiles([.1, .5, .9]), q)
    assert back.sketch.extremes() == (x.min(), x.max())
    np.testing.assert_array_equal(back.sample.values, c.sample.values)
    more = pickle.loads(pickle.dumps(_Col1(x[:1000], 1, 0, Needs(k=200, sample=100))))
    assert back.merge(more).sketch.n == n + 1000      # a pickled summary still merges


def test_distributed_client():
    "Summaries computed by Dask worker processes through a distributed Client (pickled between processes)"
    distributed = pytest.importorskip('distributed')
    df = make_df(5000, seed=16)
    ddf = dd.from_pandas(df, npartitions=4)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
         distributed.Client(cluster):
        robust = RobustNormalize.from_data(ddf, NAMES)
        power = PowerNormalize.from_data(ddf, NAMES, fit_sample=1000)
        drift = DriftNormalize(strategy='cumulative')
        to = TabularPandas(df, procs=[drift], cont_names=NAMES, y_names='y', reduce_memory=False)
        scores = to.procs.drift_normalize.drift_scores(dd.from_pandas(make_df(3000, seed=17), npartitions=3))
    assert_state(robust, in_memory(RobustNormalize, df))
    assert np.isfinite(list(power.means.values())).all()
    pd.testing.assert_series_equal(scores['psi'], to.procs.drift_normalize.drift_scores(make_df(3000, seed=17))['psi'])


# ---------------------------------------------------------------- the extra: lazy imports

def test_works_without_the_scale_extra():
    "Without dask, pyarrow and datasketches: the package imports, exact moment fits work, sketches say how to install"
    code = textwrap.dedent("""
        import sys
        for m in ('dask', 'distributed', 'pyarrow', 'datasketches'): sys.modules[m] = None
        import warnings; warnings.simplefilter('ignore')
        import numpy as np, pandas as pd
        import fastai_scaling.all
        from fastai_scaling.procs import StandardNormalize, RobustNormalize
        df = pd.DataFrame({'a': np.arange(10.)})
        print(StandardNormalize.from_data([df.iloc[:4], df.iloc[4:]], ['a']).centers)
        try: RobustNormalize.from_data(df, ['a'])
        except ImportError as e: print('ImportError:', e)
        try: RobustNormalize.from_data('x.parquet', ['a'])
        except ImportError as e: print('ImportError:', e)
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "{'a': 4.5}" in out.stdout
    assert out.stdout.count("pip install 'fastai_scaling[scale]'") == 2, out.stdout


# ---------------------------------------------------------------- DDP: ParameterMonitor under fastai's distrib_ctx, gloo

DDP_WORKER = textwrap.dedent('''
    import os, sys, pickle, warnings
    warnings.filterwarnings('ignore')
    import torch, torch.distributed as dist
    rank, world, port, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=port, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    from fastai.tabular.all import tabular_learner, set_seed, Callback
    from fastai.distributed import DistributedDL
    from fastai_scaling.monitor import ParameterMonitor, _input_layer
    def _broadcast(self, t, rank):   # fastai's DistributedDL broadcasts with .cuda() (nccl): on CPU/gloo, broadcast a CPU tensor
        t = torch.LongTensor(t); dist.broadcast(t, rank); return t.tolist()
    DistributedDL._broadcast = _broadcast
    class Seen(Callback):
        def before_batch(self): self.wrapped = type(self.learn.model).__name__
    with open(os.path.join(tmp, 'to.pkl'), 'rb') as f: to = pickle.load(f)
    set_seed(rank)                   # different seeds: DDP must broadcast rank 0's initial weights
    learn = tabular_learner(to.dataloaders(bs=32, device='cpu'), layers=[8], n_out=1, cbs=[ParameterMonitor(), Seen()])
    with learn.no_bar(), learn.no_logging(), learn.distrib_ctx(sync_bn=False, cpu=True): learn.fit(2, 1e-2)
    m = learn.parameter_monitor
    out = dict(wrapped=learn.seen.wrapped, after=type(learn.model).__name__, weights=m.weights, biases=m.biases, iters=m.iters,
               layer_is_inner=m.layer is _input_layer(learn.model)[1], raw=m.raw_weights(),
               procs={type(p).__name__: {a: dict(getattr(p, a)) for a in getattr(p, 'state_names', ())} for p in learn.dls.train_ds.procs.fs})
    torch.save(out, os.path.join(tmp, f'rank{rank}.pt'))
    dist.barrier()
    dist.destroy_process_group()
''')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_parameter_monitor_under_ddp_gloo(tmp_path):
    "A real 2-process torch.distributed run (gloo, loopback) with procs fitted by from_data before the processes start"
    pytest.importorskip('accelerate')
    import torch
    df = make_df(600, seed=18, nan=0.)
    proc = RobustNormalize.from_data([df.iloc[:300], df.iloc[300:]], NAMES)
    to = TabularPandas(df, procs=[proc], cont_names=NAMES, y_names='y', splits=[list(range(500)), list(range(500, 600))])
    with open(tmp_path / 'to.pkl', 'wb') as f: pickle.dump(to, f)
    script = tmp_path / 'worker.py'
    script.write_text(DDP_WORKER)
    port = str(free_port())
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    ps = [subprocess.Popen([sys.executable, str(script), str(r), '2', port, str(tmp_path)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in ps]
    assert all(p.returncode == 0 for p in ps), outs
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pt', weights_only=False) for r in range(2))
    for r in (r0, r1):
        assert r['wrapped'] == 'DistributedDataParallel' and r['after'] == 'TabularModel' and r['layer_is_inner']
        assert r['procs']['RobustNormalize'] == {'centers': proc.centers, 'scales': proc.scales}   # shared unchanged
        assert len(r['iters']) == r['weights'].shape[0] > 2 and list(r['raw'].columns) == NAMES + ['bias']
    assert torch.equal(r0['weights'], r1['weights'])                 # every rank records the same history
    assert r0['biases'] is None and r1['biases'] is None               # layers=[8] with batchnorm: fastai's Linear has no bias
    assert torch.equal(r0['iters'], r1['iters'])
    pd.testing.assert_frame_equal(r0['raw'], r1['raw'])


# ---------------------------------------------------------------- zero-inflated columns (issue 18.4)

def zero_inflated_df(n=3000, seed=7):
    "Columns whose inter-quartile range is 0 but that are not constant, with NaN, as real tables have them"
    r = np.random.default_rng(seed)
    df = pd.DataFrame({'pool': np.where(r.random(n) < 0.996, 0., r.uniform(300, 17_000, n)),     # even the 1-99 range is 0
                       'misc': np.where(r.random(n) < 0.85, 0., r.uniform(50, 15_500, n)),       # a wider percentile pair
                       'const': 4.})
    df.loc[r.random(n) < 0.05, 'misc'] = np.nan
    df['y'] = r.normal(size=n)
    return df

ZERO_NAMES = ['pool', 'misc', 'const']
ZERO_VARIANTS = [(RobustNormalize, {}), (RobustNormalize, dict(unit_variance=True)), (MinMaxNormalize, dict(quantile_range=(25, 75))),
                 (MinMaxNormalize, dict(quantile_range=(10, 90)))]

# (a one-shot generator cannot give the exact fit's second pass: `test_one_shot_sources_and_two_passes`)
@pytest.mark.parametrize('kind', [k for k in KINDS if k != 'generator'])
@pytest.mark.parametrize('cls,kw', ZERO_VARIANTS, ids=[f'{c.__name__}{k}' for c, k in ZERO_VARIANTS])
def test_zero_spread_fallback_from_every_source_equals_in_memory(tmp_path, kind, cls, kw):
    df = zero_inflated_df()
    proc = cls.from_data(source(kind, df, [900, 2000], tmp_path / 'pq'), ZERO_NAMES, **kw)
    mem = in_memory(cls, df, ZERO_NAMES, **kw)
    assert_state(proc, mem, ZERO_NAMES)                            # bit for bit, as every exact fit
    assert proc.spread_rules == mem.spread_rules
    assert 'are equal' in mem.spread_rules['pool']                 # every pair of the ladder is 0 there
    assert ('are equal' in mem.spread_rules['misc']) == (kw.get('quantile_range') != (10, 90))   # 0 on 85%: the 90th is not
    assert mem.spread_rules['const'] == 'constant: scale 1' and mem.scales['pool'] != 1 and mem.scales['misc'] != 1


# ---------------------------------------------------------------- a published recipe of QuantileNormalize (issue 22)

RECIPES = ['tabm', 'tabm-paper', 'rtdl']

@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('recipe', RECIPES)
def test_a_recipe_from_data_exact_is_the_in_memory_fit(tmp_path, kind, recipe):
    "Its noise is drawn over the whole training matrix: exact=True reads every row of every column and fits them as in memory, bit for bit"
    df = make_df(3000, seed=8)                                          # NaN in every column, a float32 one
    src = source(kind, df, [700, 1400, 2999], str(tmp_path))
    if kind == 'generator':                                             # two passes: a one-shot source is refused
        with pytest.raises(ValueError, match='can be read only once'): QuantileNormalize.from_data(src, NAMES, recipe=recipe)
        return
    assert_state(QuantileNormalize.from_data(src, NAMES, recipe=recipe), in_memory(QuantileNormalize, df, NAMES, recipe=recipe))
    # the noise belongs to the matrix of the proc's columns, in their order: cols=['c', 'a'] is another matrix
    assert_state(QuantileNormalize.from_data(source(kind, df, [1400], str(tmp_path / 'cols')), recipe=recipe, cols=['c', 'a']),
                 in_memory(QuantileNormalize, df, ['c', 'a'], recipe=recipe), ['c', 'a'])


@pytest.mark.parametrize('kw', [dict(recipe='tabm'), dict(recipe='tabm-paper'), dict(recipe='rtdl'), dict(noise=1e-3)])
def test_noisy_quantiles_sketched_are_the_in_memory_ones_in_distribution(kw):
    """exact=False sketches each column plus noise of the same law, drawn per chunk (another draw of it): the ranks the codes
    give differ from the in-memory fit's by at most the sketch's rank error, twice the DKW bound of a sample's CDF
    (P < 1e-6 each) and the interpolation between quantiles"""
    n = 20_000
    df = make_df(n, seed=9)
    sketched = QuantileNormalize.from_data(chunks_of(df, range(0, n, 3000)), NAMES, exact=False, **kw)
    mem = in_memory(QuantileNormalize, df, NAMES, **kw)
    from scipy import special
    for c in NAMES:
        x = df[c].dropna().to_numpy()
        assert len(sketched.quantiles[c]) == len(mem.quantiles[c]) == (666 if 'recipe' in kw else 1000)   # the recipe's n_train // 30
        bound = rank_error_bound(200, len(x)) + 2 * np.sqrt(np.log(2e6) / (2 * len(x))) + 1 / (len(mem.quantiles[c]) - 1)
        assert np.abs(special.ndtr(sketched.encode_column(c, x)) - special.ndtr(mem.encode_column(c, x))).max() <= bound, c
