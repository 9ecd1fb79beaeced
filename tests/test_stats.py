"Tests for `fastai_scaling.stats`: mergeable moments, numpy's quantile arithmetic, samples, PSI/KS, column statistics"
import math
from collections import Counter
import numpy as np, pytest, scipy.stats
from hypothesis import given, settings, strategies as st
from fastai_scaling.stats import (Moments, moments, merge_moments, psi_score, ks_statistic, quantile_of, needed_indexes, shape_moments,
                                  merge_shape_moments, BottomK, sample_positions, column_stats, bin_counts)


# ---------------------------------------------------------------- numpy's quantile arithmetic, bit for bit

@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 300), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 10_000),
       ties=st.booleans(), qs=st.lists(st.floats(0, 100), min_size=1, max_size=5), scalar=st.booleans())
def test_quantile_of_is_numpy_bit_for_bit(n, dtype, seed, ties, qs, scalar):
    r = np.random.default_rng(seed)
    x = (r.integers(0, 4, n) if ties else r.lognormal(0, 2, n) * 1e3).astype(dtype)
    s = np.sort(x)
    order = lambda i: s[i]
    if scalar:
        q = qs[0]
        assert quantile_of(order, n, np.true_divide(q, 100), weak_q=True).tobytes() == np.percentile(x, q).tobytes()
    else:
        got, want = quantile_of(order, n, np.true_divide(qs, 100)), np.percentile(x, qs)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    fr = np.array(qs) / 100
    np.testing.assert_array_equal(quantile_of(order, n, fr, 'inverted_cdf'), np.quantile(x, fr, method='inverted_cdf'))


# ---------------------------------------------------------------- moments

def test_moments_match_numpy_with_nan():
    r = np.random.default_rng(1)
    x = r.normal(3, 2, (500, 4)); x[r.random((500, 4)) < .2] = np.nan; x[:, 3] = np.nan
    m = moments(x)
    np.testing.assert_allclose(m.mean[:3], np.nanmean(x[:, :3], 0))
    np.testing.assert_allclose(m.std[:3], np.nanstd(x[:, :3], 0))
    assert m.count[3] == 0 and np.isnan(m.mean[3]) and np.isnan(m.var[3])


def test_moments_float32_large_offset():
    "The corrected two-pass keeps precision when the mean dwarfs the spread"
    x = (1e4 + np.random.default_rng(0).normal(0, 0.01, 10_000)).astype(np.float32)
    np.testing.assert_allclose(moments(x).std[0], x.astype(np.float64).std(), rtol=1e-3)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), cuts=st.lists(st.integers(0, 200), max_size=6), seed=st.integers(0, 10_000),
       nan_frac=st.sampled_from([0., .3]))
def test_merge_of_random_chunks_equals_one_shot(n, cuts, seed, nan_frac):
    r = np.random.default_rng(seed)
    x = r.normal(r.uniform(-100, 100), r.uniform(.01, 50), (n, 3))
    x[r.random(x.shape) < nan_frac] = np.nan
    chunks = np.split(x, sorted(min(c, n) for c in cuts))
    merged = moments(chunks[0])
    for c in chunks[1:]: merged = merge_moments(merged, moments(c))
    whole = moments(x)
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-7, atol=1e-6)


def test_from_mean_var_roundtrip():
    m = Moments.from_mean_var([4, 0], [1., np.nan], [2., np.nan])
    np.testing.assert_allclose(m.var[0], 2.) ; assert np.isnan(m.var[1])


# ---------------------------------------------------------------- scores

def test_psi_and_ks_helpers():
    assert psi_score([.5, .5], [10, 10]) == 0
    assert psi_score([.5, .5], [20, 0]) > 1
    r = np.random.default_rng(2)
    a, b = np.sort(r.normal(size=400)), r.normal(.2, 1, 300)
    assert ks_statistic(a, b) == pytest.approx(scipy.stats.ks_2samp(a, b).statistic, abs=1e-12)
    b[:10] = np.nan
    assert ks_statistic(a, b) == pytest.approx(scipy.stats.ks_2samp(a, b[10:]).statistic, abs=1e-12)


# ---------------------------------------------------------------- higher moments, samples, column statistics

@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), cuts=st.lists(st.integers(0, 300), max_size=6), seed=st.integers(0, 10_000))
def test_shape_moments_merge_of_random_chunks_equals_one_shot(n, cuts, seed):
    x = np.random.default_rng(seed).lognormal(0, 1, n)
    merged = shape_moments(x[:0])
    for c in np.split(x, sorted(min(c, n) for c in cuts)): merged = merge_shape_moments(merged, shape_moments(c))
    np.testing.assert_allclose(merged, shape_moments(x), rtol=1e-8, atol=1e-9)
    if n > 2 and x.std() > 0:
        _, _, m2, m3, m4 = merged
        assert m3 / n / (m2 / n)**1.5 == pytest.approx(scipy.stats.skew(x), rel=1e-7, abs=1e-9)
        assert m4 / n / (m2 / n)**2 - 3 == pytest.approx(scipy.stats.kurtosis(x), rel=1e-7, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 2000), size=st.integers(1, 300), cuts=st.lists(st.integers(0, 2000), max_size=6), seed=st.integers(0, 10_000))
def test_bottom_k_of_chunks_is_the_bottom_k_of_the_whole(n, size, cuts, seed):
    "Merged in any grouping, the sample holds the values with the `size` smallest keys of all chunks, and reads in source order"
    x = np.arange(float(n))
    parts = np.split(x, sorted(min(c, n) for c in cuts))
    samples = [BottomK(p, size, [seed, i], i) for i, p in enumerate(parts)]
    keys = np.concatenate([np.random.default_rng([seed, i]).random(len(p)) for i, p in enumerate(parts)])
    while len(samples) > 1: samples = [samples[i].merge(samples[i + 1]) if i + 1 < len(samples) else samples[i] for i in range(0, len(samples), 2)]
    s = samples[0]
    want = np.sort(np.argsort(keys, kind='stable')[:size])        # positions of the smallest keys, in source order
    np.testing.assert_array_equal(s.in_order(), x[want])


def test_sample_positions_draws_nothing_when_all_are_taken():
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    assert sample_positions(10, 10, r1) is None and sample_positions(10, None, r1) is None
    assert r1.random() == r2.random()


class _ShortFirstDraw:
    "A generator whose first `integers` call returns only `keep` draws: the sampler must draw more until enough are distinct"
    def __init__(self, rng, keep): self.rng, self.keep, self.calls = rng, keep, 0
    def integers(self, *args, **kwargs):
        self.calls += 1
        out = self.rng.integers(*args, **kwargs)
        return out[:self.keep] if self.calls == 1 else out
    def __getattr__(self, name): return getattr(self.rng, name)


@pytest.mark.parametrize('n, size', [(6, 2), (6, 3), (6, 4), (7, 6)])     # positions drawn, or the ones left out drawn
@pytest.mark.parametrize('short', [False, True])
def test_sample_positions_is_a_uniform_subset(n, size, short):
    "Every subset of `size` of `n` positions comes up equally often (chi-square), ascending, distinct, also when the first draw falls short"
    rng = np.random.default_rng(11)
    draw = (lambda: sample_positions(n, size, _ShortFirstDraw(rng, 1))) if short else (lambda: sample_positions(n, size, rng))
    counts = Counter(tuple(draw()) for _ in range(12_000))
    assert all(list(s) == sorted(set(s)) and len(s) == size for s in counts)
    assert len(counts) == math.comb(n, size)
    assert scipy.stats.chisquare(list(counts.values())).pvalue > 1e-4


@pytest.mark.parametrize('size', [30, 170])
def test_sample_positions_include_each_position_at_the_uniform_rate(size):
    "Larger n: each position is taken with probability size/n (the standardized counts' squares sum to a chi-square with n - 1 degrees)"
    n, reps = 200, 4000
    rng = np.random.default_rng(3)
    hits = np.zeros(n)
    for _ in range(reps): hits[sample_positions(n, size, rng)] += 1
    p = size / n
    z2 = ((hits - reps * p)**2 / (reps * p * (1 - p))).sum()
    assert scipy.stats.chi2(n - 1).sf(z2) > 1e-4 and scipy.stats.chi2(n - 1).cdf(z2) > 1e-4   # neither too uneven nor too even


def test_sample_positions_are_seeded_and_ascending():
    for n, size in [(10**6, 10**5), (10**6, 9 * 10**5), (2**33, 1000)]:    # sparse, dense, beyond 32-bit positions
        a, b = sample_positions(n, size, np.random.default_rng(4)), sample_positions(n, size, np.random.default_rng(4))
        np.testing.assert_array_equal(a, b)
        assert len(a) == size and (np.diff(a) > 0).all() and 0 <= a[0] and a[-1] < n


def test_column_stats_and_bin_counts():
    st_ = column_stats(np.r_[np.zeros(98), 1e3, 2e3, np.nan, np.nan])
    assert (st_['n'], st_['n_unique'], st_['binary'], st_['integer'], st_['constant']) == (100, 3, False, True, False)
    assert st_['missing_share'] == pytest.approx(2 / 102) and st_['outlier_share'] == pytest.approx(0.02)
    assert column_stats(np.full(5, 3.))['constant'] and column_stats(np.array([0., 1., 1.]))['binary']
    np.testing.assert_array_equal(bin_counts(np.array([0., 1., 1., 2., np.nan, 5.]), np.array([1., 2.])), [3, 1, 1])


def test_needed_indexes_are_what_numpy_reads():
    "Each percentile reads the order statistics around its virtual index; numpy reads the upper one even at weight 0"
    assert needed_indexes(5, [25., 50., 75.]) == [1, 2, 3, 4]
    assert needed_indexes(10, quantiles=[.1, .5], method='inverted_cdf') == [0, 4]
    x = np.sort(np.random.default_rng(0).normal(size=10))
    read = []
    quantile_of(lambda i: read.append(np.asarray(i).tolist()) or x[i], 10, np.array([.1, .5]), 'inverted_cdf')
    assert sorted(set(sum(read, []))) == [0, 4]
