"Tests for `fastai_scaling.drift_stats` and the drift statistics of `DriftNormalize` (issue 25): each against scipy or the textbook formula on the same data"
import warnings
import numpy as np, pandas as pd, pytest, scipy.stats, scipy.spatial.distance
from hypothesis import given, settings, HealthCheck, strategies as st
from fastai.tabular.all import TabularPandas, Categorify
from fastai_scaling.drift import DriftNormalize
from fastai_scaling.drift_stats import (jensen_shannon, hellinger, l_infinity, wasserstein, normed_wasserstein, chi2_pvalue,
                                        z_test_pvalue, ks_pvalue, auto_method, dataset_drift, reference_thresholds)

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
NUMS, CATS = ['a', 'b'], ['k', 'bin']


def make_df(n, seed=0, shift=0., p=(.5, .3, .2), extra=None):
    r = np.random.default_rng(seed)
    df = pd.DataFrame({'a': (r.normal(size=n) + shift).astype(np.float32), 'b': r.exponential(size=n).astype(np.float32),
                       'k': r.choice(['x', 'y', 'z'] + ([extra] if extra else []), n, p=list(p) + ([.1] if extra else [])) if extra is None
                            else r.choice(['x', 'y', 'z', extra], n, p=[.4, .3, .2, .1]),
                       'bin': r.choice(['u', 'v'], n, p=[.6, .4]),
                       'date': pd.date_range('2024-01-01', periods=n, freq='h'), 'y': r.normal(size=n)})
    return df


def make_proc(train, categorify=False, **kw):
    procs = ([Categorify] if categorify else []) + [DriftNormalize(**kw)]
    to = TabularPandas(train, procs=procs, cont_names=NUMS, cat_names=CATS, y_names='y', splits=[list(range(len(train))), []],
                       reduce_memory=False)
    return to.procs.drift_normalize, to


# ---------------------------------------------------------------- the pure statistics against scipy / textbook formulas

shares = st.lists(st.floats(0, 10), min_size=1, max_size=12).filter(lambda v: sum(v) > 0)

@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_binned_distances_equal_scipy_and_textbook(data):
    p = np.array(data.draw(shares)); q = np.array(data.draw(st.lists(st.floats(0, 10), min_size=len(p), max_size=len(p)).filter(lambda v: sum(v) > 0)))
    assert jensen_shannon(p, q) == pytest.approx(scipy.spatial.distance.jensenshannon(p, q), abs=1e-9)
    assert jensen_shannon(p, q, base=2) == pytest.approx(scipy.spatial.distance.jensenshannon(p, q, base=2), abs=1e-9)
    P, Q = p / p.sum(), q / q.sum()
    assert hellinger(p, q) == pytest.approx(np.sqrt(max(0, 1 - np.sum(np.sqrt(P * Q)))), abs=1e-7)   # 1 - BC form loses digits near 0
    assert hellinger(p, q) == pytest.approx(np.linalg.norm(np.sqrt(P) - np.sqrt(Q)) / np.sqrt(2), abs=1e-12)
    assert l_infinity(p, q) == pytest.approx(np.abs(P - Q).max(), abs=1e-12)
    # symmetric, bounded, zero on identical shares
    for f, bound in [(jensen_shannon, np.sqrt(np.log(2))), (hellinger, 1.), (l_infinity, 1.)]:
        assert f(p, q) == pytest.approx(f(q, p), abs=1e-12) and 0 <= f(p, q) <= bound + 1e-12 and f(p, p) == 0


@settings(max_examples=60, deadline=None)
@given(u=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60), v=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60))
def test_wasserstein_equals_scipy(u, v):
    u, v = np.array(u), np.array(v)
    assert wasserstein(u, v) == pytest.approx(scipy.stats.wasserstein_distance(u, v), rel=1e-9, abs=1e-9)
    assert wasserstein(u, v) == pytest.approx(wasserstein(v, u), rel=1e-12, abs=1e-12) and wasserstein(u, u.copy()) == 0
    sd = u.std()
    if sd > 0: assert normed_wasserstein(u, v, sd) == pytest.approx(scipy.stats.wasserstein_distance(u, v) / sd, rel=1e-9, abs=1e-9)


def test_p_values_equal_scipy_and_the_z_formula():
    r = np.random.default_rng(1)
    ref, new = np.array([500, 300, 200]), np.array([130, 95, 75])
    assert chi2_pvalue(ref / ref.sum(), new) == pytest.approx(scipy.stats.chisquare(new, ref * new.sum() / ref.sum()).pvalue, rel=1e-9)
    u, v = r.normal(size=400), r.normal(.2, 1, size=700)
    assert ks_pvalue(u, v) == pytest.approx(scipy.stats.ks_2samp(u, v).pvalue, rel=1e-12)
    # the two-proportion z-test with pooled variance, written out
    p1, n1, p2, n2 = .6, 800, .52, 300
    P = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(P * (1 - P) * (1 / n1 + 1 / n2))
    assert z_test_pvalue(p1, n1, p2, n2) == pytest.approx(2 * (1 - scipy.stats.norm.cdf(abs(z))), rel=1e-9)
    assert z_test_pvalue(1., 10, 1., 10) == 1.


def test_auto_method_is_evidentlys_table():
    assert [auto_method(1000, 6), auto_method(1001, 6), auto_method(1000, 5), auto_method(1001, 5), auto_method(10, 2),
            auto_method(1000, 3, True), auto_method(1001, 2, True)] == ['ks_pvalue', 'wasserstein', 'chi2', 'jensen_shannon', 'z', 'chi2', 'jensen_shannon']


def test_dataset_drift_share_and_reference_thresholds():
    r = pd.DataFrame({'drifted': [True, True, False]}, index=['a', 'b', 'c'])
    assert dataset_drift(r, .66)['drifted'] and not dataset_drift(r, .67)['drifted'] and dataset_drift(r)['n_drifted'] == 2
    with pytest.raises(ValueError, match='drift_share'): dataset_drift(r, 0)
    s = [.1, .2, .15, .3]
    assert reference_thresholds(s) == pytest.approx((np.mean(s) - 3 * np.std(s), np.mean(s) + 3 * np.std(s)))


# ---------------------------------------------------------------- DriftNormalize's numeric statistics on the same data

def test_numeric_statistics_equal_scipy_on_the_same_data():
    "Reference and batch within sample_size rows: Wasserstein exactly scipy's / np.std(reference); JS and Hellinger on the documented bins"
    train, new = make_df(800), make_df(600, seed=1, shift=.4)
    p, _ = make_proc(train, n_bins=10)
    rep = p.drift_scores(new)
    for c in NUMS:
        x, y = train[c].to_numpy(np.float64), new[c].to_numpy(np.float64)
        assert rep.loc[c, 'wasserstein'] == pytest.approx(scipy.stats.wasserstein_distance(x, y) / np.std(x), rel=1e-9)
        edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)[1:-1], method='inverted_cdf'))      # the documented bin rule
        ref, cur = np.bincount(np.searchsorted(edges, x), minlength=len(edges) + 1), np.bincount(np.searchsorted(edges, y), minlength=len(edges) + 1)
        assert rep.loc[c, 'jensen_shannon'] == pytest.approx(scipy.spatial.distance.jensenshannon(ref, cur), abs=1e-9)
        P, Q = ref / ref.sum(), cur / cur.sum()
        assert rep.loc[c, 'hellinger'] == pytest.approx(np.sqrt(((np.sqrt(P) - np.sqrt(Q))**2).sum() / 2), abs=1e-9)
        # 800 reference rows: Evidently's KS test
        assert rep.loc[c, 'method'] == 'ks_pvalue'
        assert rep.loc[c, 'score'] == pytest.approx(scipy.stats.ks_2samp(x, y).pvalue, rel=1e-9)
    assert rep.loc['a', 'drifted'] and not rep.loc['b', 'drifted']


def test_auto_switches_to_normed_wasserstein_above_1000_rows():
    p, _ = make_proc(make_df(3000))
    rep = p.drift_scores(make_df(2000, seed=2, shift=.3))
    assert rep.loc[NUMS, 'method'].tolist() == ['wasserstein'] * 2 and rep.loc[CATS, 'method'].tolist() == ['jensen_shannon'] * 2
    assert (rep['threshold'] == .1).all() and rep.loc['a', 'drifted'] and not rep.loc['b', 'drifted']
    assert (rep['score'] == [rep.loc[c, m] for c, m in rep['method'].items()]).all()


def test_thresholds_overridable_per_column_and_per_statistic():
    p, _ = make_proc(make_df(3000))
    new = make_df(2000, seed=2, shift=.3)
    rep = p.drift_scores(new, thresholds={'a': .9, 'jensen_shannon': 1e-9})
    assert rep.loc['a', 'threshold'] == .9 and not rep.loc['a', 'drifted']
    assert (rep.loc[CATS, 'threshold'] == 1e-9).all() and rep.loc[CATS, 'drifted'].all()
    rep = p.drift_scores(new, method='psi')
    assert (rep['method'] == 'psi').all() and (rep['score'] == rep['psi']).all() and (rep['threshold'] == .1).all()
    with pytest.raises(ValueError, match="'nope'"): p.drift_scores(new, stats=['nope'])
    with pytest.raises(ValueError, match="thresholds"): p.drift_scores(new, thresholds={'zz': 1})


# ---------------------------------------------------------------- categorical columns

def evidently_shares(ref, cur):
    "Evidently's `get_binned_data` for a categorical column (without feel_zeroes): shares over the union of seen categories"
    keys = sorted(set(ref.dropna()) | set(cur.dropna()))
    return (np.array([(ref == k).sum() for k in keys]) / ref.notna().sum(), np.array([(cur == k).sum() for k in keys]) / cur.notna().sum(), keys)


@pytest.mark.parametrize('categorify', [False, True])
def test_categorical_statistics_equal_the_references(categorify):
    train, new = make_df(3000), make_df(1000, seed=3, p=(.3, .3, .4))
    new.loc[::50, 'k'] = None
    p, _ = make_proc(train, categorify=categorify)
    rep = p.drift_scores(new)       # raw labels, whether or not Categorify ran before the proc
    k = rep.loc['k']
    ref, cur, _ = evidently_shares(train['k'], new['k'])
    vr, vc = train['k'].value_counts(), new['k'].value_counts()
    f_obs = vc[vr.index].to_numpy(); f_exp = vr.to_numpy() * f_obs.sum() / vr.sum()
    assert k['chi2'] == pytest.approx(scipy.stats.chisquare(f_obs, f_exp).pvalue, rel=1e-9, abs=1e-300)
    assert k['jensen_shannon'] == pytest.approx(scipy.spatial.distance.jensenshannon(ref, cur), abs=1e-9)
    assert k['hellinger'] == pytest.approx(np.sqrt(((np.sqrt(ref) - np.sqrt(cur))**2).sum() / 2), abs=1e-9)
    assert k['l_infinity'] == pytest.approx(np.abs(ref - cur).max(), abs=1e-12)
    assert k['unseen_share'] == 0 and k['nan_frac'] == pytest.approx(new['k'].isna().mean()) and k['n'] == new['k'].notna().sum()
    b = rep.loc['bin']      # binary, > 1,000 reference rows: Jensen-Shannon; the z-test is reported too
    pr, pc = (train['bin'] == 'u').mean(), (new['bin'] == 'u').mean()
    P = (pr * 3000 + pc * 1000) / 4000
    z = (pr - pc) / np.sqrt(P * (1 - P) * (1 / 3000 + 1 / 1000))
    assert b['z'] == pytest.approx(2 * scipy.stats.norm.sf(abs(z)), rel=1e-9) and b['method'] == 'jensen_shannon'


def test_codes_and_labels_give_the_same_scores():
    train, new = make_df(2000), make_df(700, seed=4, p=(.2, .5, .3))
    p, to = make_proc(train, categorify=True)
    t = to.new(new); t.process()       # the proc's own encoding: codes for the categorical columns
    a, b = p.drift_scores(new)[['chi2', 'jensen_shannon', 'hellinger', 'l_infinity', 'n']], p.drift_scores(t.items)[['chi2', 'jensen_shannon', 'hellinger', 'l_infinity', 'n']]
    pd.testing.assert_frame_equal(a.loc[CATS], b.loc[CATS])


def test_unseen_categories():
    "Categories the training split never had: their share, chi2 p = 0, and JS/Hellinger equal to Evidently's per-category union"
    train, new = make_df(3000), make_df(1000, seed=5, extra='w')
    new.loc[:9, 'k'] = 'v'            # a second unseen category
    p, _ = make_proc(train)
    k = p.drift_scores(new).loc['k']
    ref, cur, keys = evidently_shares(train['k'], new['k'])
    assert k['unseen_share'] == pytest.approx(new['k'].isin(['w', 'v']).mean()) and k['chi2'] == 0
    assert k['jensen_shannon'] == pytest.approx(scipy.spatial.distance.jensenshannon(ref, cur), abs=1e-9)
    assert k['hellinger'] == pytest.approx(np.sqrt(((np.sqrt(ref) - np.sqrt(cur))**2).sum() / 2), abs=1e-9)
    assert k['drifted']


def test_small_reference_categorical_tests():
    p, _ = make_proc(make_df(600))
    new = make_df(400, seed=6)
    rep = p.drift_scores(new)
    assert rep.loc['k', 'method'] == 'chi2' and rep.loc['bin', 'method'] == 'z'
    assert rep.loc['k', 'score'] == rep.loc['k', 'chi2'] and rep.loc['bin', 'score'] == rep.loc['bin', 'z']
    assert rep.loc['bin', 'drifted'] == (rep.loc['bin', 'z'] < .05) and rep.loc['k', 'drifted'] == (rep.loc['k', 'chi2'] < .05)
    assert p.drift_scores(make_df(400, seed=6, p=(.2, .2, .6))).loc['k', 'drifted']


def test_missing_categorical_column_is_named():
    p, _ = make_proc(make_df(500))
    with pytest.raises(KeyError, match=r"categorical column\(s\) \['bin'\]"): p.drift_scores(make_df(50).drop(columns='bin'))


# ---------------------------------------------------------------- no state change; update on dataset drift only

def test_scores_change_nothing_and_update_can_wait_for_dataset_drift():
    p, _ = make_proc(make_df(3000), strategy='cumulative', min_rows=1)
    before = dict(p.centers), {k: v.copy() for k, v in p.state.items()}
    new = make_df(2000, seed=7, shift=1.)
    for kw in ({}, dict(chunks=3), dict(period=('date', 'D'), reference=make_df(3000))): p.drift_scores(new, **kw)
    assert p.centers == before[0] and all((p.state[k] == v).all() for k, v in before[1].items()) and p.n_updates == 0
    rep = p.drift_scores(new)
    share = dataset_drift(rep)['share']           # 1 of 4 columns drifts
    assert share == .25
    r = p.update(new, drift_share=.5)
    assert not r['updated'].any() and p.centers == before[0] and p.n_updates == 1
    r = p.update(new, drift_share=.25)
    assert r['updated'].tolist() == [True, True, False, False] and p.centers['a'] != before[0]['a']


# ---------------------------------------------------------------- chunks

@pytest.mark.parametrize('kw,bounds', [(dict(chunks=3), [0, 334, 667, 1000]), (dict(chunk_size=400), [0, 400, 800, 1000])])
def test_chunk_rows_equal_scores_of_each_chunk(kw, bounds):
    p, _ = make_proc(make_df(3000))
    new = make_df(1000, seed=8, shift=.2)
    rep = p.drift_scores(new, **kw)
    assert rep.index.names == ['chunk', 'column'] and rep.index.get_level_values(0).unique().tolist() == [0, 1, 2]
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        pd.testing.assert_frame_equal(rep.loc[i], p.drift_scores(new.iloc[a:b]), check_names=False)
    d = dataset_drift(rep)
    assert d.index.tolist() == [0, 1, 2] and (d['n_columns'] == 4).all()


def test_period_chunks_and_chunked_sources():
    p, _ = make_proc(make_df(3000))
    new = make_df(24 * 40, seed=9)
    rep = p.drift_scores(new, period=('date', 'W'))
    weeks = new['date'].dt.to_period('W').astype(str)
    assert rep.index.get_level_values(0).unique().tolist() == list(dict.fromkeys(weeks))
    w = weeks.iloc[0]
    pd.testing.assert_frame_equal(rep.loc[w], p.drift_scores(new[weeks == w]), check_names=False)
    # the same chunks from an iterable of frames cut elsewhere: counts merge exactly
    cols = ['psi', 'jensen_shannon', 'hellinger', 'chi2', 'n', 'nan_frac']
    a = p.drift_scores([new.iloc[:100], new.iloc[100:777], new.iloc[777:]], chunk_size=300)
    b = p.drift_scores(new, chunk_size=300)
    pd.testing.assert_frame_equal(a[cols], b[cols])
    with pytest.raises(ValueError, match='chunk_size= or period='): p.drift_scores([new], chunks=2)
    with pytest.raises(ValueError, match='one of'): p.drift_scores(new, chunks=2, chunk_size=3)
    with pytest.raises(KeyError, match="'when'"): p.drift_scores(new, period=('when', 'M'))


def test_reference_chunk_thresholds_are_mean_plus_3_std():
    train = make_df(4000)
    p, _ = make_proc(train)
    new = make_df(2000, seed=10, shift=.3)
    rep = p.drift_scores(new, chunk_size=500, reference=train)
    ref_scores = [p.drift_scores(train.iloc[i:i + 500]).loc['a', 'wasserstein'] for i in range(0, 4000, 500)]
    hi = np.mean(ref_scores) + 3 * np.std(ref_scores)
    np.testing.assert_allclose(rep.xs('a', level='column')['threshold'], hi, rtol=1e-12)
    assert rep.xs('a', level='column')['drifted'].all()
    assert (rep['drifted'] == (rep['score'] >= rep['threshold'])).all()
    with pytest.raises(ValueError, match='at least 2 chunks'): p.drift_scores(new, chunk_size=500, reference=train.iloc[:400])


def test_plot_draws_scores_chunks_and_histograms():
    import matplotlib; matplotlib.use('Agg')
    p, _ = make_proc(make_df(3000))
    new = make_df(1000, seed=11, shift=1., extra='w')
    fig = p.plot(p.drift_scores(new), new)
    assert [a.get_title() for a in fig.axes[1:]] == ['a', 'k']          # the drifting columns' distributions
    assert len(p.plot(p.drift_scores(new, chunks=3)).axes) == 4          # a panel per column


@pytest.mark.parametrize('how', [dict(chunk_size=300), dict(chunks=3), dict(period=('date', 'D'))])
def test_chunks_of_a_dask_dataframe_equal_the_in_memory_chunks(how):
    import dask.dataframe as dd
    p, _ = make_proc(make_df(3000))
    new = make_df(1000, seed=12, shift=.3)
    cols = ['psi', 'jensen_shannon', 'hellinger', 'chi2', 'l_infinity', 'unseen_share', 'n', 'nan_frac']
    pd.testing.assert_frame_equal(p.drift_scores(dd.from_pandas(new, npartitions=3), **how)[cols], p.drift_scores(new, **how)[cols])
