"""PiecewiseLinearEncode (issue 23): bin edges against rtdl_num_embeddings' `compute_bins` (quantile: exactly; tree: same
settings and seed), the encoding against its `PiecewiseLinearEncoding`, ties and constant columns, bad input, the
encoding's properties (hypothesis), and the fastai flows with the encoding in the model: tabular_learner and a Learner
built by hand, predict, get_preds, show_results, test_dl, export/load_learner in a fresh process, TensorTabDataLoader,
cols= beside other scalers, every device torch has here, ParameterMonitor.raw_weights against a finite difference,
from_data, compare by name."""
import subprocess, sys, textwrap, warnings
import numpy as np, pandas as pd, pytest, torch
from hypothesis import given, settings, HealthCheck, strategies as st
from hypothesis.extra import numpy as hnp
from rtdl_num_embeddings import compute_bins, PiecewiseLinearEncoding
from fastai.tabular.all import (TabularPandas, Categorify, FillMissing, Normalize, CategoryBlock, RegressionBlock, MultiCategoryBlock,
                                RandomSplitter, TabDataLoader, tabular_learner, tabular_config, TabularModel, TabularLearner, get_emb_sz, load_learner,
                                set_seed, MSELossFlat)
from torch import nn
import fastai_scaling.patches as our_patches
from fastai_scaling.encode import (PiecewiseLinearEncode, PiecewiseLinearLayer, PiecewiseLinearInputs, ple_model, ple_proc, TREE_DEFAULTS)
from fastai_scaling.procs import RobustNormalize, StandardNormalize
from fastai_scaling.transforms import QuantileNormalize
from fastai_scaling.monitor import ParameterMonitor
from fastai_scaling.loader import TensorTabDataLoader
from fastai_scaling.compare import compare_scalers, resolve_scalers

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
pytestmark = pytest.mark.filterwarnings('ignore:.*has just two bin edges')   # rtdl's note on a column of one bin (ours: binary columns)


def table(n=2000, seed=0):
    "Numeric columns of several shapes (ties, a binary and a constant column), a category, a regression and a class target"
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'a': rng.normal(size=n), 'b': rng.lognormal(3, 1, n), 'c': rng.integers(0, 6, n).astype(float),
                       'd': rng.uniform(1990, 2020, n), 'flag': rng.integers(0, 2, n).astype(float), 'k': rng.choice(['u', 'v', 'w'], n)})
    df['y'] = np.sin(2 * df.a) + np.log(df.b) / 3 + (df.k == 'u') + rng.normal(size=n) * .1
    df['cls'] = np.where(df.y > df.y.median(), 'hi', 'lo')
    return df

SPLITS = lambda df: (list(range(int(.8 * len(df)))), list(range(int(.8 * len(df)), len(df))))
CONTS = ['a', 'b', 'c', 'd', 'flag']

def make(df, proc=None, y='y', conts=CONTS, procs=(Categorify,), **kw):
    return TabularPandas(df, procs=[*procs, proc if proc is not None else PiecewiseLinearEncode()], cat_names=['k'], cont_names=conts,
                         y_names=y, splits=SPLITS(df), **kw)

def train_rows(to, names): return torch.tensor(to.train.items[names].to_numpy())

def rtdl64(bins, x):
    "rtdl_num_embeddings' PiecewiseLinearEncoding built and run in float64: its parameters are made in the default dtype"
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try: return PiecewiseLinearEncoding([torch.as_tensor(b, dtype=torch.float64) for b in bins])(x.double())
    finally: torch.set_default_dtype(default)


# ---- the edges ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('n_bins', [2, 7, 48, 100])
def test_quantile_edges_equal_compute_bins_exactly(n_bins):
    df = table()
    to = make(df, PiecewiseLinearEncode(n_bins=n_bins))
    p = to.procs.piecewise_linear_encode
    names = ['a', 'b', 'c', 'd', 'flag']
    ref = compute_bins(train_rows(to, names), n_bins)        # the frame's float32 training values, as TabularPandas holds them
    for j, n in enumerate(names): np.testing.assert_array_equal(p.bins[n], ref[j].double().numpy(), err_msg=n)
    assert len(p.bins['c']) == min(n_bins, 5) + 1 and len(p.bins['flag']) == 2   # ties: one edge per distinct quantile (binary: one bin)

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=hnp.arrays(np.float32, st.integers(3, 400), elements=st.floats(-1e6, 1e6, width=32)), n_bins=st.integers(2, 60))
def test_quantile_edges_equal_compute_bins_on_any_column(x, n_bins):
    "Any size, any ties: torch.quantile's rank and interpolation arithmetic, to the bit"
    if len(np.unique(x)) < 2 or n_bins >= len(x): return          # what compute_bins refuses (ours: see the constant column)
    (edges,) = PiecewiseLinearEncode(n_bins=n_bins).fit_state(x)
    np.testing.assert_array_equal(edges, compute_bins(torch.as_tensor(x[:, None]), n_bins)[0].double().numpy())

def test_a_float64_column_is_binned_on_its_float32_values():
    "The model reads float32: a float64 column's edges are compute_bins' on its float32 values, and distinct in float32"
    rng = np.random.default_rng(1)
    df = pd.DataFrame({'t': 1e7 + rng.normal(size=3000) * 50, 'y': 0.})
    to = TabularPandas(df, procs=[PiecewiseLinearEncode()], cont_names=['t'], y_names='y', reduce_memory=False, splits=SPLITS(df))
    assert to.items['t'].dtype == np.float64
    edges = to.procs.piecewise_linear_encode.bins['t']
    ref = compute_bins(torch.tensor(df.t.values[:2400, None], dtype=torch.float32), 48)[0]
    np.testing.assert_array_equal(edges, ref.double().numpy())
    assert (np.diff(edges.astype(np.float32)) > 0).all()

@pytest.mark.parametrize('target', ['y', 'cls'])
def test_tree_edges_equal_compute_bins_with_the_same_settings(target):
    df = table(3000)
    kw = dict(min_samples_leaf=30, min_impurity_decrease=1e-5, random_state=3)
    to = make(df, PiecewiseLinearEncode(n_bins=20, bins='tree', tree_kwargs=kw), y=target)
    p = to.procs.piecewise_linear_encode
    y = to.train.items[target].to_numpy()
    regression = target == 'y'
    ref = compute_bins(train_rows(to, CONTS), 20, tree_kwargs=kw, y=torch.as_tensor(y.astype(np.float64 if regression else np.int64)),
                       regression=regression)
    for j, n in enumerate(CONTS): np.testing.assert_array_equal(p.bins[n], ref[j].double().numpy(), err_msg=n)
    assert 3 < len(p.bins['a']) <= 21                              # a tree of the target: fewer bins where it stops splitting
    assert p.tree_kwargs == kw

def test_tree_defaults_and_options():
    p = PiecewiseLinearEncode(bins='tree')
    assert p.tree_kwargs == TREE_DEFAULTS == dict(min_samples_leaf=64, min_impurity_decrease=1e-4)
    for kw, message in [(dict(max_leaf_nodes=4), 'must not set max_leaf_nodes'), (dict(leaves=3), "tree_kwargs: .*'leaves'")]:
        with pytest.raises(ValueError, match=message): PiecewiseLinearEncode(bins='tree', tree_kwargs=kw)
    with pytest.raises(ValueError, match='tree_kwargs are options of bins=.tree.'): PiecewiseLinearEncode(tree_kwargs={})
    with pytest.raises(ValueError, match="bins must be 'quantile' or 'tree'"): PiecewiseLinearEncode(bins='kmeans')
    with pytest.raises(ValueError, match='n_bins=1 must be an integer >= 2'): PiecewiseLinearEncode(n_bins=1)


# ---- constant columns and ties ------------------------------------------------------------------------------------

def test_a_constant_column_gets_one_bin_of_unit_width():
    "compute_bins refuses a column with one distinct value; here it gets one bin [c, c + 1]: new values encode as x - c"
    df = table(500).assign(d=2021.)
    with pytest.raises(ValueError, match='at least two distinct values'): compute_bins(torch.tensor(df[['d']].values), 48)
    to = make(df)
    p = to.procs.piecewise_linear_encode
    np.testing.assert_array_equal(p.bins['d'], [2021., 2022.])
    x = torch.tensor(to.items[CONTS].to_numpy(), dtype=torch.float32)
    j = sum(len(p.bins[n]) - 1 for n in CONTS[:3])                  # d's one component
    e = p.encode_tensor(x)
    assert e.shape[1] == sum(len(p.bins[n]) - 1 for n in CONTS) and (e[:, j] == 0).all()
    np.testing.assert_allclose(p.encode_tensor(x[:2].clone().fill_(2024.))[:, j].numpy(), [3., 3.])

def test_ties_give_fewer_bins_and_a_binary_column_is_min_max():
    df = table(1000)
    p = make(df).procs.piecewise_linear_encode
    layer = p.layer()
    test_x = torch.tensor([[0., 20., 2.5, 2000., 0.], [0., 20., 2.5, 2000., 1.]])
    e = layer.encode(test_x)
    assert layer.n_bins == [48, 48, 5, 48, 1]
    np.testing.assert_array_equal(e[:, -1].numpy(), [0., 1.])         # flag: (x - 0) / 1, no clamp
    np.testing.assert_allclose(e[0, 96:101].numpy(), [1., 1., .5, 0., 0.])   # c = 2.5 in bins [0,1] [1,2] [2,3] [3,4] [4,5]


# ---- the encoding -------------------------------------------------------------------------------------------------

def test_encoding_equals_rtdl_piecewise_linear_encoding():
    df = table(3000)
    to = make(df, PiecewiseLinearEncode(cols=['a', 'b', 'd']))
    p = to.procs.piecewise_linear_encode
    x = torch.tensor(to.valid.items[CONTS].to_numpy(), dtype=torch.float32)
    x = torch.cat([x, x * 3 - 1])                                     # and values outside the training range
    ours = p.encode_tensor(x)
    assert ours.dtype == torch.float32 and ours.shape == (len(x), 48 * 3 + 2)
    enc = [0, 1, 3]                                                   # a, b, d, then c and flag passed through
    cols = np.r_[0:48, 48:96, 97:145]
    bins = [p.bins[n] for n in ('a', 'b', 'd')]
    # rtdl in float64 (its parameters made in float64): the encoding of the same float32 values, to 1e-6
    # (relative beyond [0, 1]: outside the training range the first and last components extrapolate, to ~6,000 here)
    np.testing.assert_allclose(ours[:, cols].double().numpy(), rtdl64(bins, x[:, enc]).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ours[:, [96, 145]].numpy(), x[:, [2, 4]].numpy())   # the others as they are
    # rtdl in float32 computes x * (1 / width) - left / width: on a column of standard scale that is also within 1e-6
    np.testing.assert_allclose(ours[:, :48].numpy(), PiecewiseLinearEncoding([torch.as_tensor(bins[0], dtype=torch.float32)])(x[:, :1]).numpy(),
                               rtol=0, atol=1e-6)

def test_encoding_keeps_float32_precision_where_rtdls_float32_arithmetic_loses_it():
    "Years: x / width is ~3,000, so rtdl's float32 multiply-add is off by ~1e-4; (x - left) / width is within float32 rounding"
    df = table(3000)
    p = make(df, PiecewiseLinearEncode(cols=['d'])).procs.piecewise_linear_encode
    x = torch.tensor(df[CONTS].to_numpy()[2400:], dtype=torch.float32)
    ours = p.encode_tensor(x)[:, 3:51].double()
    exact = rtdl64([p.bins['d']], x[:, 3:4])
    rtdl32 = PiecewiseLinearEncoding([torch.as_tensor(p.bins['d'], dtype=torch.float32)])(x[:, 3:4]).double()
    assert (ours - exact).abs().max() < 1e-6 < (rtdl32 - exact).abs().max()

@pytest.mark.parametrize('device', ['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
def test_encode_tensor_on_every_device_and_dtype(device):
    p = make(table(800)).procs.piecewise_linear_encode
    x = torch.tensor(table(50, seed=2)[CONTS].to_numpy())
    for dtype in (torch.float32, torch.float64):
        e = p.encode_tensor(x.to(device, dtype))
        assert e.device.type == device and e.dtype == dtype
        np.testing.assert_allclose(e.cpu().numpy(), p.encode_tensor(x.to(dtype)).numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(e.cpu().double().numpy(), rtdl64([p.bins[n] for n in CONTS], x).numpy(), rtol=1e-6, atol=1e-6 if dtype == torch.float64 else 1e-3)
    with pytest.raises(ValueError, match=r"column 'b' has missing or infinite values"):
        p.encode_tensor(x.to(device).index_fill(1, torch.tensor([1], device=device), float('nan')))
    with pytest.raises(ValueError, match=r'x_cont has 2 columns, the data 5'): p.encode_tensor(x[:, :2].to(device))

values = st.floats(-1e4, 1e4, allow_nan=False, width=32)

@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=hnp.arrays(np.float32, st.integers(2, 300), elements=values), new=hnp.arrays(np.float32, st.integers(2, 50), elements=values),
       n_bins=st.integers(2, 64))
def test_encoding_properties(train, new, n_bins):
    "Inside the training range every component lies in [0, 1]; each component, and a column's sum, is non-decreasing in x"
    (edges,) = PiecewiseLinearEncode(n_bins=n_bins).fit_state(train)
    layer = PiecewiseLinearLayer(['x'], [edges])
    x = torch.as_tensor(np.sort(np.r_[new, train]))[:, None]
    e = layer.encode(x)
    inside = ((x[:, 0] >= edges[0]) & (x[:, 0] <= edges[-1]))
    assert ((e[inside] >= 0) & (e[inside] <= 1)).all()
    assert (e.diff(dim=0) >= 0).all() and (e.sum(1).diff() >= 0).all()
    # the components of a value in bin t: 1 for the bins below, its position in bin t, 0 above (rtdl's definition)
    t = int(np.searchsorted(edges, edges[0] + (edges[-1] - edges[0]) / 3, side='right')) - 1
    mid = (edges[t] + edges[t + 1]) / 2
    want = np.r_[np.ones(t), (np.float32(mid) - edges[t]) / (edges[t + 1] - edges[t]), np.zeros(len(edges) - 2 - t)]
    np.testing.assert_allclose(layer.encode(torch.tensor([[mid]], dtype=torch.float32))[0].numpy(), want, atol=1e-5)


# ---- bad input ----------------------------------------------------------------------------------------------------

def test_missing_values_are_an_error_naming_the_column_and_fillmissing_fixes_them():
    df = table(600)
    df.loc[[3, 500], 'b'] = np.nan
    with pytest.raises(ValueError, match=r"column 'b' has 1 missing value\(s\) in the training split.*FillMissing"): make(df)
    to = make(df, procs=(Categorify, FillMissing))
    assert 'b_na' in to.cat_names and not to.items[CONTS].isna().any().any()
    clean = make(df.fillna({'b': 20.}))
    with pytest.raises(ValueError, match=r"column 'b' has 1 missing value\(s\).*FillMissing"):
        clean.new(df.iloc[495:505].copy()).process()

def test_infinite_values_are_refused_naming_the_column():
    df = table(600)
    with pytest.raises(ValueError, match=r"column 'd' contains 1 infinite value\(s\)"): make(df.assign(d=np.r_[np.inf, df.d[1:]]))
    to = make(df)
    with pytest.raises(ValueError, match=r"column 'a' contains 1 infinite value\(s\)"):
        to.new(df.iloc[:5].assign(a=[0, 1, -np.inf, 2, 3])).process()

def test_tree_bins_need_one_target_of_numbers_or_categories():
    df = table(600)
    tree = lambda: PiecewiseLinearEncode(bins='tree')
    with pytest.raises(ValueError, match=r"target 'cls' holds labels that are not numbers, such as '(hi|lo)'.*RegressionBlock.*CategoryBlock"):
        make(df, tree(), y='cls', y_block=RegressionBlock())
    with pytest.raises(ValueError, match="the data has no target"): make(df, tree(), y=None)
    with pytest.raises(ValueError, match=r"2 targets \['y', 'cls'\]"): make(df.assign(cls=df.y * 2), tree(), y=['y', 'cls'])
    with pytest.raises(ValueError, match='multi-label'): make(df.assign(cls=df.k), tree(), y='cls', y_block=MultiCategoryBlock())
    p = make(df, tree(), y='cls').procs.piecewise_linear_encode                 # a text label in a CategoryBlock: classifier trees
    assert all(len(e) >= 2 for e in p.bins.values())

def test_values_the_model_cannot_hold_are_refused():
    to = make(table(600))
    with pytest.raises(ValueError, match=r"column 'a' has 1 value\(s\) such as 1e\+39 that the model cannot encode in float32"):
        to.new(table(5).assign(a=[0, 1e39, 0, 0, 0])).process()
    edges = to.procs.piecewise_linear_encode.bins['a']
    far = float(edges[-2] + 2 * (edges[-1] - edges[-2]) * float(np.finfo(np.float32).max))   # finite, but its last component is not
    with pytest.raises(ValueError, match=r"column 'a' has 1 value\(s\)"): to.new(table(5).assign(a=[0, far, 0, 0, 0])).process()

@pytest.mark.parametrize('kind', ['object', 'numeric text', 'Float64', 'Int64', 'Sparse[float64]', 'category of numbers', 'boolean'])
def test_numeric_dtypes_are_read_as_their_numbers(kind):
    "A column fastai could not make a tensor of becomes its numbers in the frame; the bins are those of the float column"
    df = table(300)
    v = df['c'].to_numpy() if kind != 'boolean' else df['flag'].to_numpy()
    make_col = {'object': lambda: pd.Series(v, dtype=object), 'numeric text': lambda: pd.Series([str(x) for x in v], dtype=object),
                'Float64': lambda: pd.Series(v).astype('Float64'), 'Int64': lambda: pd.Series(v).astype('Int64'),
                'Sparse[float64]': lambda: pd.Series(v).astype('Sparse[float64]'), 'category of numbers': lambda: pd.Series(v).astype('category'),
                'boolean': lambda: pd.Series(v.astype(bool)).astype('boolean')}[kind]
    ref = make(df.assign(c=v), conts=['a', 'c'], reduce_memory=False)
    other = make(df.assign(c=make_col().values), conts=['a', 'c'], reduce_memory=False)
    np.testing.assert_array_equal(other.procs.piecewise_linear_encode.bins['c'], ref.procs.piecewise_linear_encode.bins['c'])
    assert other.items['c'].dtype.kind == 'f'
    np.testing.assert_array_equal(other.items['c'].to_numpy(np.float64), v)
    dl = other.dataloaders(bs=64).valid
    assert next(iter(dl))[1].dtype == torch.float32


# ---- the fastai flows ---------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def trained():
    "A classifier on cats and PLE columns beside a robust-scaled one, fastai's tabular_learner unchanged"
    df = table(2000)
    to = make(df, PiecewiseLinearEncode(n_bins=16, cols=['a', 'b', 'd']), y='cls', procs=(Categorify, FillMissing, RobustNormalize(cols=['c'])))
    set_seed(0)
    learn = tabular_learner(to.dataloaders(bs=128), layers=[64, 32], cbs=ParameterMonitor())
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 1e-2)
    return df, to, learn

def test_tabular_learner_gets_the_encoding_in_its_model(trained):
    df, to, learn = trained
    p, m = ple_proc(learn.dls), learn.model
    assert p is to.procs.piecewise_linear_encode and not any(isinstance(cb, PiecewiseLinearInputs) for cb in learn.cbs)
    assert isinstance(m.bn_cont, PiecewiseLinearLayer) and isinstance(m.bn_cont.bn, nn.BatchNorm1d)   # bn_cont=True: a BatchNorm after
    n_ple = sum(len(p.bins[n]) - 1 for n in ('a', 'b', 'd'))
    assert m.bn_cont.n_out == n_ple + 2 and m.layers[0][0].in_features == m.n_emb + n_ple + 2 == learn.parameter_monitor.weights.shape[2]
    assert m.n_cont == 5 and learn.parameter_monitor.feature_names()[m.n_emb:m.n_emb + 3] == ['a[0]', 'a[1]', 'a[2]']
    preds, targs = learn.get_preds()
    assert (preds.argmax(1) == targs.ravel()).float().mean() > 0.8          # it learned the target (the data's best is ~0.95)

def test_predict_get_preds_show_results_test_dl(trained, monkeypatch):
    df, to, learn = trained
    with learn.no_bar():
        row, cls, probs = learn.predict(df.iloc[1700])
        preds, _ = learn.get_preds(dl=learn.dls.test_dl(df.iloc[1700:1710]))
    np.testing.assert_allclose(probs.numpy(), preds[0].numpy(), rtol=1e-5, atol=1e-6)
    assert row.decode().items['d'].iloc[0] == pytest.approx(df.d.iloc[1700], rel=1e-6)
    shown = []
    monkeypatch.setattr(our_patches, 'display_df', shown.append)
    with learn.no_bar(): learn.show_results(max_n=5)
    assert shown[-1]['d'].between(1990, 2020).all() and shown[-1]['k'].isin(['u', 'v', 'w']).all()   # original units

def test_export_and_load_learner_in_a_fresh_process(trained, tmp_path):
    df, to, learn = trained
    learn.export(tmp_path / 'model.pkl')
    df.iloc[1600:1620].to_csv(tmp_path / 'rows.csv', index=False)
    with learn.no_bar(): preds = learn.get_preds(dl=learn.dls.test_dl(df.iloc[1600:1620]))[0]
    code = textwrap.dedent(f"""
        import warnings; warnings.filterwarnings('ignore')
        import pandas as pd
        from fastai.tabular.all import load_learner
        learn = load_learner({str(tmp_path / 'model.pkl')!r})
        rows = pd.read_csv({str(tmp_path / 'rows.csv')!r})
        with learn.no_bar():
            p, _ = learn.get_preds(dl=learn.dls.test_dl(rows))
            one = learn.predict(rows.iloc[0])[2]
        print('PREDS', ' '.join(f'{{v:.7f}}' for v in p[:, 0].tolist()))
        print('ONE', float(one[0]))
        print('LAYER', type(learn.model.bn_cont).__name__)""")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {l.split(' ', 1)[0]: l.split(' ', 1)[1] for l in out.stdout.splitlines() if l.startswith(('PREDS', 'ONE', 'LAYER'))}
    np.testing.assert_allclose([float(v) for v in lines['PREDS'].split()], preds[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(lines['ONE']), preds[0, 0].item(), rtol=1e-5, atol=1e-6)
    assert lines['LAYER'] == 'PiecewiseLinearLayer'

def test_tensor_loader_trains_the_same_model():
    df = table(1000)
    to = make(df, PiecewiseLinearEncode(n_bins=8))
    out = {}
    for dl_type in (TabDataLoader, TensorTabDataLoader):
        set_seed(1)
        dls = to.dataloaders(bs=64, dl_type=dl_type)
        set_seed(1)
        learn = tabular_learner(dls, layers=[16], n_out=1, config=dict(ps=0.2))
        with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-2)
        out[dl_type] = learn
    ref, ours = out[TabDataLoader], out[TensorTabDataLoader]
    assert ref.recorder.values == ours.recorder.values                 # the same batches: the same model, to the bit
    for a, b in zip(ref.model.parameters(), ours.model.parameters()): assert torch.equal(a, b)
    assert isinstance(ours.model.bn_cont, PiecewiseLinearLayer)

@pytest.mark.parametrize('config', [dict(), dict(bn_cont=False, use_bn=False), dict(lin_first=False), dict(ps=0.2, embed_p=0.1)])
def test_tabular_config_n_out_and_y_range(config):
    "What the first LinBnDrop holds (a BatchNorm of its inputs with lin_first=False) is rebuilt; y_range and n_out stay"
    df = table(600)
    to = make(df, PiecewiseLinearEncode(n_bins=8))
    learn = tabular_learner(to.dataloaders(bs=64), layers=[20, 10], config=config, y_range=(-2, 3), n_out=1)
    m, n = learn.model, learn.model.bn_cont.n_out
    assert (m.bn_cont.bn is not None) == config.get('bn_cont', True)
    if config.get('lin_first') is False: assert m.layers[0][0].num_features == m.n_emb + n
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    preds = learn.get_preds()[0]
    assert preds.shape == (120, 1) and preds.min() >= -2 and preds.max() <= 3

def test_a_learner_built_by_hand_and_other_models():
    df = table(600)
    to = make(df, PiecewiseLinearEncode(n_bins=8))
    dls = to.dataloaders(bs=64)
    model = TabularModel(get_emb_sz(to), len(to.cont_names), 1, [16])
    learn = TabularLearner(dls, model, loss_func=MSELossFlat(), cbs=PiecewiseLinearInputs())   # once, though also in defaults
    assert isinstance(model.bn_cont, PiecewiseLinearLayer) and model.layers[0][0].in_features == model.n_emb + model.bn_cont.n_out
    again = TabularLearner(dls, model, loss_func=MSELossFlat())               # a model that holds the layer is left as it is
    assert again.model.bn_cont is model.bn_cont
    with pytest.raises(TypeError, match=r"model \(Sequential\) is not a fastai TabularModel.*\.layer\(\)"):
        TabularLearner(dls, nn.Sequential(nn.Linear(5, 1)), loss_func=MSELossFlat())
    with pytest.raises(ValueError, match=r"reads 3 continuous column\(s\).*the data has 5"):
        TabularLearner(dls, TabularModel(get_emb_sz(to), 3, 1, [16]), loss_func=MSELossFlat())
    plain = make(df, Normalize)                                              # no PLE: the callback leaves at once
    learn = tabular_learner(plain.dataloaders(bs=64), layers=[8], n_out=1)
    assert isinstance(learn.model.bn_cont, nn.BatchNorm1d) and not any(isinstance(cb, PiecewiseLinearInputs) for cb in learn.cbs)

def test_cols_beside_other_scalers_are_claimed():
    df = table(600)
    with pytest.raises(ValueError, match=r"\['a'\] would be scaled twice, by PiecewiseLinearEncode\(cols=\['a'\]\) and by Normalize"):
        make(df, PiecewiseLinearEncode(cols=['a']), procs=(Categorify, Normalize))
    to = make(df, PiecewiseLinearEncode(cols=['a']), procs=(Categorify, StandardNormalize(cols=['b', 'c', 'd', 'flag'])))
    x = torch.tensor(to.valid.items[CONTS].to_numpy(), dtype=torch.float32)
    e = to.procs.piecewise_linear_encode.encode_tensor(x)
    np.testing.assert_array_equal(e[:, 48:].numpy(), x[:, 1:].numpy())       # the standardized columns as they come


# ---- ParameterMonitor ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('bn_cont', [False, True])
def test_raw_weights_are_the_slopes_of_the_first_layer_by_a_finite_difference(bn_cont):
    "raw_weights of an encoded column, per bin: d(pre-activation)/d(raw x) inside the bin; of a robust-scaled column its weight per raw unit"
    df = table(1500)
    to = make(df, PiecewiseLinearEncode(n_bins=6, cols=['a', 'd']), procs=(Categorify, RobustNormalize(cols=['b', 'c', 'flag'])))
    set_seed(0)
    learn = tabular_learner(to.dataloaders(bs=64), layers=[4], config=dict(bn_cont=bn_cont), n_out=1, cbs=ParameterMonitor())
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2)
    raw, m = learn.parameter_monitor.raw_weights(), learn.model.eval()
    p, rb = to.procs.piecewise_linear_encode, to.procs.robust_normalize
    first = m.layers[0][0]
    base = df[CONTS].iloc[[0]].to_numpy(np.float64).copy()
    def pre(j, v):
        "The first layer's pre-activation (units 0..3) at raw row `base` with column j set to v; embeddings left out"
        x = base.copy(); x[0, j] = v
        for k, n in enumerate(CONTS):
            if n in rb.centers: x[0, k] = (x[0, k] - rb.centers[n]) / rb.scales[n]
        with torch.no_grad(): return first(torch.cat([torch.zeros(1, m.n_emb), m.bn_cont(torch.tensor(x, dtype=torch.float32))], 1)).double().numpy()[0]
    for j, n in [(0, 'a'), (3, 'd')]:
        e = p.bins[n]
        for t in range(len(e) - 1):
            h = (e[t + 1] - e[t]) / 4
            mid = (e[t] + e[t + 1]) / 2
            fd = (pre(j, mid + h) - pre(j, mid - h)) / (2 * h)
            np.testing.assert_allclose(raw[f'{n}[{t}]'].to_numpy(), fd, rtol=2e-3, atol=1e-4 * np.abs(fd).max(), err_msg=f'{n}[{t}]')
        below = pre(j, e[0] - 1) - pre(j, e[0] - 2)            # below the first edge the first bin's slope goes on
        np.testing.assert_allclose(raw[f'{n}[0]'].to_numpy(), below, rtol=2e-3, atol=1e-4 * np.abs(below).max())
    fd = (pre(1, base[0, 1] + 1) - pre(1, base[0, 1] - 1)) / 2
    np.testing.assert_allclose(raw['b'].to_numpy(), fd, rtol=1e-3, atol=1e-6)
    # the bias: the pre-activation with the encoded columns at their first edges and the others at raw 0
    base[0] = [p.bins['a'][0], 0., 0., p.bins['d'][0], 0.]
    np.testing.assert_allclose(raw['bias'].to_numpy(), pre(0, base[0, 0]), rtol=1e-4, atol=1e-5)   # (embedding inputs at 0)
    assert raw.attrs['linearized'] == []


# ---- from_data and compare --------------------------------------------------------------------------------------

def test_from_data_exact_equals_the_in_memory_fit_and_sketched_is_close():
    df = table(3000)[CONTS].astype(np.float32)
    chunks = [df.iloc[i:i + 700] for i in range(0, 3000, 700)]
    memory = TabularPandas(df.assign(y=0.), procs=[PiecewiseLinearEncode()], cont_names=CONTS, y_names='y').procs.piecewise_linear_encode
    exact = PiecewiseLinearEncode.from_data(chunks, CONTS)
    for n in CONTS: np.testing.assert_array_equal(exact.bins[n], memory.bins[n], err_msg=n)
    sketched = PiecewiseLinearEncode.from_data(chunks, CONTS, exact=False)
    ranks = lambda n, e: np.searchsorted(np.sort(df[n].to_numpy()), e[1:-1].astype(np.float32)) / len(df)
    for n in ('a', 'b', 'd'): assert np.abs(ranks(n, sketched.bins[n]) - ranks(n, memory.bins[n])).max() < 0.02, n
    to = TabularPandas(df.assign(y=0.), procs=[exact], cont_names=CONTS, y_names='y')   # a preset: not refitted
    assert to.procs.piecewise_linear_encode is exact and exact.encoded == CONTS
    with pytest.raises(ValueError, match="bins='tree' fits a decision tree"): PiecewiseLinearEncode.from_data(chunks, CONTS, bins='tree')

def test_from_bins_takes_compute_bins():
    df = table(1000)
    bins = compute_bins(torch.tensor(df[['a', 'b']].values[:800], dtype=torch.float32), 10)
    p = PiecewiseLinearEncode.from_bins({'a': bins[0].numpy(), 'b': bins[1].numpy()}, cols=['a', 'b'])
    to = make(df, p)
    x = torch.tensor(to.valid.items[['a', 'b', 'c', 'd', 'flag']].to_numpy(), dtype=torch.float32)
    np.testing.assert_allclose(p.encode_tensor(x)[:, :20].double().numpy(), rtdl64(bins, x[:, :2]).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="the bins of column 'a' must be at least 2 finite, strictly increasing edges"):
        PiecewiseLinearEncode.from_bins({'a': [1., 1.]})

def test_compare_trains_ple_by_name_with_cats_and_fillmissing():
    df = table(800)
    df.loc[::50, 'b'] = np.nan
    assert list(resolve_scalers('ple')) == ['ple'] and resolve_scalers('PLE')['ple'] is PiecewiseLinearEncode
    res = compare_scalers(df, 'y', CONTS, cat_names=['k'], procs='Normalize,ple', epochs=2, progress=False)
    run = res.runs['ple']
    assert np.isfinite(run.valid_loss).all() and run.raw_weights.shape[1] == run.weights.shape[2] + 1
    assert {'a[0]', 'a[47]', 'flag[0]', 'k[0]'} <= set(run.raw_weights.columns)   # every column encoded; a binary one in one bin
