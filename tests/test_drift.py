"Tests for `fastai_scaling.drift`: drift scores, every update strategy, gating, atomicity, persistence"
import warnings
import numpy as np, pandas as pd, pytest, scipy.stats
from hypothesis import given, settings, HealthCheck, strategies as st
from sklearn.preprocessing import StandardScaler
from fastai.tabular.all import TabularPandas, tabular_learner, load_learner
from fastai_scaling.drift import DriftNormalize
from fastai_scaling.stats import ks_statistic

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
NAMES = ['a', 'b', 'c']


def make_df(n, shift=0., scale=1., seed=0, dtype='float64'):
    r = np.random.default_rng(seed)
    df = pd.DataFrame({'a': 10 + shift + 2 * scale * r.normal(size=n), 'b': r.normal(size=n), 'c': r.exponential(size=n)})
    df['y'] = df['b'] + r.normal(0, .1, n)
    return df.astype(dtype)


def make_proc(train=None, n=1000, splits=None, **kwargs):
    "A set-up `DriftNormalize` (and its TabularPandas); the first `n` rows are the training split unless `splits` says"
    df = make_df(n) if train is None else train
    splits = splits or [list(range(len(df))), []]
    to = TabularPandas(df, procs=[DriftNormalize(**kwargs)], cont_names=NAMES, y_names='y', splits=splits, reduce_memory=False)
    return to.procs.drift_normalize, to


def snapshot(p):
    return dict(p.centers), dict(p.scales), p.history.copy(), {k: v.copy() for k, v in p.state.items()}


def assert_same_state(p, snap):
    c, s, h, state = snap
    assert p.centers == c and p.scales == s
    pd.testing.assert_frame_equal(p.history, h)
    assert state.keys() == p.state.keys()
    for k in state: np.testing.assert_array_equal(p.state[k], state[k])


def test_reference_from_training_split_only():
    df = make_df(1000)
    df.loc[800:, 'a'] = 1e6                      # validation rows, never seen by setups
    p, _ = make_proc(df, splits=[list(range(800)), list(range(800, 1000))])
    assert p.centers['a'] == pytest.approx(df['a'][:800].mean())
    assert p.scales['a'] == pytest.approx(df['a'][:800].std(ddof=0))
    assert len(p.ref_sample['a']) == 800 and p.ref_sample['a'].dtype == np.float32
    assert (p.history['update'] == 0).all() and list(p.history.columns) == ['update', 'column', 'center', 'scale', 'score', 'updated']


def test_reference_sample_bounded_and_seeded():
    p1, _ = make_proc(make_df(5000), sample_size=300)
    p2, _ = make_proc(make_df(5000), sample_size=300)
    assert len(p1.ref_sample['a']) == 300
    np.testing.assert_array_equal(p1.ref_sample['a'], p2.ref_sample['a'])
    assert np.all(np.diff(p1.ref_sample['a']) >= 0)


def test_scores_same_vs_shifted():
    p, _ = make_proc(make_df(5000))
    same = p.drift_scores(make_df(5000, seed=1))
    assert (same['psi'] < 0.02).all() and (same['ks'] < 0.05).all() and (same['mean_shift'] < 0.05).all()
    moved = p.drift_scores(make_df(5000, shift=3, scale=2, seed=1))
    assert moved.loc['a', 'psi'] > 1 and moved.loc['a', 'ks'] > .4 and moved.loc['a', 'mean_shift'] == pytest.approx(1.5, abs=.1)
    assert moved.loc['b', 'psi'] < 0.02
    assert set(['psi', 'ks', 'mean_shift', 'n', 'nan_frac']) <= set(moved.columns) and list(moved.index) == NAMES


def test_ks_exact_on_small_batch_and_deterministic_on_large():
    p, _ = make_proc(make_df(2000), sample_size=10_000)
    new = make_df(500, shift=1, seed=3)
    ks = p.drift_scores(new).loc['a', 'ks']
    assert ks == pytest.approx(scipy.stats.ks_2samp(p.ref_sample['a'], new['a'].to_numpy()).statistic, abs=1e-9)
    q, _ = make_proc(make_df(2000), sample_size=200)
    big = make_df(5000, shift=1, seed=4)
    pd.testing.assert_frame_equal(q.drift_scores(big), q.drift_scores(big))


def test_psi_bins_and_nan_frac():
    p, _ = make_proc(make_df(1000), n_bins=10)
    assert len(p.bin_edges['a']) == 9 and p.ref_fracs['a'].sum() == pytest.approx(1)
    new = make_df(1000, seed=5); new.loc[:249, 'b'] = np.nan
    r = p.drift_scores(new)
    assert r.loc['b', 'nan_frac'] == pytest.approx(.25) and r.loc['b', 'n'] == 750 and r.loc['a', 'nan_frac'] == 0


def test_drift_scores_never_change_state():
    p, _ = make_proc(strategy='cumulative')
    snap = snapshot(p)
    for _ in range(2): p.drift_scores(make_df(300, shift=5, seed=6))
    assert_same_state(p, snap)


# ---------------------------------------------------------------- strategies

def chunks_of(seed=7):
    return [make_df(n, shift=s, scale=k, seed=seed + i) for i, (n, s, k) in enumerate([(300, 0, 1), (150, 2, 1.5), (700, 4, 3), (120, -1, .5)])]


def test_cumulative_equals_sklearn_partial_fit():
    train = make_df(1000)
    train.loc[::7, 'c'] = np.nan
    p, _ = make_proc(train, strategy='cumulative', min_rows=1)
    sk = StandardScaler().partial_fit(train[NAMES].to_numpy())
    for chunk in chunks_of():
        chunk.loc[::5, 'b'] = np.nan
        assert p.update(chunk)['updated'].all()
        sk.partial_fit(chunk[NAMES].to_numpy())
    np.testing.assert_allclose([p.centers[n] for n in NAMES], sk.mean_, rtol=1e-6)
    np.testing.assert_allclose([p.scales[n] for n in NAMES], sk.scale_, rtol=1e-6)
    np.testing.assert_array_equal(p.state['count'], sk.n_samples_seen_)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, 399), max_size=5, unique=True), seed=st.integers(0, 1000))
def test_cumulative_random_chunking_equals_one_shot(cuts, seed):
    train, new = make_df(200, seed=seed), make_df(400, shift=2, seed=seed + 1)
    p, _ = make_proc(train, strategy='cumulative', min_rows=1)
    for chunk in np.split(np.arange(400), sorted(cuts)): p.update(new.iloc[chunk])
    allx = pd.concat([train, new])[NAMES]
    np.testing.assert_allclose([p.centers[n] for n in NAMES], allx.mean(), rtol=1e-9)
    np.testing.assert_allclose([p.scales[n] for n in NAMES], allx.std(ddof=0), rtol=1e-7)


def test_ema_per_update_hand_computation():
    train = make_df(1000)
    p, _ = make_proc(train, strategy='ema', alpha=.2, min_rows=1)
    m, v = train[NAMES].mean().to_numpy(), train[NAMES].var(ddof=0).to_numpy()
    for chunk in chunks_of():
        p.update(chunk)
        x = chunk[NAMES].to_numpy(); d = x.mean(0) - m
        m, v = m + .2 * d, .8 * v + .2 * x.var(0) + .2 * .8 * d**2
    np.testing.assert_allclose([p.centers[n] for n in NAMES], m, rtol=1e-9)
    np.testing.assert_allclose([p.scales[n] for n in NAMES], np.sqrt(v), rtol=1e-9)


def test_ema_single_rows_is_river_adaptive_standard_scaler():
    "With one-row batches the per-update mixture is river's per-row EWMA: mean += a*d; var = (1-a)*(var + a*d^2)"
    train = make_df(200)
    p, _ = make_proc(train, strategy='ema', alpha=.1, min_rows=1)
    m, v = train['a'].mean(), train['a'].var(ddof=0)
    for i in range(20):
        row = make_df(1, seed=100 + i)
        p.update(row)
        d = row['a'].item() - m
        m, v = m + .1 * d, .9 * (v + .1 * d * d)
    assert p.centers['a'] == pytest.approx(m, rel=1e-10) and p.scales['a'] == pytest.approx(np.sqrt(v), rel=1e-10)


@pytest.mark.parametrize('window', [50, 300, 5000])
def test_window_is_exact_on_last_values(window):
    train = make_df(1000)
    p, _ = make_proc(train, strategy='window', window=window, min_rows=1)
    seen = [train[NAMES].to_numpy(np.float32)]
    for chunk in chunks_of():
        chunk.loc[::3, 'c'] = np.nan
        p.update(chunk); seen.append(chunk[NAMES].to_numpy(np.float32))
        allx = np.concatenate(seen)
        for j, n in enumerate(NAMES):
            col = allx[:, j]; last = col[~np.isnan(col)][-window:].astype(np.float64)
            assert p.centers[n] == pytest.approx(last.mean(), rel=1e-6, abs=1e-9)
            assert p.scales[n] == pytest.approx(last.std(), rel=1e-5)
    assert p.state['buf'].shape == (window, 3) and p.state['buf'].dtype == np.float32


def test_frozen_never_changes():
    p, _ = make_proc(strategy='frozen', min_rows=1)
    ref = dict(p.centers), dict(p.scales)
    for chunk in chunks_of():
        r = p.update(chunk)
        assert not r['updated'].any()
    assert (dict(p.centers), dict(p.scales)) == ref
    assert p.n_updates == 4 and len(p.history) == 3 * 5 and not p.history['updated'].any()


# ---------------------------------------------------------------- gating, history, reset

@pytest.mark.parametrize('metric', ['psi', 'ks', 'mean_shift'])
def test_threshold_gates_columns(metric):
    p, _ = make_proc(make_df(3000), strategy='cumulative', threshold=.3, metric=metric, min_rows=10)
    before = dict(p.centers)
    r = p.update(make_df(2000, shift=4, seed=9))
    assert r.loc['a', 'updated'] and not r.loc['b', 'updated'] and not r.loc['c', 'updated']
    assert p.centers['a'] != before['a'] and p.centers['b'] == before['b'] and p.centers['c'] == before['c']
    h = p.history[p.history['update'] == 1].set_index('column')
    assert h.loc['a', 'score'] == pytest.approx(r.loc['a', metric]) and h['updated'].tolist() == [True, False, False]


def test_min_rows_gates_on_non_missing_values():
    p, _ = make_proc(strategy='cumulative', min_rows=100)
    small = make_df(99, shift=5, seed=10)
    assert not p.update(small)['updated'].any()
    holey = make_df(150, shift=5, seed=11); holey.loc[:60, 'a'] = np.nan
    r = p.update(holey)
    assert r['updated'].tolist() == [False, True, True] and r.loc['a', 'n'] == 89


def test_reset_restores_reference_and_keeps_history():
    p, _ = make_proc(strategy='window', window=200, min_rows=1)
    ref = snapshot(p)
    p.update(make_df(500, shift=3, seed=12))
    assert p.centers != ref[0]
    p.reset()
    assert p.centers == ref[0] and p.scales == ref[1] and len(p.history) == 6
    for k in ref[3]: np.testing.assert_array_equal(p.state[k], ref[3][k])
    p.update(make_df(500, shift=3, seed=12)); p.reset(); p.update(make_df(100, seed=13))   # reset state is reusable


def test_zero_spread_after_update_gives_scale_one():
    p, _ = make_proc(strategy='window', window=50, min_rows=1)
    r = p.update(make_df(100, seed=14).assign(b=7.))
    assert r.loc['b', 'updated'] and p.scales['b'] == 1. and p.centers['b'] == 7.


def test_nan_never_reaches_statistics():
    for strategy, kw in [('cumulative', {}), ('ema', {}), ('window', {'window': 100})]:
        p, _ = make_proc(strategy=strategy, min_rows=1, **kw)
        new = make_df(300, seed=15); new.loc[::2, 'a'] = np.nan
        p.update(new)
        assert all(np.isfinite(v) for v in [*p.centers.values(), *p.scales.values()])


def test_plot_history_runs():
    import matplotlib; matplotlib.use('Agg')
    p, _ = make_proc(strategy='ema', threshold=.1)
    p.update(make_df(500, shift=2, seed=16))
    axs = p.plot_history()
    assert len(axs) == 3


# ---------------------------------------------------------------- bad input, atomicity

@pytest.mark.parametrize('method', ['update', 'drift_scores'])
@pytest.mark.parametrize('bad,exc,match', [
    (lambda d: d.drop(columns='b'), KeyError, "'b'"),
    (lambda d: d.assign(c='x'), TypeError, "'c' holds .* not numbers, such as 'x'"),
    (lambda d: d.assign(a=np.where(np.arange(len(d)) == 3, np.inf, d['a'])), ValueError, "'a' contains 1 infinite"),
])
def test_bad_input_names_the_column(method, bad, exc, match):
    p, _ = make_proc(strategy='cumulative', min_rows=1)
    snap = snapshot(p)
    with pytest.raises(exc, match=match): getattr(p, method)(bad(make_df(200, seed=17)))
    assert_same_state(p, snap)


def test_all_nan_column_warns_and_is_skipped():
    p, _ = make_proc(strategy='cumulative', min_rows=1)
    before = p.centers['b']
    with pytest.warns(UserWarning, match="'b'"): r = p.update(make_df(200, shift=3, seed=18).assign(b=np.nan))
    assert not r.loc['b', 'updated'] and np.isnan(r.loc['b', 'psi']) and r.loc['b', 'nan_frac'] == 1
    assert r.loc['a', 'updated'] and p.centers['b'] == before


def test_empty_frame_is_a_noop():
    p, _ = make_proc(strategy='cumulative', min_rows=1)
    snap = snapshot(p)
    for empty in (make_df(10).iloc[:0], pd.DataFrame()):
        r = p.update(empty)
        assert list(r.index) == NAMES and not r['updated'].any() and (r['n'] == 0).all()
        assert p.drift_scores(empty)['psi'].isna().all()
    assert_same_state(p, snap); assert p.n_updates == 0


def test_failed_update_is_atomic():
    "A batch whose third column is non-numeric leaves centers, scales, state and history untouched"
    p, _ = make_proc(strategy='window', window=100, min_rows=1)
    p.update(make_df(100, shift=1, seed=19))
    snap = snapshot(p)
    bad = make_df(300, shift=3, seed=20).assign(c=['x'] * 300)
    with pytest.raises(TypeError, match="'c'"): p.update(bad)
    assert_same_state(p, snap); assert p.n_updates == 1


@pytest.mark.parametrize('kwargs,match', [
    (dict(strategy='rolling'), "'rolling'"), (dict(metric='auc'), "'auc'"), (dict(alpha=0), 'alpha'),
    (dict(alpha=1.5), 'alpha'), (dict(strategy='window'), 'needs `window`'), (dict(strategy='window', window=0), 'window'),
    (dict(threshold=-.1), 'threshold'), (dict(min_rows=0), 'min_rows'), (dict(n_bins=1), 'n_bins'),
    (dict(sample_size=0), 'sample_size')])
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match): DriftNormalize(**kwargs)


def test_not_set_up():
    with pytest.raises(ValueError, match='not set up'): DriftNormalize().drift_scores(make_df(10))


def test_from_stats_is_the_reference():
    df = make_df(500)
    proc = DriftNormalize.from_stats({n: 0. for n in NAMES}, {n: 2. for n in NAMES}, strategy='cumulative', min_rows=1)
    to = TabularPandas(df, procs=[proc], cont_names=NAMES, y_names='y', splits=[list(range(500)), []])
    p = to.procs.drift_normalize
    assert p.centers['a'] == 0 and p.scales['a'] == 2
    p.update(make_df(500, seed=21))
    x = make_df(500, seed=21)['a']
    assert p.centers['a'] == pytest.approx(x.sum() / 1000)      # preset mean 0 weighted as the 500 training rows


# ---------------------------------------------------------------- encoding and persistence

def make_learner(**kwargs):
    p, to = make_proc(make_df(600), splits=[list(range(500)), list(range(500, 600))], **kwargs)
    learn = tabular_learner(to.dataloaders(bs=64), layers=[])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    return learn


def test_test_dl_deterministic_and_uses_current_stats():
    learn = make_learner(strategy='ema', alpha=.5, min_rows=1)
    drift = learn.dls.procs.drift_normalize
    new = make_df(100, shift=3, seed=22)
    snap = snapshot(drift)
    x1, x2 = learn.dls.test_dl(new).one_batch()[1], learn.dls.test_dl(new).one_batch()[1]
    assert (x1 == x2).all()
    assert_same_state(drift, snap)
    expected = (new['a'].to_numpy(np.float32)[:64] - drift.centers['a']) / drift.scales['a']
    np.testing.assert_allclose(x1[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    drift.update(new)
    x3 = learn.dls.test_dl(new).one_batch()[1]
    assert not (x3 == x1).all()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shift=st.floats(-50, 50), scale=st.floats(.1, 10), n=st.integers(1, 50))
def test_encoding_never_changes_state(shift, scale, n):
    p, to = make_proc(strategy='cumulative', min_rows=1)
    snap = snapshot(p)
    t = to.new(make_df(n, shift=shift, scale=scale, seed=n)); t.process()
    assert_same_state(p, snap)


def test_export_load_learner_roundtrip(tmp_path):
    learn = make_learner(strategy='window', window=300, threshold=.1, min_rows=10)
    drift = learn.dls.procs.drift_normalize
    for i in range(3): drift.update(make_df(200, shift=i, seed=23 + i))
    learn.export(tmp_path / 'drift.pkl')
    back = load_learner(tmp_path / 'drift.pkl').dls.procs.drift_normalize
    assert back.centers == drift.centers and back.scales == drift.scales and back.n_updates == 3
    pd.testing.assert_frame_equal(back.history, drift.history)
    new = make_df(200, shift=5, seed=30)
    pd.testing.assert_frame_equal(back.drift_scores(new), drift.drift_scores(new))
    pd.testing.assert_frame_equal(back.update(new), drift.update(new))
    assert back.centers == drift.centers


# ---------------------------------------------------------------- chunked batches: chunks, parquet, Dask, in one pass (issue 13)

def chunked(df, cuts, kind, tmp=None):
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(df))), len(df)]
    parts = [df.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    if kind == 'list': return parts
    if kind == 'generator': return (p for p in parts)
    if kind == 'parquet':
        for i, p in enumerate(parts): p.to_parquet(f'{tmp}/part-{i:03d}.parquet', index=False)
        return str(tmp)
    import dask, dask.dataframe as dd
    return dd.from_delayed([dask.delayed(p) for p in parts], meta=df.iloc[:0], verify_meta=False)


def holey(n, seed, shift=.5):
    df = make_df(n, shift=shift, seed=seed)
    r = np.random.default_rng(seed)
    for c in NAMES: df.loc[r.random(n) < .1, c] = np.nan
    return df


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 400), cuts=st.lists(st.integers(0, 400), max_size=5), seed=st.integers(0, 10_000),
       kind=st.sampled_from(['list', 'generator', 'parquet', 'dask']))
def test_chunked_scores_equal_the_in_memory_call(tmp_path_factory, n, cuts, seed, kind):
    pytest.importorskip('dask.dataframe')
    p, _ = make_proc(strategy='cumulative')
    new = holey(n, seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')      # an all-NaN column in a tiny batch warns, both ways
        a = p.drift_scores(chunked(new, cuts, kind, tmp_path_factory.mktemp('pq')))
        b = p.drift_scores(new)
    pd.testing.assert_frame_equal(a[['psi', 'ks', 'n', 'nan_frac']], b[['psi', 'ks', 'n', 'nan_frac']])   # PSI exactly; KS too (<= sample_size rows)
    np.testing.assert_allclose(a[['mean_shift', 'mean', 'std']], b[['mean_shift', 'mean', 'std']], rtol=1e-9)


def test_chunked_ks_within_the_sampling_bound():
    "More rows than sample_size: KS from a uniform sample of rows (bottom-k over chunks), within the DKW bound of the full batch's KS"
    p, _ = make_proc(n=3000, sample_size=500)
    new = make_df(20_000, shift=.3, seed=31)
    a = p.drift_scores([new.iloc[i:i + 3000] for i in range(0, 20_000, 3000)])
    full = [ks_statistic(p.ref_sample[c], new[c].to_numpy()) for c in NAMES]
    bound = np.sqrt(np.log(2 / 1e-3) / (2 * 500))      # DKW: P(sup |F_sample - F_batch| > bound) <= 1e-3
    assert (np.abs(a['ks'].to_numpy() - full) <= bound).all()
    assert (np.abs(p.drift_scores(new)['ks'].to_numpy() - full) <= bound).all()   # the in-memory call samples the same way
    pd.testing.assert_frame_equal(a, p.drift_scores([new.iloc[i:i + 3000] for i in range(0, 20_000, 3000)]))  # seeded


@pytest.mark.parametrize('kwargs', [dict(strategy='cumulative'), dict(strategy='ema', alpha=.2), dict(strategy='window', window=700),
                                    dict(strategy='window', window=5000), dict(strategy='frozen'),
                                    dict(strategy='cumulative', threshold=0.05, metric='psi')])
def test_chunked_update_equals_the_in_memory_update(kwargs):
    p1, _ = make_proc(min_rows=1, **kwargs)
    p2, _ = make_proc(min_rows=1, **kwargs)
    for i, batch in enumerate([holey(1500, 32), holey(800, 33, shift=2.), holey(3000, 34, shift=-1.)]):
        r1 = p1.update([batch.iloc[:300], batch.iloc[300:301], batch.iloc[301:]])
        r2 = p2.update(batch)
        pd.testing.assert_frame_equal(r1[['psi', 'ks', 'n', 'updated']], r2[['psi', 'ks', 'n', 'updated']])
        for d1, d2 in ((p1.centers, p2.centers), (p1.scales, p2.scales)):
            np.testing.assert_allclose([d1[c] for c in NAMES], [d2[c] for c in NAMES], rtol=1e-9)
        for k in p1.state:
            if k in ('buf', 'fill', 'pos'): np.testing.assert_array_equal(p1.state[k], p2.state[k])   # the window: the same values
            else: np.testing.assert_allclose(p1.state[k], p2.state[k], rtol=1e-9)
    assert p1.n_updates == p2.n_updates == 3


def test_chunked_update_is_atomic_and_names_the_chunk():
    p, _ = make_proc(strategy='window', window=100, min_rows=1)
    p.update(make_df(100, shift=1, seed=35))
    snap = snapshot(p)
    good, bad = make_df(300, shift=3, seed=36), make_df(300, shift=3, seed=37)
    bad.loc[bad.index[7], 'b'] = np.inf
    with pytest.raises(ValueError, match=r"DriftNormalize.update: chunk 2: column 'b' contains 1 infinite"):
        p.update((c for c in [good, good, bad, good]))      # two good chunks read before the bad one
    with pytest.raises(TypeError, match=r"chunk 1: Continuous column 'c' holds"):
        p.update([good, good.assign(c='x')])
    with pytest.raises(KeyError, match=r"chunk 1: continuous column\(s\) \['a'\] are missing"):
        p.drift_scores([good, good.drop(columns='a')])
    assert_same_state(p, snap); assert p.n_updates == 1


def test_empty_chunks_are_a_noop():
    p, _ = make_proc(strategy='cumulative', min_rows=1)
    snap = snapshot(p)
    for empty in ([], [make_df(5).iloc[:0]], (c for c in [])):
        r = p.update(empty)
        assert not r['updated'].any() and (r['n'] == 0).all() and r['psi'].isna().all()
    assert_same_state(p, snap); assert p.n_updates == 0
