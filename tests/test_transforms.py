"""QuantileNormalize and PowerNormalize: scikit-learn cross-checks, fast paths against their definitions, properties, bad input,
presets, local slopes; QuantileNormalize's ends (tied ends, units, decoding the ends: issue 18).
(The fastai tutorial flow, export, test_dl and every input class run for them in test_inputs.py.)"""
import warnings
import numpy as np, pandas as pd, pytest
from scipy import special
from hypothesis import given, settings, HealthCheck, assume, strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import QuantileTransformer, PowerTransformer
from fastai.tabular.all import TabularPandas, RandomSplitter
from fastai_scaling.transforms import QuantileNormalize, PowerNormalize, MonotoneTransform
from fastai_scaling.cdf import QuantileCDF, _MIN_VALUES, _BLOCK
from fractions import Fraction
import math

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
NORMAL_END = 5.199337582605575


def fit(df, proc, conts, splits=None, **kw):
    return TabularPandas(df, procs=[proc], cont_names=conts, y_names='y', splits=splits, reduce_memory=False, **kw)

def the_proc(to):
    return next(p for p in to.procs.fs if isinstance(p, MonotoneTransform))

def encode_new(to, df):
    new = to.new(df.copy()); new.process()
    return new.items

@pytest.fixture(scope='module')
def table():
    "Random, heavily tied, skewed, symmetric, negative and bimodal columns with a fixed split"
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({'normal': rng.normal(size=n), 'tied': rng.integers(0, 4, n).astype(float),
                       'counts': rng.poisson(2, n).astype(float), 'lognormal': rng.lognormal(1, 1.2, n),
                       'negative': -rng.gamma(2, 3, n) - 1, 'bimodal': np.r_[rng.normal(-4, 1, n // 2), rng.normal(4, 1, n - n // 2)],
                       'y': 0.})
    splits = [list(range(2400)), list(range(2400, n))]
    return df, [c for c in df.columns if c != 'y'], splits


# ---- scikit-learn cross-checks ------------------------------------------------------------------------------
# One deliberate difference: a value equal to a TIED training end (a discrete column's minimum or maximum, held by many
# rows) gets the middle of its rank interval, where scikit-learn sends it to the end (+-5.2, or 0/1 for 'uniform').
# `sklearn_codes` therefore takes scikit-learn's codes everywhere except at tied ends, and there the tie-averaged CDF of
# scikit-learn's own fitted quantiles (its interpolation, without its end clamp); `test_tied_ends_*` below pin the ends.

def tied_ends(x, q):
    "Where `x` equals an end of the quantiles `q` that several quantiles share"
    return ((x == q[0]) & (q[0] == q[1])) | ((x == q[-1]) & (q[-1] == q[-2]))

def sklearn_codes(sk, X, output):
    expected = sk.transform(X)
    for j in range(X.shape[1]):
        q, x = sk.quantiles_[:, j], X.iloc[:, j].to_numpy(np.float64)
        tied = tied_ends(x, q)
        if tied.any():
            p = .5 * (np.interp(x[tied], q, sk.references_) - np.interp(-x[tied], -q[::-1], -sk.references_[::-1]))
            expected[tied, j] = special.ndtri(p) if output == 'normal' else p
    return expected

@pytest.mark.parametrize('output', ['normal', 'uniform'])
@pytest.mark.parametrize('n_quantiles', [10, 1000, 10_000])
def test_quantile_matches_sklearn(table, output, n_quantiles):
    df, conts, splits = table
    to = fit(df, QuantileNormalize(n_quantiles=n_quantiles, output_distribution=output), conts, splits)
    sk = QuantileTransformer(n_quantiles=n_quantiles, output_distribution=output, subsample=10**9).fit(df.iloc[splits[0]][conts])
    for split, rows in ((to.train, splits[0]), (to.valid, splits[1])):
        np.testing.assert_allclose(split.conts[conts].values, sklearn_codes(sk, df.iloc[rows][conts], output), atol=1e-5)
    # n_quantiles above the training rows is reduced to them, as scikit-learn does
    assert len(the_proc(to).quantiles['normal']) == sk.n_quantiles_ == min(n_quantiles, 2400)
    np.testing.assert_allclose(the_proc(to).quantiles['lognormal'], sk.quantiles_[:, conts.index('lognormal')], rtol=1e-12)
    # beyond the training range: the ends, as scikit-learn clips
    far = df.iloc[:10].copy()
    far[conts] = far[conts] * 50 - 500
    np.testing.assert_allclose(encode_new(to, far)[conts].values, sk.transform(far[conts]), atol=1e-5)

@pytest.mark.parametrize('dataset', ['breast_cancer', 'diabetes'])
def test_quantile_matches_sklearn_on_real_data(dataset):
    X = load_breast_cancer(as_frame=True).data if dataset == 'breast_cancer' else load_diabetes(as_frame=True, scaled=False).data
    X.columns = [c.replace(' ', '_') for c in X.columns]
    df, conts = X.assign(y=0.), list(X.columns)
    splits = [list(s) for s in RandomSplitter(valid_pct=0.25, seed=0)(df)]
    to = fit(df, QuantileNormalize(n_quantiles=200), conts, splits)
    sk = QuantileTransformer(n_quantiles=200, output_distribution='normal').fit(df.iloc[splits[0]][conts])
    for split, rows in ((to.train, splits[0]), (to.valid, splits[1])):
        np.testing.assert_allclose(split.conts[conts].values, sklearn_codes(sk, df.iloc[rows][conts], 'normal'), atol=1e-5)

@pytest.mark.parametrize('standardize', [True, False])
def test_yeo_johnson_matches_sklearn(table, standardize):
    df, conts, splits = table
    to = fit(df, PowerNormalize(standardize=standardize), conts, splits)
    sk = PowerTransformer(method='yeo-johnson', standardize=standardize).fit(df.iloc[splits[0]][conts])
    np.testing.assert_allclose([the_proc(to).lambdas[c] for c in conts], sk.lambdas_, rtol=1e-4)
    for split, rows in ((to.train, splits[0]), (to.valid, splits[1])):
        expected = sk.transform(df.iloc[rows][conts])
        np.testing.assert_allclose(split.conts[conts].values, expected, rtol=1e-4, atol=1e-4 * max(1., np.abs(expected).max()))

def test_box_cox_matches_sklearn(table):
    df, _, splits = table
    conts = ['lognormal']
    df = df.assign(shifted=df['normal'] + 10, counts1=df['counts'] + 1)
    conts = ['lognormal', 'shifted', 'counts1']
    to = fit(df, PowerNormalize(method='box-cox'), conts, splits)
    sk = PowerTransformer(method='box-cox').fit(df.iloc[splits[0]][conts])
    np.testing.assert_allclose([the_proc(to).lambdas[c] for c in conts], sk.lambdas_, rtol=1e-4)
    np.testing.assert_allclose(to.valid.conts[conts].values, sk.transform(df.iloc[splits[1]][conts]), atol=1e-4)


# ---- fast encoding: the same values as the definitions ----------------------------------------------------------
# QuantileNormalize maps large columns through a lookup table (`QuantileCDF`) instead of np.interp's binary search,
# and both transforms encode in blocks; these pin the results to the straightforward formulas they replace.

def interp_reference(x, q):
    "QuantileNormalize's [0, 1] map as np.interp computes it (scikit-learn's: ties averaged with the downward interpolation)"
    refs = np.linspace(0, 1, len(q))
    y = np.interp(x, q, refs)
    with np.errstate(invalid='ignore'):   # +-1e300 quantiles: inf - inf, NaN, as in QuantileNormalize
        if (q[1:] == q[:-1]).any(): y = .5 * (y - np.interp(-x, -q[::-1], -refs[::-1]))
    return y

def encode_reference(x, q, normal=True):
    "QuantileNormalize's encoding of a fitted column with more than one quantile, written plainly: np.interp, and only values strictly beyond the training range at the ends"
    y = interp_reference(x, q)
    with np.errstate(invalid='ignore'): low, high = x < q[0], x > q[-1]
    y[high], y[low] = 1., 0.
    if normal: y = np.clip(special.ndtri(y), -NORMAL_END, NORMAL_END)
    return y.astype(np.float32)

COLUMNS = {   # training columns of awkward shapes, from a seed
    'normal': lambda rng, n: rng.normal(size=n),
    'tied': lambda rng, n: rng.integers(-3, 4, n).astype(float),
    'skewed': lambda rng, n: rng.lognormal(0, 3, n),
    'negative': lambda rng, n: -rng.gamma(1, 1e-3, n) - 1e6,
    'near-constant': lambda rng, n: 1e6 + rng.normal(size=n) * 1e-6,
    'zeros': lambda rng, n: np.r_[np.zeros(n // 2), -np.zeros(n // 4), rng.normal(size=n - n // 2 - n // 4) * 1e-300],
    'extremes': lambda rng, n: np.r_[rng.normal(size=n - n // 5), rng.choice([-1e300, 1e300, 5e-324, -5e-324, 1e-310, 1e30], n // 5)],
}

def quantiles_and_values(kind, seed, dtype, n_quantiles, n=5000):
    "Fitted quantiles of a training column, and values to encode: the training values, others in and beyond its range, NaN, +-0"
    rng = np.random.default_rng(seed)
    with np.errstate(over='ignore'): train = COLUMNS[kind](rng, n).astype(dtype)
    train = train[np.isfinite(train)]
    q = QuantileNormalize(n_quantiles=n_quantiles).fit_state(train)[0]
    with np.errstate(over='ignore', invalid='ignore'):
        x = np.r_[train, rng.choice(train, 500) * 2, -train[:200], q, np.nextafter(q, np.inf), np.nextafter(q, -np.inf),
                  np.nan, 0., -0., q[0] - 1, q[-1] + 1, 1e30, -1e30, 1e300, -1e300].astype(dtype)
    x = x[~np.isinf(x)]
    x[rng.random(len(x)) < 0.02] = np.nan
    return q, rng.permutation(x)

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(COLUMNS)), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       n_quantiles=st.integers(2, 3000), n_values=st.sampled_from([_MIN_VALUES, 1 << 16, 1 << 22]))
def test_quantile_table_maps_as_np_interp(kind, seed, dtype, n_quantiles, n_values):
    q, x = quantiles_and_values(kind, seed, dtype, n_quantiles)
    assume(len(q) > 1)                                  # one quantile: the constant column's own rule, no interpolation
    y, expected = QuantileCDF(q, n_values)(x), interp_reference(x, q)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))      # NaN where x is (and where np.interp's own ends overflow)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=hnp.arrays(np.float64, st.integers(2, 300), elements=st.floats(-1e300, 1e300, allow_subnormal=True)),
       x=hnp.arrays(np.float64, st.integers(0, 300), elements=st.floats(-1e300, 1e300) | st.just(np.nan) | st.just(-0.)),
       n_quantiles=st.integers(2, 400), float32=st.booleans())
def test_quantile_table_maps_arbitrary_values_as_np_interp(train, x, n_quantiles, float32):
    if float32:
        with np.errstate(over='ignore'): train, x = train.astype(np.float32), x.astype(np.float32)   # beyond float32: +-inf, dropped
    train, x = train[np.isfinite(train)], x[~np.isinf(x)]
    assume(len(train) >= 2)
    q = QuantileNormalize(n_quantiles=n_quantiles).fit_state(train)[0]
    assume(len(q) > 1 and np.isfinite(q).all())
    x = np.r_[x, train, q].astype(train.dtype)
    np.testing.assert_allclose(QuantileCDF(q, _MIN_VALUES)(x), interp_reference(x, q), rtol=0, atol=1e-12)

def test_quantile_table_takes_every_path():
    "A value's count comes from its cell, then steps over the quantiles inside it, or a binary search in a crowded cell"
    q, x = quantiles_and_values('skewed', 0, np.float64, 1000)
    coarse, fine = QuantileCDF(q, _MIN_VALUES), QuantileCDF(q, 1 << 22)
    assert coarse.search is not None and fine.search is None and fine.n_steps > 0
    for cdf in (coarse, fine): np.testing.assert_array_equal(cdf.counts(x[~np.isnan(x)]), np.searchsorted(q, x[~np.isnan(x)], 'right'))
    small = QuantileCDF(q, _MIN_VALUES - 1)                                     # few values: np.interp itself
    assert not small.fast
    np.testing.assert_array_equal(small(x), interp_reference(x, q))
    # quantiles a few subnormals apart: infinite slopes, where np.interp's special cases decide
    q = np.array([0., 5e-324, 1e-323, 1.])
    x = np.r_[q, 2.5e-324, 0.5, -1., 2., np.nan]
    np.testing.assert_array_equal(QuantileCDF(q, _MIN_VALUES)(x), interp_reference(x, q))

@pytest.mark.parametrize('kind', list(COLUMNS))
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('output', ['normal', 'uniform'])
def test_quantile_encodes_as_before_the_table(kind, dtype, output):
    q, x = quantiles_and_values(kind, 1, dtype, 1000, n=70_000)
    if len(q) == 1: return                                                       # constant: unchanged rule, tested below
    proc = QuantileNormalize.from_stats({'c': q}, output_distribution=output)
    assert len(x) > _BLOCK                                                       # several blocks
    np.testing.assert_array_equal(proc.encode_column('c', x), encode_reference(x, q, output == 'normal'))

def test_quantile_encodes_a_large_frame_as_before_the_table():
    rng = np.random.default_rng(3)
    n = 150_000
    df = pd.DataFrame({'a': rng.lognormal(0, 1, n).astype(np.float32), 'b': rng.integers(0, 5, n).astype(float), 'y': 0.})
    df.loc[::97, 'a'] = np.nan
    to = fit(df, QuantileNormalize(), ['a', 'b'], [list(range(120_000)), list(range(120_000, n))])
    q = the_proc(to).quantiles
    for c in ['a', 'b']:
        np.testing.assert_array_equal(to.items[c].to_numpy(), encode_reference(df[c].to_numpy(), q[c]))

@pytest.mark.parametrize('kw', [{}, dict(standardize=False), dict(method='box-cox')])
def test_power_encodes_blockwise_as_the_whole_column(kw):
    rng = np.random.default_rng(4)
    x = rng.lognormal(0, 1, 3 * _BLOCK + 5).astype(np.float32)
    if 'method' not in kw: x[::3] *= -1
    x[::101] = np.nan
    lmbda, mean, std = PowerNormalize(**kw).fit_state(x[~np.isnan(x)])
    p = PowerNormalize.from_stats({'c': lmbda}, {'c': mean}, {'c': std}, **kw)
    y = p._forward(x.astype(np.float64), lmbda)
    expected = ((y - mean) / std if p.standardize else y).astype(np.float32)
    np.testing.assert_array_equal(p.encode_column('c', x), expected)


# ---- parameters -----------------------------------------------------------------------------------------------

def test_noise_breaks_ties_at_fit_only_and_is_seeded(table):
    df, _, splits = table
    plain = the_proc(fit(df, QuantileNormalize(n_quantiles=100), ['tied'], splits))
    noisy_to = fit(df, QuantileNormalize(n_quantiles=100, noise=1e-3), ['tied'], splits)
    noisy = the_proc(noisy_to)
    assert len(np.unique(plain.quantiles['tied'])) == 4 and len(np.unique(noisy.quantiles['tied'])) == 100
    np.testing.assert_allclose(noisy.quantiles['tied'], plain.quantiles['tied'], atol=0.02)   # noise: 1e-3 of the std
    enc = noisy_to.train.conts['tied']
    assert enc.groupby(df['tied'].iloc[splits[0]].values).nunique().max() == 1       # encoding adds no noise
    again = the_proc(fit(df, QuantileNormalize(n_quantiles=100, noise=1e-3), ['tied'], splits))
    np.testing.assert_array_equal(again.quantiles['tied'], noisy.quantiles['tied'])
    other = the_proc(fit(df, QuantileNormalize(n_quantiles=100, noise=1e-3, seed=1), ['tied'], splits))
    assert not np.array_equal(other.quantiles['tied'], noisy.quantiles['tied'])

def test_subsample_bounds_the_values_quantiles_come_from(table):
    df, _, splits = table
    sub = the_proc(fit(df, QuantileNormalize(n_quantiles=100, subsample=500), ['lognormal'], splits)).quantiles['lognormal']
    full = the_proc(fit(df, QuantileNormalize(n_quantiles=100), ['lognormal'], splits)).quantiles['lognormal']
    assert not np.array_equal(sub, full)
    np.testing.assert_allclose(sub[10:90], full[10:90], rtol=0.25)        # a sample of the same distribution
    train = df['lognormal'].iloc[splits[0]].to_numpy()
    assert np.isin(sub[[0, -1]], train).all()                             # ends are sampled training values
    # as many quantiles as sampled values: the quantiles are the sample itself (to rounding), 500 distinct training values
    exact = the_proc(fit(df, QuantileNormalize(n_quantiles=500, subsample=500), ['lognormal'], splits)).quantiles['lognormal']
    nearest = train[np.abs(train[:, None] - exact).argmin(0)]
    assert len(np.unique(nearest)) == 500
    np.testing.assert_allclose(exact, nearest, rtol=1e-12)

def test_a_column_shorter_than_four_subsamples_is_not_subsampled(table):
    "Sorting 2,400 values costs less than drawing, gathering and sorting a sample of 601 of them: all are used"
    df, _, splits = table
    q = lambda **kw: the_proc(fit(df, QuantileNormalize(n_quantiles=100, **kw), ['lognormal'], splits)).quantiles['lognormal']
    np.testing.assert_array_equal(q(subsample=601), q(subsample=None))
    assert not np.array_equal(q(subsample=600), q(subsample=None))

@pytest.mark.parametrize('make, message', [
    (lambda: QuantileNormalize(n_quantiles=1), 'n_quantiles'), (lambda: QuantileNormalize(n_quantiles=2.5), 'n_quantiles'),
    (lambda: QuantileNormalize(output_distribution='gauss'), 'output_distribution'),
    (lambda: QuantileNormalize(n_quantiles=1000, subsample=10), 'subsample'), (lambda: QuantileNormalize(noise=-1), 'noise'),
    (lambda: PowerNormalize(method='log'), 'method'), (lambda: QuantileNormalize(cols=[]), 'cols'),
    (lambda: PowerNormalize(cols=['a', 'a']), 'more than once')])
def test_bad_arguments_are_refused_in_the_constructor(make, message):
    with pytest.raises(ValueError, match=message): make()

def test_box_cox_refuses_non_positive_values_naming_the_column(table):
    df, _, splits = table
    with pytest.raises(ValueError, match=r"PowerNormalize: column 'counts': method='box-cox' needs strictly positive values, .* include 0"):
        fit(df, PowerNormalize(method='box-cox'), ['lognormal', 'counts'], splits)
    to = fit(df, PowerNormalize(method='box-cox'), ['lognormal'], splits)
    with pytest.raises(ValueError, match=r"column 'lognormal' has 2 value\(s\) <= 0, such as -1"):
        encode_new(to, df.iloc[:5].assign(lognormal=[1., -1., 2., 0., 3.]))

def test_unstandardized_power_that_leaves_float32_is_an_error():
    rng = np.random.default_rng(4)
    df = pd.DataFrame({'t': 1e7 + rng.normal(size=1000), 'y': 0.})
    with pytest.raises(ValueError, match=r"column 't': with lambda .* beyond float32; use standardize=True"):
        fit(df, PowerNormalize(standardize=False), ['t'])
    fit(df, PowerNormalize(), ['t'])                                      # standardized: fine


# ---- presets --------------------------------------------------------------------------------------------------

def test_from_stats_presets_are_used_without_refitting(table):
    df, _, splits = table
    q = QuantileNormalize.from_stats({'normal': [-1., 0., 1.]}, output_distribution='uniform')
    to = fit(df, q, ['normal'], splits)
    np.testing.assert_allclose(to.items['normal'], np.clip((df['normal'].loc[to.items.index] + 1) / 2, 0, 1), atol=1e-6)
    p = PowerNormalize.from_stats({'normal': 1.}, {'normal': 0.}, {'normal': 2.})
    to = fit(df, p, ['normal'], splits)
    np.testing.assert_allclose(to.items['normal'], df['normal'].loc[to.items.index] / 2, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"quantiles of column 'a' must be .* non-decreasing"):
        QuantileNormalize.from_stats({'a': [2., 1.]})
    with pytest.raises(ValueError, match=r"std of column 'a'"):
        PowerNormalize.from_stats({'a': 1.}, {'a': 0.}, {'a': 0.})
    with pytest.raises(ValueError, match=r"\['b'\] lack a value"):
        PowerNormalize.from_stats({'a': 1., 'b': 1.}, {'a': 0.}, {'a': 1.})
    with pytest.raises(ValueError, match=r"has no statistics for columns \['tied'\]"):
        fit(df, QuantileNormalize.from_stats({'normal': [0., 1.]}), ['normal', 'tied'], splits)


# ---- constant, single-value, unseen values --------------------------------------------------------------------

# the third: a few ulps of noise, constant by the shared zero-spread test
@pytest.mark.parametrize('values', [[3.] * 50, [3.], 3. + np.random.default_rng(0).normal(size=50) * 1e-15])
@pytest.mark.parametrize('make', [QuantileNormalize, lambda: QuantileNormalize(output_distribution='uniform'), PowerNormalize,
                                  lambda: PowerNormalize(method='box-cox')])
def test_constant_columns_encode_to_finite_constants(values, make):
    df = pd.DataFrame({'c': values, 'y': 0.})
    to = fit(df, make(), ['c'])
    enc = to.items['c'].to_numpy()
    assert np.isfinite(enc).all() and np.ptp(enc) <= 1e-12          # power: x - mean, a few ulps; quantile: exactly one value
    middle = 0.5 if getattr(the_proc(to), 'output_distribution', None) == 'uniform' else 0.
    assert abs(enc[0] - middle) <= 1e-12
    new = encode_new(to, pd.DataFrame({'c': [1e-6, 2., 3., 4., 1e6, np.nan], 'y': 0.}))['c'].to_numpy()
    assert np.isfinite(new[:5]).all() and np.isnan(new[5])
    assert (np.diff(new[:5]) >= 0).all()                              # still monotone

@pytest.mark.parametrize('make', [QuantileNormalize, PowerNormalize])
def test_unseen_values_encode_finitely_and_in_order(table, make):
    df, conts, splits = table
    to = fit(df, make(), ['normal', 'negative', 'bimodal'], splits)
    grid = np.r_[-1e6, -1e3, np.linspace(-20, 20, 401), 1e3]
    new = encode_new(to, pd.DataFrame({c: grid for c in ['normal', 'negative', 'bimodal']}).assign(y=0.))
    for c in ['normal', 'negative', 'bimodal']:
        e = new[c].to_numpy()
        assert np.isfinite(e).all() and (np.diff(e) >= 0).all(), c


# ---- the ends: tied ends, units, decoding the ends (issue 18) ---------------------------------------------------

def five_valued(dtype, per=400):
    "0, 1, 2, 3, 4: `per` training rows each"
    return np.repeat(np.arange(5.), per).astype(dtype)

def mid_rank_cdf(v, n=2000, per=400, n_q=1000):
    """(CDF, first, last) of value `v` of `five_valued`, from first principles: quantile i sits at the virtual position
    (n - 1) * i / (n_q - 1) of the sorted column, so it equals v when that position falls in v's rows [per * v, per * v + per - 1];
    averaging the upward and downward interpolation gives v the middle of those quantiles' references i / (n_q - 1)"""
    first = math.ceil(Fraction(per * v * (n_q - 1), n - 1))
    last = math.floor(Fraction((per * v + per - 1) * (n_q - 1), n - 1))
    return Fraction(first + last, 2 * (n_q - 1)), first, last

def test_five_valued_column_has_no_quantile_between_its_values():
    "The data the tied-end tests use: every quantile is one of the five values, so each value's run of quantiles is known"
    runs = [mid_rank_cdf(v) for v in range(5)]
    assert runs[0][1] == 0 and runs[4][2] == 999 and all(runs[v][2] + 1 == runs[v + 1][1] for v in range(4))
    q = QuantileNormalize().fit_state(five_valued(np.float64))[0]
    np.testing.assert_array_equal(q, np.repeat(np.arange(5.), [r[2] - r[1] + 1 for r in runs]))
    # about the middle of each fifth, as a mid-rank should be: 199/1998 for the 0s
    assert runs[0][0] == Fraction(199, 1998)
    np.testing.assert_allclose([float(r[0]) for r in runs], [.1, .3, .5, .7, .9], atol=5e-4)

@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('output', ['normal', 'uniform'])
@pytest.mark.parametrize('n_values', [7, _MIN_VALUES + 3])                      # np.interp, and the table
def test_tied_ends_get_their_mid_rank(dtype, output, n_values):
    "Issue 18: the 0s and 4s went to -+5.2 in float64, and in float32 the 0s to -5.2 but the 4s to +1.31"
    q = QuantileNormalize().fit_state(five_valued(dtype))[0]
    proc = QuantileNormalize.from_stats({'c': q}, output_distribution=output)
    cdf = np.array([float(mid_rank_cdf(v)[0]) for v in range(5)])
    expected = special.ndtri(cdf) if output == 'normal' else cdf
    x = np.resize(np.r_[np.arange(5.), -1., 5.], n_values).astype(dtype)        # and one value beyond each end
    codes = proc.encode_column('c', x)
    ends = [-NORMAL_END, NORMAL_END] if output == 'normal' else [0., 1.]
    np.testing.assert_allclose(codes[:7], np.r_[expected, ends], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(codes, np.resize(codes[:7], n_values))
    if output == 'normal': assert codes[0] == -codes[4] and abs(codes[0]) < 1.3    # symmetric: the same |c|, in both dtypes
    else: assert abs(float(codes[0]) + float(codes[4]) - 1) <= np.spacing(np.float32(.9))
    # a tied end's code decodes to the tied value; beyond the ends, to the ends
    np.testing.assert_array_equal(proc.decode_column('c', codes[:7].astype(np.float64)), [0., 1., 2., 3., 4., 0., 4.])

def test_tied_ends_through_tabular_pandas_in_float32():
    "fastai hands procs float32 columns (reduce_memory): the 4s encode as the 0s, mirrored; the ends decode exactly"
    rng = np.random.default_rng(6)
    df = pd.DataFrame({'k': np.tile(np.arange(5.), 400), 'ln': rng.lognormal(3, 2, 2000), 'y': 0.})
    to = TabularPandas(df, procs=[QuantileNormalize], cont_names=['k', 'ln'], y_names='y')
    proc = the_proc(to)
    assert proc.dtypes == {'k': np.float32, 'ln': np.float32}
    codes = to.items['k'].to_numpy()
    np.testing.assert_allclose(codes[:5], special.ndtri([float(mid_rank_cdf(v)[0]) for v in range(5)]), rtol=0, atol=1e-6)
    assert codes[0] == -codes[4]
    decoded = to.procs.decode(to.new(to.items.copy())).items
    np.testing.assert_array_equal(decoded['k'], df['k'])
    ln = df['ln'].to_numpy(np.float32)
    assert decoded['ln'].iloc[ln.argmax()] == ln.max() and decoded['ln'].iloc[ln.argmin()] == ln.min()
    new = encode_new(to, pd.DataFrame({'k': [-1., 9.], 'ln': [0., 1e9], 'y': 0.}))
    np.testing.assert_allclose(new[['k', 'ln']].to_numpy(), [[-NORMAL_END] * 2, [NORMAL_END] * 2], atol=1e-6)
    back = to.procs.decode(to.new(new.copy())).items
    np.testing.assert_array_equal(back[['k', 'ln']].to_numpy(), [[0., ln.min()], [4., ln.max()]])

@pytest.mark.parametrize('output', ['normal', 'uniform'])
def test_tied_ends_are_where_we_differ_from_sklearn(table, output):
    df, _, splits = table
    conts = ['tied', 'counts', 'normal']          # 0..3 and Poisson counts are tied at their ends; a continuous column is not
    to = fit(df, QuantileNormalize(output_distribution=output), conts, splits)
    sk = QuantileTransformer(output_distribution=output).fit(df.iloc[splits[0]][conts])
    x = df.iloc[splits[1]][conts].to_numpy()
    ours, theirs = to.valid.conts[conts].to_numpy(), sk.transform(df.iloc[splits[1]][conts])
    tied = np.stack([tied_ends(x[:, j], sk.quantiles_[:, j]) for j in range(3)], 1)
    assert tied[:, 0].sum() > 200 and tied[:, 1].any() and not tied[:, 2].any()
    # scikit-learn puts the tied ends at the ends of the output; ours stay strictly inside it
    ends = (-NORMAL_END, NORMAL_END) if output == 'normal' else (0., 1.)
    low = x == sk.quantiles_[0]
    np.testing.assert_allclose(theirs[tied & low], ends[0]); np.testing.assert_allclose(theirs[tied & ~low], ends[1])
    assert ((ours[tied] > ends[0] + .05) & (ours[tied] < ends[1] - .05)).all()
    # everywhere else the same codes, interior ties included
    assert ((x[:, 0] > 0) & (x[:, 0] < 3)).sum() > 200
    np.testing.assert_allclose(ours[~tied], theirs[~tied], atol=1e-5)

def wavelength(dtype, seed=0):
    "A wavelength in metres, uniform over visible light [4e-7, 7e-7] m, 2,000 rows"
    return np.random.default_rng(seed).uniform(4e-7, 7e-7, 2000).astype(dtype)

def codes_of(x, output='normal', table=False):
    "Codes of the training column `x`, and its quantiles; `table`: encoded three times over, through `QuantileCDF`'s table"
    q = QuantileNormalize().fit_state(x)[0]
    proc = QuantileNormalize.from_stats({'c': q}, output_distribution=output)
    if not table: return proc.encode_column('c', x), q
    assert 3 * len(x) >= _MIN_VALUES
    return proc.encode_column('c', np.tile(x, 3))[:len(x)], q

@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_a_column_in_small_units_encodes_like_any_other(dtype):
    "Issue 18: a wavelength in metres sent 2/3 of its values to +-5.2 (float64; std 4.27) or was taken for a constant (float32)"
    x = wavelength(dtype)
    codes, q = codes_of(x)
    assert len(q) == 1000
    assert abs(codes.std() - 1) < .02                                              # measured: 1.0099 in both dtypes
    at_ends = np.abs(codes) == np.float32(NORMAL_END)
    np.testing.assert_array_equal(np.flatnonzero(at_ends), np.sort([x.argmin(), x.argmax()]))   # the min and max only

@pytest.mark.parametrize('table', [False, True])
@pytest.mark.parametrize('output', ['normal', 'uniform'])
def test_codes_do_not_depend_on_the_unit_in_float64(output, table):
    base, _ = codes_of(wavelength(np.float64), output, table)
    for k in range(-9, 10):
        scaled, _ = codes_of(wavelength(np.float64) * 10.**k, output, table)
        # x * 10**k rounds each value by half a float64 ulp: the CDF moves ~1e-13, under a float32 ulp of the codes,
        # so at most a rounding flip of the stored code
        np.testing.assert_array_max_ulp(scaled, base, maxulp=1)

@pytest.mark.parametrize('table', [False, True])
@pytest.mark.parametrize('output', ['normal', 'uniform'])
def test_codes_do_not_depend_on_the_unit_in_float32(output, table):
    x = wavelength(np.float32)
    base, q = codes_of(x, output, table)
    # In float32, x * 10**k is a slightly different column: each value rounds by up to eps32/2 relative, and the
    # quantiles with them. Rounding is monotone, so a value keeps its step [q[j], q[j+1]] among the quantiles and only
    # its fraction f = (x - q[j]) / (q[j+1] - q[j]) moves: numerator and denominator by at most eps32 * max|x| each, so
    # f by about 2 * eps32 * max|x| / gap at the smallest gap, and the CDF by that over n_quantiles - 1. Twice that:
    tol = 4 * np.finfo(np.float32).eps * np.abs(q).max() / np.diff(q).min() / (len(q) - 1)
    assert tol < 1e-4                                              # a tenth of a quantile step (1e-3): still sharp
    # compared as probabilities: the normal codes' slope grows 1e6-fold from the middle to the clip; storing a code
    # in float32 adds at most half its ulp times the normal density (<= 0.4), under 1e-7
    prob = (lambda e: special.ndtr(e.astype(np.float64))) if output == 'normal' else (lambda e: e.astype(np.float64))
    for k in range(-9, 10):
        scaled, _ = codes_of((x.astype(np.float64) * 10.**k).astype(np.float32), output, table)
        np.testing.assert_allclose(prob(scaled), prob(base), rtol=0, atol=tol + 1e-7)

@pytest.mark.parametrize('k', [-12, -9, -3, 0, 3, 9, 12])
def test_constant_columns_are_constant_relative_to_their_magnitude(k):
    c = 5.5e-7 * 10.**k
    noisy = (3 + np.random.default_rng(0).normal(size=50) * 1e-15) * 10.**k      # a few float64 ulps of noise: constant
    assert len(QuantileNormalize().fit_state(noisy)[0]) == 1
    proc = QuantileNormalize.from_stats({'c': QuantileNormalize().fit_state(np.full(50, c))[0]})
    new = np.array([c, c * (1 + 1e-7), c * (1 - 1e-7), c * (1 + 1e-3), c * (1 - 1e-3), 0.])
    # within float32 rounding of the constant (1e-7 relative): the constant; a thousandth off: another value, at an end
    stored = proc.encode_column('c', new).astype(np.float32)                    # as `encodes` stores it
    np.testing.assert_array_equal(stored, np.float32([0, 0, 0, NORMAL_END, -NORMAL_END, -NORMAL_END]))

@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('output', ['normal', 'uniform'])
def test_ends_and_beyond_decode_to_the_training_ends_exactly(dtype, output):
    "Issue 18: on a log-normal column the training maximum and 1e9 both decoded to a value short of the maximum"
    x = np.random.default_rng(5).lognormal(3, 2, 5000).astype(dtype)
    proc = QuantileNormalize.from_stats({'c': QuantileNormalize().fit_state(x)[0]}, output_distribution=output)
    q = proc.quantiles['c']
    lo, hi = x.min(), x.max()
    new = np.array([lo, hi, 0., -1e9, 1e9, np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)], dtype)
    codes = proc.encode_column('c', new)
    e0, e1 = (-NORMAL_END, NORMAL_END) if output == 'normal' else (0., 1.)
    np.testing.assert_array_equal(codes, np.float32([e0, e1, e0, e0, e1, e0, e1]))
    ends = np.array([lo, hi, lo, lo, hi, lo, hi], np.float64)
    np.testing.assert_array_equal(proc.decode_column('c', codes.astype(np.float64)), ends)
    # the unrounded end codes, and anything beyond them, too
    np.testing.assert_array_equal(proc.decode_column('c', np.array([e0, e1, e0 - 1, e1 + 1, -1e30, 1e30])), [lo, hi] * 3)
    if output == 'normal':   # the interpolation alone lands short of the maximum at the stored end code: what was decoded
        short = np.interp(special.ndtr(np.float64(np.float32(NORMAL_END))), np.linspace(0, 1, len(q)), q)
        assert short < hi and q[-2] < hi

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=hnp.arrays(np.float64, st.integers(2, 200), elements=st.floats(-1e6, 1e6) | st.sampled_from([-3., 0., 2.5, 1e-8, -1e-9])),
       where=st.lists(st.floats(0, 1), min_size=1, max_size=50), n_quantiles=st.integers(2, 300), float32=st.booleans(),
       output=st.sampled_from(['normal', 'uniform']), table=st.booleans())
def test_values_inside_the_training_range_take_an_end_code_only_where_their_cdf_is_there(train, where, n_quantiles, float32,
                                                                                        output, table):
    dtype = np.float32 if float32 else np.float64
    train = train.astype(dtype)
    q = QuantileNormalize(n_quantiles=n_quantiles).fit_state(train)[0]
    assume(len(q) > 1)
    # values strictly inside the training range: the training values, points spread over it, the neighbours of its ends
    x = np.r_[train, q[0] + np.array(where) * (q[-1] - q[0]), np.nextafter(dtype(q[0]), dtype(np.inf)),
              np.nextafter(dtype(q[-1]), dtype(-np.inf))].astype(dtype)
    x = x[(x > q[0]) & (x < q[-1])]
    assume(len(x))
    if table: x = np.resize(x, _MIN_VALUES)
    codes = QuantileNormalize.from_stats({'c': q}, output_distribution=output).encode_column('c', x)
    # a probability: beside tied quantiles the averaged interpolations can round a hair below 0 (encoding clips it too)
    p = np.clip(interp_reference(x.astype(np.float64), q), 0., 1.)
    if output == 'normal':
        # an end code only where the CDF's normal quantile is at or beyond the clip (up to float32 rounding of the code)
        end = np.abs(codes) == np.float32(NORMAL_END)
        with np.errstate(divide='ignore'): assert (np.abs(special.ndtri(p[end])) >= NORMAL_END - 5e-7).all()
    else:
        end = (codes == 0) | (codes == 1)
        assert np.isin(p[end].astype(np.float32), [0, 1]).all()


# ---- properties -----------------------------------------------------------------------------------------------

values = st.floats(-1e5, 1e5, allow_nan=False, width=32)
MAKERS = st.sampled_from([QuantileNormalize, lambda: QuantileNormalize(n_quantiles=7, output_distribution='uniform'),
                          PowerNormalize, lambda: PowerNormalize(standardize=False)])

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=hnp.arrays(np.float64, st.integers(3, 60), elements=values | st.just(np.nan)), make=MAKERS)
def test_encode_is_monotone_and_decode_inverts_it_inside_the_training_range(train, make):
    assume(np.isfinite(train).sum() >= 2)
    df = pd.DataFrame({'x': train, 'y': 0.})
    try: to = fit(df, make(), ['x'])
    except ValueError as e:                       # unstandardized power may not fit float32: a named error, by design
        assert "column 'x': with lambda" in str(e); return
    enc = to.items['x'].to_numpy()
    ok = ~np.isnan(train)
    assert np.isfinite(enc[ok]).all() and np.isnan(enc[~ok]).all()
    order = np.argsort(train[ok], kind='stable')
    assert (np.diff(enc[ok][order]) >= 0).all()                   # monotone: order kept (ties may merge)
    proc = the_proc(to)
    decoded = to.procs.decode(to.new(to.items.copy())).items['x'].to_numpy()
    e = enc[ok].astype(np.float64)
    step = 4 * np.spacing(np.abs(enc[ok])).astype(np.float64)
    tol = np.abs(proc.decode_column('x', e + step) - proc.decode_column('x', e - step)) + 1e-6 * (np.ptp(train[ok]) + 1)
    if isinstance(proc, QuantileNormalize):      # the quantile map is onto the quantiles' range: compare inside it
        q = proc.quantiles['x']
        inside = (train[ok] >= q[0]) & (train[ok] <= q[-1])
        if len(q) > 1 and not (np.diff(q) > 0).all(): return      # ties: many values share an encoding
        np.testing.assert_array_less(np.abs(decoded[ok] - train[ok])[inside], tol[inside] + 1e-12)
    else: np.testing.assert_array_less(np.abs(decoded[ok] - train[ok]), tol + 1e-12)

# ---- local linearisation (raw_weights through a transform) ---------------------------------------------------

@pytest.mark.parametrize('make', [QuantileNormalize, lambda: QuantileNormalize(output_distribution='uniform'),
                                  PowerNormalize, lambda: PowerNormalize(standardize=False)])
def test_local_affine_is_the_secant_at_the_typical_value(table, make):
    df, _, splits = table
    to = fit(df, make(), ['lognormal', 'tied'], splits)
    p = the_proc(to)
    for c in ['lognormal', 'tied']:
        a, b = p.local_affine(c)
        e0, delta = p.encoded_center(c)
        center = p.decode_column(c, np.array([e0]))[0]
        assert abs(a * center + b - e0) < 1e-9 * (1 + abs(e0))     # passes through the typical value
        lo, hi = p.decode_column(c, np.array([e0 - delta, e0 + delta]))
        if hi > lo: np.testing.assert_allclose(a, 2 * delta / (hi - lo), rtol=1e-12)
        assert a > 0 and np.isfinite(b)
    median = df['lognormal'].iloc[splits[0]].median()
    if isinstance(p, QuantileNormalize) and p.output_distribution == 'normal':
        assert abs(p.decode_column('lognormal', np.array([0.]))[0] - median) < 0.01 * median


# ---- the published recipes (issue 22): QuantileNormalize(recipe=...) against the reference's own lines ----------------
# tabm:       yandex-research/tabm example.ipynb ("Advanced preprocessing strategy")
# tabm-paper: yandex-research/tabm paper/lib/data.py, transform_num, NumPolicy.NOISY_QUANTILE
# rtdl:       yandex-research/rtdl-num-embeddings lib/data.py, normalize(X, 'quantile', seed)

def reference_noisy(recipe, X, seed, nan_std=False):
    "The reference's training matrix plus its noise, by its own lines (`nan_std`: the std of the values present, where the reference has no NaN)"
    if recipe == 'tabm': return X + np.random.default_rng(seed).normal(0.0, 1e-5, X.shape).astype(X.dtype)
    if recipe == 'tabm-paper': return X + np.random.RandomState(seed).normal(0.0, 1e-5, X.shape).astype(X.dtype)
    stds = (np.nanstd if nan_std else np.std)(X, axis=0, keepdims=True)
    noise = 1e-3
    noise_std = noise / np.maximum(stds, noise)
    return X + noise_std * np.random.default_rng(seed).standard_normal(X.shape)

def reference_fit(recipe, X, seed, **kw):
    "scikit-learn's QuantileTransformer as the references set it up, fitted on the noisy training matrix"
    return QuantileTransformer(output_distribution='normal', n_quantiles=max(min(X.shape[0] // 30, 1000), 10), subsample=10**9,
                               random_state=seed).fit(reference_noisy(recipe, X, seed, **kw))

RECIPES = ['tabm', 'tabm-paper', 'rtdl']

@pytest.mark.parametrize('recipe', RECIPES)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('nan', [False, True])
def test_a_recipe_is_its_reference(table, recipe, dtype, nan):
    "The same quantiles as scikit-learn fitted by the reference's lines, bit for bit, and the same codes to float32 precision"
    df, conts, splits = table
    df = df.astype({c: dtype for c in conts})
    if nan: df.loc[df.index % 13 == 0, ['lognormal', 'tied']] = np.nan   # left out of the quantiles, as scikit-learn leaves them out
    to = fit(df, QuantileNormalize(recipe=recipe, seed=7), conts, splits)
    X = df.iloc[splits[0]][conts].to_numpy()                            # the matrix a user of the reference builds
    sk = reference_fit(recipe, X, 7, nan_std=nan)
    q = the_proc(to).quantiles
    for j, c in enumerate(conts): np.testing.assert_array_equal(q[c], sk.quantiles_[:, j], err_msg=c)
    assert len(q['normal']) == 80                                       # 2,400 // 30
    # scikit-learn's codes of the same values in float64 (its float32 transform rounds its probabilities to float32);
    # tied ends (none here: the noise breaks the ties) would take the middle of their ranks, see `sklearn_codes`
    X_all = df.loc[to.items.index, conts].astype(np.float64)
    np.testing.assert_allclose(to.items[conts].to_numpy(), sklearn_codes(sk, X_all, 'normal'), atol=1e-6, rtol=0)

@pytest.mark.parametrize('recipe', RECIPES)
def test_a_recipes_noise_is_drawn_over_the_matrix_of_the_procs_columns(table, recipe):
    "Row-major over (n_train, n_cols), the columns in the proc's order: another column set or order is another draw"
    df, _, splits = table
    cols = ['tied', 'normal', 'counts']
    mine = the_proc(fit(df, QuantileNormalize(recipe=recipe, cols=cols), ['normal', 'counts', 'tied'], splits)).quantiles
    sk = reference_fit(recipe, df.iloc[splits[0]][cols].to_numpy(), 0)
    for j, c in enumerate(cols): np.testing.assert_array_equal(mine[c], sk.quantiles_[:, j])
    alone = the_proc(fit(df, QuantileNormalize(recipe=recipe), ['tied'], splits)).quantiles['tied']
    assert not np.array_equal(alone, mine['tied'])                      # the first column of a one-column matrix: other noise
    np.testing.assert_array_equal(alone, reference_fit(recipe, df.iloc[splits[0]][['tied']].to_numpy(), 0).quantiles_[:, 0])
    # fit_state(x): x is the training matrix of one column
    np.testing.assert_array_equal(QuantileNormalize(recipe=recipe).fit_state(df['tied'].iloc[splits[0]].to_numpy())[0], alone)

def test_a_recipe_is_seeded(table):
    df, conts, splits = table
    q = lambda seed: the_proc(fit(df, QuantileNormalize(recipe='tabm', seed=seed), ['tied'], splits)).quantiles['tied']
    np.testing.assert_array_equal(q(0), q(0))
    assert not np.array_equal(q(0), q(1))

def test_the_tabm_noise_vanishes_where_float32_is_coarser(table):
    "1e-5 absolute, added in float32: values of some thousands do not move (their neighbours are 1e-3 away), and a tied column stays tied"
    df, _, splits = table
    big = pd.DataFrame({'big': (df['tied'] + 10_000).astype(np.float32), 'y': 0.})
    p = the_proc(fit(big, QuantileNormalize(recipe='tabm'), ['big'], splits))
    np.testing.assert_array_equal(np.unique(p.quantiles['big']), [10_000., 10_001., 10_002., 10_003.])
    np.testing.assert_array_equal(p.quantiles['big'], reference_fit('tabm', big.iloc[splits[0]][['big']].to_numpy(), 0).quantiles_[:, 0])

@pytest.mark.parametrize('kw, message', [
    (dict(n_quantiles=1000), "n_quantiles=1000 conflicts"), (dict(subsample=None), "subsample=None conflicts"),
    (dict(noise=1e-3), "noise=0.001 conflicts"), (dict(output_distribution='uniform'), "output_distribution='uniform' conflicts")])
def test_a_recipe_refuses_the_options_it_sets(kw, message):
    with pytest.raises(ValueError, match=rf"QuantileNormalize: recipe='tabm' sets n_quantiles, subsample and noise itself .* {message}"):
        QuantileNormalize(recipe='tabm', **kw)
    with pytest.raises(ValueError, match=r"recipe='rtdl-num-embeddings' is not one of 'tabm', 'tabm-paper', 'rtdl'"):
        QuantileNormalize(recipe='rtdl-num-embeddings')
