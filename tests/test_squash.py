"""SquashNormalize against skrub's SquashingScaler on every kind of column, the documented differences from it (inf refused,
zero tests relative to the values, huge values), its properties (monotone, bounded, invertible), presets, from_data, tensors
and cols. (The fastai tutorial flow, export, test_dl, predict and every input class run for it in test_inputs.py.)"""
import warnings
import numpy as np, pandas as pd, pytest, torch
from hypothesis import given, settings, HealthCheck, assume, strategies as st
from hypothesis.extra import numpy as hnp
from skrub import SquashingScaler
from fastai.tabular.all import TabularPandas, TabDataLoader
from fastai_scaling.squash import SquashNormalize
from fastai_scaling.procs import RobustNormalize
from fastai_scaling.loader import TensorTabDataLoader
from fastai_scaling.stats import rank_error_bound

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')


def fit(df, conts, splits=None, **kw):
    return TabularPandas(df, procs=[SquashNormalize(**kw)], cont_names=conts, y_names='y', splits=splits, reduce_memory=False)

def encode_new(to, df):
    new = to.new(df.copy()); new.process()
    return new.items

def fitted(x, **kw):
    "A proc fitted on the values `x` of one column 'c' (NaN dropped, as setup does)"
    proc = SquashNormalize(**kw)
    return proc.set_column_fits({'c': proc.fit_state(x[~np.isnan(x)])})

COLUMNS = {
    'normal': lambda r, n: r.normal(5, 2, n),
    'lognormal': lambda r, n: r.lognormal(1, 1.5, n),                                  # skewed
    'student_t1': lambda r, n: r.standard_t(1, n),                                     # heavy tails (Cauchy)
    'tied': lambda r, n: r.integers(0, 4, n).astype(float),                            # 0, 1, 2, 3
    'zero_iqr': lambda r, n: np.where(r.random(n) < 0.9, 2.5, r.uniform(-10, 40, n)),  # mostly one value, a few others
    'constant': lambda r, n: np.full(n, -4.25),
}

@pytest.fixture(scope='module')
def table():
    r = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({k: f(r, n) for k, f in COLUMNS.items()})
    for c in COLUMNS: df.loc[r.choice(n, 150, replace=False), c] = np.nan
    df['y'] = 0.
    return df, list(COLUMNS), [list(range(2400)), list(range(2400, n))]


# ---- skrub's SquashingScaler ----------------------------------------------------------------------------------------

OPTIONS = [{}, dict(quantile_range=(10, 90), max_absolute_value=2.), dict(quantile_range=(0, 100), max_absolute_value=5.)]

@pytest.mark.parametrize('kw', OPTIONS, ids=str)
@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_codes_equal_skrubs(table, dtype, kw):
    df, conts, splits = table
    d = df.astype({c: dtype for c in conts})
    to = fit(d, conts, splits, **kw)
    sk = SquashingScaler(**kw).fit(d.iloc[splits[0]][conts])
    for rows, part in ((splits[0], to.train), (splits[1], to.valid)):
        ours = part.conts[conts].to_numpy()
        assert ours.dtype == np.float32
        # NaN where skrub has NaN (missing values stay missing), the codes to 1e-6 elsewhere
        np.testing.assert_allclose(ours, sk.transform(d.iloc[rows][conts]), rtol=0, atol=1e-6)
    assert np.isnan(to.train.conts[conts].to_numpy()).sum() == d.iloc[splits[0]][conts].isna().sum().sum()

def test_the_fitted_map_is_skrubs(table):
    "Each column's center and scale are skrub's: the robust scaler's median and quartile range, the min-max fallback's median and 2 / (max - min), the constant column's 0"
    df, conts, splits = table
    p = fit(df, conts, splits).procs.squash_normalize
    sk = SquashingScaler().fit(df.iloc[splits[0]][conts])
    robust, minmax = np.array(conts)[sk.robust_cols_], np.array(conts)[sk.minmax_cols_]
    assert list(robust) == ['normal', 'lognormal', 'student_t1', 'tied'] and list(minmax) == ['zero_iqr'] and sk.zero_cols_[-1]
    np.testing.assert_allclose([p.centers[c] for c in robust], sk.robust_scaler_.center_, rtol=1e-12)
    np.testing.assert_allclose([p.scales[c] for c in robust], sk.robust_scaler_.scale_, rtol=1e-12)
    np.testing.assert_allclose([p.centers[c] for c in minmax], sk.minmax_scaler_.median_, rtol=1e-12)
    np.testing.assert_allclose([1 / p.scales[c] for c in minmax], sk.minmax_scaler_.scale_, rtol=1e-12)
    assert p.scales['constant'] == np.inf and p.spread_rules['constant'] == 'constant: every value encodes to 0'
    assert p.spread_rules['zero_iqr'] == 'half the range (min to max): the 25-75 percentiles are equal'
    assert p.spread_rules['normal'] == '25-75 percentiles'

def test_new_values_encode_as_skrub_beyond_the_training_range(table):
    df, conts, splits = table
    to = fit(df, conts, splits)
    new = pd.DataFrame({c: [-1e6, -50., -3., 0., 0.5, 7., 1e3, 1e9, np.nan] for c in conts}).assign(y=0.)
    sk = SquashingScaler().fit(df.iloc[splits[0]][conts])
    np.testing.assert_allclose(encode_new(to, new)[conts].to_numpy(), sk.transform(new[conts]), rtol=0, atol=1e-6)

def test_a_range_below_scikit_learns_floor_is_scaled_as_skrub_scales_it():
    "skrub's robust step is scikit-learn's RobustScaler, which scales a quartile range below 10 float64 epsilons by 1: kept, to stay equal"
    x = np.random.default_rng(1).normal(size=500) * 1e-16
    df = pd.DataFrame({'c': x, 'y': 0.})
    to = fit(df, ['c'])
    p = to.procs.squash_normalize
    assert p.scales['c'] == 1. and p.spread_rules['c'].startswith('1: the 25-75 percentiles are')
    np.testing.assert_allclose(to.conts['c'].to_numpy(), SquashingScaler().fit_transform(df[['c']])[:, 0], rtol=0, atol=1e-6)


# ---- where it differs from skrub, on purpose ------------------------------------------------------------------------

def test_inf_is_refused_naming_the_column_where_skrub_maps_it_to_the_bound():
    df = pd.DataFrame({'a': [1., 2., 3., 4., 5.], 'b': [1., np.inf, 3., 4., -np.inf], 'y': 0.})
    with pytest.raises(ValueError, match=r"SquashNormalize: training column 'b' contains 2 infinite value\(s\)"):
        fit(df, ['a', 'b'])
    to = fit(df.assign(b=df['a']), ['a', 'b'])
    with pytest.raises(ValueError, match=r"SquashNormalize: column 'b' contains 2 infinite value\(s\)"):
        encode_new(to, df)
    np.testing.assert_array_equal(SquashingScaler().fit(df[['a']]).transform(pd.DataFrame({'a': [np.inf, -np.inf]}))[:, 0], [3., -3.])

def test_zero_spreads_are_zero_relative_to_the_values():
    "A column of 1e6 plus noise of 1e-9 is constant to its precision: every row encodes to 0 (skrub, testing equality, scales the noise up)"
    df = pd.DataFrame({'c': 1e6 + np.random.default_rng(2).normal(size=200) * 1e-9, 'y': 0.})
    to = fit(df, ['c'])
    assert (to.conts['c'] == 0).all() and to.procs.squash_normalize.scales['c'] == np.inf
    assert SquashingScaler().fit_transform(df[['c']]).std() > 0.5
    # real spreads are kept, however small the unit
    for unit in (1e-12, 1., 1e12):
        small = pd.DataFrame({'c': np.random.default_rng(3).normal(size=200) * unit, 'y': 0.})
        np.testing.assert_allclose(fit(small, ['c']).conts['c'], SquashingScaler().fit_transform(small[['c']])[:, 0], rtol=0, atol=1e-6)

@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_huge_finite_values_encode_to_the_bound_exactly(dtype):
    "float64 arithmetic, written so that z**2 cannot overflow into a division by inf: skrub encodes 1e20 to 0 in float32 (and 1e160 in float64)"
    x = np.random.default_rng(4).normal(size=200)
    huge = np.array([1e20, -1e20, 3e38, -3e38] + ([1e160, -1e300] if dtype == np.float64 else []))
    to = fit(pd.DataFrame({'c': x.astype(dtype), 'y': 0.}), ['c'])
    codes = encode_new(to, pd.DataFrame({'c': huge.astype(dtype), 'y': 0.}))['c'].to_numpy()
    np.testing.assert_array_equal(codes, np.sign(huge) * 3.)
    skrub = SquashingScaler().fit(x.astype(dtype)[:, None]).transform(huge.astype(dtype)[:, None])[:, 0]
    assert (skrub[:2] == 0).all() if dtype == np.float32 else (skrub[4:] == 0).all()


# ---- properties ------------------------------------------------------------------------------------------------------

train_values = st.floats(-1e6, 1e6) | st.sampled_from([0., 2.5, -3., 1e-300])

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=hnp.arrays(np.float64, st.integers(1, 60), elements=train_values | st.just(np.nan)),
       new=hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(-1e300, 1e300, allow_subnormal=True)),
       b=st.floats(0.1, 20.), q=st.sampled_from([(25, 75), (0, 100), (5, 50)]), float32=st.booleans())
def test_encoding_is_monotone_bounded_and_decodes_back(train, new, b, q, float32):
    assume((~np.isnan(train)).any())
    dtype = np.float32 if float32 else np.float64
    if float32: new = np.clip(new, -3e38, 3e38)
    proc = fitted(train.astype(dtype), quantile_range=q, max_absolute_value=b)
    x = np.sort(np.r_[train[~np.isnan(train)], new]).astype(dtype)
    codes = proc.encode_column('c', x)
    assert codes.dtype == np.float32 and np.isfinite(codes).all()
    assert (np.diff(codes) >= 0).all()                                      # order kept (float32 may merge neighbours)
    assert (np.abs(codes.astype(np.float64)) <= b).all()                    # within [-B, B], as float32 stores the codes
    assert np.isnan(proc.encode_column('c', np.array([np.nan], dtype)))[0]
    if proc.scales['c'] == np.inf:                                          # constant in training: every value at 0
        assert (codes == 0).all(); return
    # decoding the float32 codes gives the values back to what float32 holds of a code, through the inverse's slope
    inside = np.abs(codes) < proc.bound
    e = codes.astype(np.float64)
    step = 2 * np.spacing(np.abs(codes)).astype(np.float64)
    tol = np.abs(proc.decode_column('c', e + step) - proc.decode_column('c', e - step)) + 4 * np.spacing(np.abs(x).astype(np.float64))
    assert (np.abs(proc.decode_column('c', e) - x)[inside] <= tol[inside]).all()
    # codes at or beyond the bound decode to one large finite value on their side, past every value inside
    ends = proc.decode_column('c', np.array([-b, b, -2 * b, 2 * b]))
    assert np.isfinite(ends).all() and ends[0] == ends[2] < ends[1] == ends[3]
    assert ends[0] <= proc.decode_column('c', e[inside]).min(initial=np.inf) and ends[1] >= proc.decode_column('c', e[inside]).max(initial=-np.inf)

def test_decode_is_the_exact_inverse_of_the_map_in_float64():
    "Through float64 codes (the tensor map keeps float64), decoding inverts encoding to float64 rounding, out to values 1,000 scales from the median"
    r = np.random.default_rng(5)
    proc = fitted(r.lognormal(0, 1, 1000))
    c, s = proc.centers['c'], proc.scales['c']
    x = c + s * np.r_[0., r.uniform(-1000, 1000, 2000), 1e-9, -1e-9]
    codes = proc.encode_column_tensor('c', torch.tensor(x)).numpy()
    np.testing.assert_allclose(proc.decode_column('c', codes), x, rtol=1e-9, atol=1e-12 * s)
    z = (x - c) / s
    np.testing.assert_allclose(codes, z / np.sqrt(1 + (z / 3) ** 2), rtol=1e-15, atol=0)   # the formula, as skrub writes it


# ---- presets, options, tensors, from_data, cols ---------------------------------------------------------------------

def test_from_stats_is_used_without_refitting():
    df = pd.DataFrame({'a': np.arange(10.), 'b': np.arange(10.), 'y': 0.})
    proc = SquashNormalize.from_stats({'a': 2., 'b': 5.}, {'a': 4., 'b': np.inf})
    to = TabularPandas(df, procs=[proc], cont_names=['a', 'b'], y_names='y', reduce_memory=False)
    z = (np.arange(10.) - 2) / 4
    np.testing.assert_allclose(to.items['a'].to_numpy(), z / np.sqrt(1 + (z / 3) ** 2), rtol=1e-6)
    assert (to.items['b'] == 0).all() and proc.centers == {'a': 2., 'b': 5.} and proc.spread_rules == {'a': 'preset', 'b': 'preset'}

@pytest.mark.parametrize('make, message', [
    (lambda: SquashNormalize(quantile_range=(75, 25)), r"SquashNormalize: quantile_range must satisfy 0 <= lo < hi <= 100"),
    (lambda: SquashNormalize(quantile_range=50), r"SquashNormalize: quantile_range must be a pair \(lo, hi\) of percentiles"),
    (lambda: SquashNormalize(max_absolute_value=0), r"max_absolute_value must be a positive finite number, got 0"),
    (lambda: SquashNormalize(max_absolute_value=np.inf), r"max_absolute_value must be a positive finite number, got inf"),
    (lambda: SquashNormalize(max_absolute_value=True), r"max_absolute_value must be a positive finite number, got True"),
    (lambda: SquashNormalize(max_absolute_value='3'), r"max_absolute_value must be a positive finite number, got '3'"),
    (lambda: SquashNormalize.from_stats({'a': np.nan}, {'a': 1.}), r"from_stats: center of column 'a' is nan"),
    (lambda: SquashNormalize.from_stats({'a': 0.}, {'a': 0.}), r"from_stats: scale of column 'a' is 0.0; it must be positive"),
    (lambda: SquashNormalize.from_stats({'a': 0.}, {'a': -1.}), r"from_stats: scale of column 'a' is -1.0; it must be positive"),
])
def test_bad_options_are_refused(make, message):
    with pytest.raises(ValueError, match=message): make()

def test_a_bound_float32_cannot_hold_is_rounded_down():
    "Codes are stored in float32: with B = 2.7 (float32 rounds it up to 2.7000000477) the codes never pass 2.7"
    to = fit(pd.DataFrame({'c': np.r_[np.random.default_rng(6).normal(size=100), 1e30], 'y': 0.}), ['c'], max_absolute_value=2.7)
    assert to.conts['c'].max() <= 2.7 and to.conts['c'].max() == np.nextafter(np.float32(2.7), np.float32(0))

def test_tensor_maps_equal_the_numpy_maps(table):
    df, conts, splits = table
    p = fit(df, conts, splits).procs.squash_normalize
    new = np.r_[df[conts[0]].to_numpy()[:50], -1e6, -3., 0., 7., 1e30, np.nan]
    codes = np.r_[-5., -3., -2.9999998, -1., 0., 0.5, 2.9999998, 3., 5., np.nan]
    for c in conts:
        e = p.encode_column(c, new)
        f32 = torch.tensor(new, dtype=torch.float32)
        # the same float64 arithmetic (torch may divide by a scalar through its reciprocal), rounded to float32: a float32 ulp at most
        np.testing.assert_allclose(p.encode_column_tensor(c, f32).numpy(), p.encode_column(c, f32.numpy()), rtol=0, atol=2.4e-7)
        np.testing.assert_allclose(p.encode_column_tensor(c, torch.tensor(new)).numpy(), e, rtol=0, atol=1.2e-7)   # float64: unrounded
        np.testing.assert_allclose(p.decode_column_tensor(c, torch.tensor(codes)).numpy(), p.decode_column(c, codes), rtol=1e-12)
        assert p.encode_column_tensor(c, torch.tensor(new, dtype=torch.float32)).dtype == torch.float32

def test_from_data_exact_equals_the_in_memory_fit(table):
    df, conts, _ = table
    chunks = [df.iloc[i:i + 700] for i in range(0, len(df), 700)]
    for kw in ({}, dict(quantile_range=(10, 90))):
        exact = SquashNormalize.from_data(chunks, conts, **kw)
        mem = fit(df, conts, [list(range(len(df))), []], **kw).procs.squash_normalize
        assert exact.preset and (exact.centers, exact.scales, exact.spread_rules) == (mem.centers, mem.scales, mem.spread_rules)

def test_from_data_sketched_is_within_the_rank_error_bound():
    r = np.random.default_rng(7)
    n, k = 200_000, 200
    df = pd.DataFrame({'skew': r.lognormal(0, 2, n), 'normal': r.normal(0, 1, n), 'y': 0.})
    p = SquashNormalize.from_data([df.iloc[i:i + 25_000] for i in range(0, n, 25_000)], ['skew', 'normal'], exact=False, k=k)
    eps = rank_error_bound(k, n) + 1 / n
    for c in ('skew', 'normal'):
        x = df[c].to_numpy()
        q = lambda p_: np.quantile(x, np.clip(p_, 0, 1))
        assert q(.5 - eps) <= p.centers[c] <= q(.5 + eps)
        assert q(.75 - eps) - q(.25 + eps) <= p.scales[c] <= q(.75 + eps) - q(.25 - eps)

def test_cols_compose_with_other_scalers_and_tensor_batches_are_the_same():
    r = np.random.default_rng(8)
    df = pd.DataFrame({'a': r.standard_t(1, 500), 'b': r.normal(size=500), 'c': r.normal(size=500), 'y': r.normal(size=500)})
    to = TabularPandas(df, procs=[SquashNormalize(cols=['a']), RobustNormalize(cols=['b'])], cont_names=['a', 'b', 'c'], y_names='y',
                       splits=[list(range(400)), list(range(400, 500))], reduce_memory=False)
    assert to.procs.squash_normalize.fitted_columns() == ['a'] and to.items['a'].abs().max() < 3
    np.testing.assert_array_equal(to.items['c'], df['c'])                                      # not claimed: unchanged
    np.testing.assert_allclose(to.items['a'], SquashingScaler().fit(df[['a']].iloc[:400]).transform(df[['a']])[:, 0], atol=1e-6)
    for dl_type in (TabDataLoader, TensorTabDataLoader):
        assert type(to.dataloaders(bs=64, dl_type=dl_type).valid) is dl_type
    ref, ours = (to.dataloaders(bs=64, shuffle=False, dl_type=t).valid.one_batch() for t in (TabDataLoader, TensorTabDataLoader))
    for a, b in zip(ref, ours): assert torch.equal(a, b)

def test_local_affine_is_the_secant_through_the_median():
    "What raw_weights reads: the encoding's secant over codes -0.1..0.1, the slope 1 / scale at the median to 0.06%"
    proc = fitted(np.random.default_rng(9).lognormal(0, 1, 1000))
    a, b = proc.local_affine('c')
    lo, hi = proc.decode_column('c', np.array([-.1, .1]))
    np.testing.assert_allclose(a, .2 / (hi - lo), rtol=1e-12)
    np.testing.assert_allclose(a * proc.centers['c'] + b, 0., atol=1e-12)
    np.testing.assert_allclose(a * proc.scales['c'], 1., rtol=6e-4)
    const = fitted(np.full(10, 2.))
    assert const.local_affine('c') == (0., 0.)
