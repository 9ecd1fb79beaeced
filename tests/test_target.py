"""TargetNormalize (issue 21): round trips of every method, scikit-learn's TransformedTargetRegressor as reference, bad
input, and the fastai flows that must answer in original units (metrics, get_preds, predict, show_results, test_dl
without targets, Interpretation, export/load_learner in a fresh process, multi-target, TensorTabDataLoader, the
input scalers, ParameterMonitor.raw_weights)."""
import subprocess, sys, textwrap, warnings
import numpy as np, pandas as pd, pytest, torch
from hypothesis import given, settings, HealthCheck, strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, RobustScaler, PowerTransformer, QuantileTransformer, FunctionTransformer
from fastai.tabular.all import (TabularPandas, Normalize, Categorify, FillMissing, CategoryBlock, RegressionBlock, tabular_learner,
                                rmse, mae, R2Score, set_seed, Interpretation, Callback, MSELossFlat, L1LossFlat)
from torch import nn
from torch.nn import HuberLoss
from fastai_scaling.target import TargetNormalize, TargetScaling, target_proc
from fastai_scaling.registry import TARGET_METHODS
from fastai_scaling.monitor import ParameterMonitor
from fastai_scaling.loader import tensor_dataloaders
from scalers import SCALERS

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
METHODS = list(TARGET_METHODS)


def table(n=400, seed=0, y_scale=300., skew=False):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'a': rng.uniform(0, 1, n), 'b': rng.normal(5, 2, n), 'c': rng.choice(['x', 'y', 'z'], n)})
    y = y_scale * df.a + 10 * df.b + 100 * (df.c == 'x') + rng.normal(0, 5, n)
    df['y'] = np.exp(y / 150) if skew else y
    return df


def make(df, method='standard', procs=(Categorify, Normalize), y=('y',), n_train=None, **kw):
    n_train = n_train or int(.8 * len(df))
    splits = (list(range(n_train)), list(range(n_train, len(df))))
    return TabularPandas(df, procs=[*procs, TargetNormalize(method, **kw)], cat_names=['c'], cont_names=['a', 'b'],
                         y_names=list(y), y_block=RegressionBlock(n_out=len(y)), splits=splits)


def train(to, epochs=8, lr=1e-2, layers=(50,), seed=0, metrics=(), dl_type=None, **kw):
    set_seed(seed)
    dls = to.dataloaders(bs=64) if dl_type is None else dl_type(to, bs=64)
    # n_out: with a Categorify column fastai's `dls.c` comes out as a list (see shared/NOTES.md)
    learn = tabular_learner(dls, layers=list(layers), metrics=list(metrics), n_out=len(to.y_names), **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
    return learn


# ---- the maps: round trips and references ------------------------------------------------------------------------

REFERENCES = {   # scikit-learn transformers that compute each method's map
    'standard': lambda: StandardScaler(),
    'robust': lambda: RobustScaler(),
    'log': lambda: make_pipeline(FunctionTransformer(np.log1p, np.expm1), StandardScaler()),
    'yeo-johnson': lambda: PowerTransformer(),
    'quantile': lambda: make_pipeline(QuantileTransformer(n_quantiles=1000, output_distribution='normal'), StandardScaler()),
}


@pytest.mark.parametrize('method', METHODS)
def test_encoding_matches_sklearn_and_round_trips(method):
    df = table(skew=True)
    to = make(df, method)
    tn = to.procs.target_normalize
    y = torch.tensor(df[['y']].values, dtype=torch.float64)
    ref = REFERENCES[method]().fit(df[['y']].values[:320])
    e = tn.encode_tensor(y)
    # the frame holds y in float32 (fastai's reduce_memory), scikit-learn fits float64: interpolating quantiles amplifies that
    tol = 2e-5 if method == 'quantile' else 1e-6
    np.testing.assert_allclose(e.numpy(), ref.transform(df[['y']].values), rtol=tol, atol=tol)
    # every value decodes back to itself; the quantile map only within the training range (beyond it saturates, as
    # scikit-learn's, so a larger validation value comes back as the training maximum)
    lo, hi = df.y[:320].min(), df.y[:320].max()
    inside = ((df.y >= lo) & (df.y <= hi)).to_numpy() if method == 'quantile' else np.ones(len(df), bool)
    np.testing.assert_allclose(tn.decode_tensor(e).numpy()[inside], df[['y']].values[inside], rtol=1e-9 if method != 'quantile' else 1e-5)
    assert e.dtype == torch.float64 and tn.encode_tensor(y.float()).dtype == torch.float32


@pytest.mark.parametrize('method', METHODS)
def test_predictions_of_a_fixed_linear_model_match_transformed_target_regressor(method):
    "The same linear model fitted by scikit-learn on the encoded target: our decoding of its predictions is TTR's predict"
    df = table(skew=True)
    X = pd.get_dummies(df[['a', 'b', 'c']], dtype=float).values
    train_rows = slice(0, 320)
    ttr = TransformedTargetRegressor(LinearRegression(), transformer=REFERENCES[method](), check_inverse=False)
    ttr.fit(X[train_rows], df.y.values[train_rows])
    tn = make(df, method).procs.target_normalize
    encoded_preds = torch.tensor(ttr.regressor_.predict(X)[:, None])
    # float32 y in the frame (fastai's reduce_memory) against scikit-learn's float64: agreement to about 1e-6 of y's spread
    np.testing.assert_allclose(tn.decode_tensor(encoded_preds).numpy().ravel(), ttr.predict(X), rtol=2e-5, atol=1e-5 * df.y.std())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(y=hnp.arrays(np.float64, st.integers(20, 200), elements=st.floats(-1e4, 1e4, allow_nan=False)),
       method=st.sampled_from(['standard', 'robust', 'yeo-johnson']))
def test_round_trip_property(y, method):
    df = pd.DataFrame({'a': np.arange(len(y), dtype=float), 'b': 1., 'c': 'x', 'y': y})
    try: tn = make(df, method, procs=(), n_train=len(y)).procs.target_normalize
    except ValueError as e:   # a Yeo-Johnson lambda so steep that float32 predictions could not be decoded: refused, said so
        assert method == 'yeo-johnson' and 'too steep to decode' in str(e), e
        return
    t = torch.tensor(y[:, None])
    e = tn.encode_tensor(t)
    assert torch.isfinite(e).all()
    np.testing.assert_allclose(tn.decode_tensor(e).numpy().ravel(), y, rtol=1e-6, atol=1e-6 * max(1., np.abs(y).max()))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(y=hnp.arrays(np.float64, st.integers(20, 200), elements=st.floats(0, 1e5, allow_nan=False)))
def test_log_and_quantile_are_monotone_and_invert_on_training_values(y):
    df = pd.DataFrame({'a': np.arange(len(y), dtype=float), 'b': 1., 'c': 'x', 'y': y})
    for method in ('log', 'quantile'):
        tn = make(df, method, procs=(), n_train=len(y) - 1).procs.target_normalize
        t = torch.tensor(np.sort(y)[:, None])
        e = tn.encode_tensor(t).numpy().ravel()
        assert (np.diff(e) >= -1e-12).all()
        if method == 'log': np.testing.assert_allclose(tn.decode_tensor(torch.tensor(e[:, None])).numpy().ravel(), np.sort(y), rtol=1e-6, atol=1e-6)


def test_clamp_keeps_predictions_in_the_training_range():
    df = table()
    tn = make(df, clamp=True).procs.target_normalize
    lo, hi = df.y[:320].min(), df.y[:320].max()
    out = tn.decode_tensor(torch.tensor([[-50.], [0.], [50.]])).numpy().ravel()
    np.testing.assert_allclose(out[[0, 2]], [lo, hi])
    assert lo < out[1] < hi
    free = make(df).procs.target_normalize.decode_tensor(torch.tensor([[-50.], [50.]])).numpy().ravel()
    assert free[0] < lo and free[1] > hi


def test_a_constant_target_decodes_to_the_constant():
    df = table()
    df['y'] = 42.
    for method in METHODS:
        tn = make(df, method).procs.target_normalize
        e = tn.encode_tensor(torch.full((5, 1), 42., dtype=torch.float64))
        assert torch.isfinite(e).all(), method
        np.testing.assert_allclose(tn.decode_tensor(e).numpy(), 42., rtol=1e-9, err_msg=method)
    # trained: a zero spread scales by 1, so predictions are 42 plus what the model has not unlearned, in units of 1;
    # clamp=True (the training range is the one value) makes them exactly 42
    learn = train(make(df), epochs=2)
    preds, _ = learn.get_preds()
    assert np.abs(preds.numpy() - 42.).max() < 1
    preds, _ = train(make(df, clamp=True), epochs=2).get_preds()
    np.testing.assert_array_equal(preds.numpy(), 42.)


# ---- bad input ------------------------------------------------------------------------------------------------------

def test_bad_input_is_a_clear_error():
    df = table()
    steep = pd.DataFrame({'a': np.arange(80.), 'b': 1., 'c': 'x', 'y': np.r_[0., np.ones(79)]})   # lambda 110: float32 cannot decode
    with pytest.raises(ValueError, match=r"method='yeo-johnson'\): the map fitted on target column 'y' is too steep to decode"):
        make(steep, 'yeo-johnson', procs=())
    make(steep, 'standard', procs=())
    with pytest.raises(ValueError, match="method must be one of standard, robust, log, yeo-johnson, quantile, not 'minmax'"):
        TargetNormalize('minmax')
    labels = df.assign(y=np.where(df.y > df.y.median(), 'high', 'low'))
    with pytest.raises(ValueError, match=r"the target\(s\) \['y'\] are class labels \(a CategoryBlock\)"):
        TabularPandas(labels, procs=[TargetNormalize], cont_names=['a'], y_names='y', y_block=CategoryBlock())
    with pytest.raises(ValueError, match="the data has no target"):
        TabularPandas(df, procs=[TargetNormalize], cont_names=['a'])
    with pytest.raises(ValueError, match=r"\['z'\] are not targets of the data \(y_names: \['y'\]\)"):
        make(df, cols=['z'])
    for bad, what in ((np.nan, "target column 'y' has 1 missing value"), (np.inf, "'y'")):
        broken = df.copy(); broken.loc[3, 'y'] = bad
        with pytest.raises(ValueError, match=what): make(broken)
    broken = df.copy(); broken.loc[350, 'y'] = np.nan      # a validation row: its loss would be NaN
    with pytest.raises(ValueError, match="target column 'y' has 1 missing value"): make(broken)
    negative = df.assign(y=df.y - df.y.max())
    with pytest.raises(ValueError, match=r"method='log'\): target column 'y' has values <= -1"): make(negative, 'log')
    with pytest.raises(ValueError, match="not set up"): TargetNormalize().encode_tensor(torch.zeros(2, 1))


# ---- the flows ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def trained():
    df = table()
    to = make(df)
    return df, to, train(to, epochs=10, metrics=[rmse, mae, R2Score()])


def test_metrics_and_get_preds_are_in_original_units(trained):
    df, to, learn = trained
    loss, r, m, r2 = learn.recorder.values[-1][1:]
    preds, targs = learn.get_preds()
    np.testing.assert_allclose(targs.numpy().ravel(), df.y.values[320:].astype(np.float32))
    err = (preds - targs).numpy().ravel()
    np.testing.assert_allclose([r, m], [np.sqrt((err**2).mean()), np.abs(err).mean()], rtol=1e-4)
    np.testing.assert_allclose(loss, r**2, rtol=1e-4)    # the recorded loss: MSE in original units (the gradient's is encoded)
    _, _, losses = learn.get_preds(with_loss=True)
    np.testing.assert_allclose(losses.numpy(), err**2, rtol=1e-4)
    assert r2 > 0.9 and r < 0.5 * df.y.std()


def test_predict_show_results_and_test_dl_without_targets(trained):
    df, to, learn = trained
    preds, _ = learn.get_preds()
    row, pred, _ = learn.predict(df.iloc[330])
    np.testing.assert_allclose(float(pred[0]), preds[10, 0].item(), rtol=1e-5)
    np.testing.assert_allclose(row.y.iloc[0], float(pred[0]), rtol=1e-5)
    new = df.iloc[320:].drop(columns='y')
    p, t = learn.get_preds(dl=learn.dls.test_dl(new))
    assert t is None
    np.testing.assert_allclose(p.numpy(), preds.numpy(), rtol=1e-5)
    learn.show_results(max_n=3)     # decodes the batch's targets and the predictions: both in units of y
    b = learn.dls.valid.one_batch()
    _, _, dec = learn.get_preds(dl=[b], with_decoded=True)
    np.testing.assert_allclose(dec.numpy(), preds[:len(dec)].numpy(), rtol=1e-5)


def test_interpretation_ranks_losses_of_original_predictions(trained):
    df, to, learn = trained
    interp = Interpretation.from_learner(learn)
    preds, _ = learn.get_preds()
    worst = interp.top_losses(3)[1]
    _, p, t, dec, _ = interp[worst]                 # the rows behind the largest losses, predicted again
    np.testing.assert_allclose(p.numpy(), preds[worst].numpy(), rtol=1e-5)
    np.testing.assert_allclose(t.numpy().ravel(), df.y.values[320:][worst.numpy()].astype(np.float32))
    err = ((preds - torch.tensor(df.y.values[320:, None], dtype=torch.float32))**2).ravel()
    assert set(worst.tolist()) == set(err.topk(3).indices.tolist())


def test_export_and_load_learner_in_a_fresh_process(trained, tmp_path):
    df, to, learn = trained
    learn.export(tmp_path / 'model.pkl')
    df.iloc[320:330].to_csv(tmp_path / 'rows.csv', index=False)
    preds, _ = learn.get_preds()
    code = textwrap.dedent(f"""
        import warnings; warnings.filterwarnings('ignore')
        import pandas as pd
        from fastai.tabular.all import load_learner
        learn = load_learner({str(tmp_path / 'model.pkl')!r})
        rows = pd.read_csv({str(tmp_path / 'rows.csv')!r})
        with learn.no_bar():
            p, _ = learn.get_preds(dl=learn.dls.test_dl(rows.drop(columns='y')))
            one = float(learn.predict(rows.iloc[0])[1][0])
        print('PREDS', ' '.join(f'{{v:.6f}}' for v in p.ravel().tolist()))
        print('ONE', one)""")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {l.split(' ', 1)[0]: l.split(' ', 1)[1] for l in out.stdout.splitlines() if l.startswith(('PREDS', 'ONE'))}
    np.testing.assert_allclose([float(v) for v in lines['PREDS'].split()], preds[:10, 0].numpy(), rtol=1e-4)
    np.testing.assert_allclose(float(lines['ONE']), preds[0, 0].item(), rtol=1e-4)


def test_multi_target_and_cols():
    df = table()
    df['y2'] = 0.01 * df.y + 3
    to = make(df, y=('y', 'y2'))
    tn = to.procs.target_normalize
    e = tn.encode_tensor(torch.tensor(df[['y', 'y2']].values))
    np.testing.assert_allclose(e.numpy().mean(0)[:1], 0., atol=0.2)
    np.testing.assert_allclose(e[:320].numpy().std(0), [1., 1.], rtol=1e-6)
    learn = train(to, epochs=6, metrics=[rmse])
    preds, targs = learn.get_preds()
    assert preds.shape == (80, 2) and np.abs(preds.numpy().mean(0) - df[['y', 'y2']].values[320:].mean(0)).max() < 0.2 * df.y.std()
    only = make(df, y=('y', 'y2'), cols=['y2']).procs.target_normalize
    e = only.encode_tensor(torch.tensor(df[['y', 'y2']].values[:3]))
    np.testing.assert_allclose(e[:, 0].numpy(), df.y.values[:3])   # y untouched


@pytest.mark.parametrize('method', METHODS)
def test_every_method_trains_with_tensor_loader_and_beats_the_mean(method):
    df = table(skew=True)
    to = make(df, method)
    learn = train(to, epochs=8, dl_type=tensor_dataloaders)
    preds, targs = learn.get_preds()
    rmse_ = float(((preds - targs)**2).mean().sqrt())
    assert rmse_ < 0.6 * float(targs.std()), (method, rmse_)


@pytest.mark.parametrize('name', list(SCALERS))
def test_with_every_input_scaler(name):
    df = table(n=200)
    to = make(df, procs=(Categorify, FillMissing, SCALERS[name]), n_train=160)
    learn = train(to, epochs=2)
    preds, targs = learn.get_preds()
    assert torch.isfinite(preds).all() and abs(float(preds.mean()) - float(targs.mean())) < 2 * float(targs.std())


def test_raw_weights_of_a_linear_model_are_in_units_of_y():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({'a': rng.uniform(0, 1, 2000), 'b': rng.uniform(0, 1, 2000)})
    df['y'] = 40 * df.a + 7 * df.b + 100
    splits = (list(range(1600)), list(range(1600, 2000)))
    def fit(method):
        to = TabularPandas(df, procs=[Normalize, TargetNormalize(method)], cont_names=['a', 'b'], y_names='y', splits=splits)
        set_seed(0)
        learn = tabular_learner(to.dataloaders(bs=64), layers=[], cbs=ParameterMonitor(every=10), config=dict(use_bn=False))
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(10, 3e-2)
        return learn, learn.parameter_monitor.raw_weights()
    learn, raw = fit('standard')   # y = 40 a + 7 b + 100 exactly: the linear model nears it, the rows in units of y
    assert raw.attrs['output_units'] == 'y'
    np.testing.assert_allclose(raw[['a', 'b', 'bias']].values[0], [40, 7, 100], rtol=0.05, atol=0.2)
    preds, _ = learn.get_preds()   # exactly the model: its predictions (decoded) are the raw row applied to raw inputs
    np.testing.assert_allclose(preds.numpy().ravel(), df[['a', 'b']].values[1600:] @ raw[['a', 'b']].values[0] + raw.bias[0], rtol=1e-4)
    assert fit('quantile')[1].attrs['output_units'] == 'encoded y'


def test_the_callback_leaves_learners_without_target_scaling():
    df = table()
    plain = TabularPandas(df, procs=[Categorify, Normalize], cat_names=['c'], cont_names=['a', 'b'], y_names='y')
    learn = tabular_learner(plain.dataloaders(bs=64), layers=[10], n_out=1)
    assert not any(isinstance(cb, TargetScaling) for cb in learn.cbs) and target_proc(learn.dls) is None



class Spy(Callback):
    "Records, per training batch, what the learner holds at its `order` among the callbacks: targets after `before_batch`, predictions and loss after `after_loss`"
    def __init__(self, order): self.order, self.seen = order, []
    def before_batch(self):
        if self.training: self.seen.append(dict(yb=self.learn.yb[0].clone()))
    def after_loss(self):
        if self.training: self.seen[-1].update(pred=self.learn.pred.detach().clone(), loss=float(self.learn.loss), yb_after=self.learn.yb[0].clone())


@pytest.mark.parametrize('method,loss_func,train_metrics', [
    ('standard', MSELossFlat(), False), ('standard', L1LossFlat(), False), ('robust', nn.MSELoss(), False),   # by a factor
    ('standard', HuberLoss(delta=0.5), False), ('standard', MSELossFlat(), True), ('quantile', MSELossFlat(), False)])  # decoded
def test_training_losses_are_in_original_units(method, loss_func, train_metrics):
    "The loss fastai records while training is the loss of the decoded predictions against the raw targets, whichever way the callback gets it"
    df = table()
    to = make(df, method)
    reference = REFERENCES[method]().fit(df[['y']].values[:320])      # scikit-learn's map of the training targets
    before, after = Spy(-10), Spy(0)                                  # around TargetScaling (order -5)
    set_seed(0)
    learn = tabular_learner(to.dataloaders(bs=64), layers=[20], n_out=1, loss_func=loss_func, cbs=[before, after], metrics=[rmse])
    learn.recorder.train_metrics = train_metrics
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert len(after.seen) == 5
    for b, a in zip(before.seen, after.seen):
        raw_y = b['yb'].double().numpy()                               # the batch's targets as the data holds them
        np.testing.assert_allclose(a['yb'].double().numpy(), reference.transform(raw_y), rtol=1e-4, atol=1e-4)   # trained on
        pred = torch.tensor(reference.inverse_transform(b['pred'].double().numpy()))   # the model's output, decoded here
        expected = float(loss_func(pred, torch.tensor(raw_y)))
        np.testing.assert_allclose(a['loss'], expected, rtol=1e-4)
        # what later callbacks see: with training metrics, decoded predictions and raw targets; else the model's own units
        decoded = train_metrics or method == 'quantile' or isinstance(loss_func, HuberLoss)
        np.testing.assert_allclose(a['yb_after'].double().numpy(), raw_y if decoded else reference.transform(raw_y), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a['pred'].double().numpy(), pred.numpy() if decoded else b['pred'].double().numpy(), rtol=1e-4, atol=1e-4)
    if train_metrics:   # the training metric is in units of y too: the RMSE of the decoded predictions against the raw targets
        assert learn.recorder.metric_names[2] == 'train__rmse'   # fastai's name for rmse: '_rmse'
        err = np.concatenate([a['pred'].double().numpy() - b['yb'].double().numpy() for b, a in zip(before.seen, after.seen)])
        np.testing.assert_allclose(learn.recorder.values[-1][1], np.sqrt((err**2).mean()), rtol=1e-4)

# ---- compare --------------------------------------------------------------------------------------------------------

def test_compare_with_target_scaling_reports_units_of_y():
    from fastai_scaling.compare import compare_scalers, seed_data, CompareError
    data = seed_data(3000)
    kw = dict(procs='Normalize', epochs=6, lr=0.1, bs=64, progress=False, true_weights=data.true_weights)
    raw = compare_scalers(data.df, 'y', data.cont_names, **kw)
    scaled = compare_scalers(data.df, 'y', data.cont_names, target_scaling='standard', **kw)
    assert scaled.settings['target_scaling'] == 'standard' and raw.settings['target_scaling'] is None
    assert "TargetNormalize('standard')" in scaled.settings['code']['Normalize'] and 'TargetNormalize' not in raw.settings['code']['Normalize']
    # at this learning rate only the scaled target trains (measured: raw-unit weights 0.11 from the truth against 52 for raw y)
    truth = pd.Series(data.true_weights)
    run = scaled.runs['Normalize']
    w = run.raw_weights.iloc[0]
    assert (w[truth.index] - truth).abs().max() < 0.05 * truth.abs().max()            # raw weights in units of y
    assert raw.runs['Normalize'].valid_loss[-1] > 100 * run.valid_loss[-1]
    # the recorded loss is in units of y (squared): the MSE of the linear model the raw weights describe, not of standardized y
    mse = float(((data.df[data.cont_names].values @ w[data.cont_names].values + w['bias'] - data.df.y.values)**2).mean())
    assert 0.3 < run.valid_loss[-1] / mse < 3
    with pytest.raises(CompareError, match="target_scaling must be None or one of standard, robust"):
        compare_scalers(data.df, 'y', data.cont_names, target_scaling='minmax', **kw)
    df = data.df.assign(y=(data.df.y > data.df.y.median()).astype(int))
    with pytest.raises(CompareError, match="scales a regression target; a classification target has classes"):
        compare_scalers(df, 'y', data.cont_names, task='classification', target_scaling='standard', **kw)


def test_cli_target_scaling():
    from fastai_scaling.cli import main
    import contextlib, io, tempfile
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), tempfile.TemporaryDirectory() as d:
        code = main(['compare', '--dataset', 'diabetes', '--epochs', '2', '--lr', '3e-3', '--procs', 'Normalize', '--workers', '1',
                     '--target-scaling', 'log', '--out', d])
    assert code == 0, err.getvalue()
    assert "y scaled by TargetNormalize('log')" in out.getvalue()
    assert "TargetNormalize('log')" in out.getvalue().split('procs=[')[-1]      # the recommendation's code includes it
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), pytest.raises(SystemExit):
        main(['compare', '--dataset', 'diabetes', '--target-scaling', 'minmax'])
    assert "invalid choice: 'minmax'" in err.getvalue()


# ---- from_data ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('method', METHODS)
def test_from_data_equals_the_in_memory_fit(method, tmp_path):
    df = table(n=3000, skew=True).astype({'y': np.float32})
    memory = TabularPandas(df, procs=[TargetNormalize(method)], cont_names=['a'], y_names='y', reduce_memory=False).procs.target_normalize
    t = torch.tensor(df[['y']].values, dtype=torch.float64)
    df[['y', 'a']].to_parquet(tmp_path / 'data.parquet', row_group_size=500)
    import dask.dataframe as dd
    for source in ([df.iloc[i:i + 700] for i in range(0, len(df), 700)], str(tmp_path / 'data.parquet'), dd.from_pandas(df, npartitions=4)):
        preset = TargetNormalize.from_data(source, cols=['y'], method=method, batch_size=256)
        np.testing.assert_allclose(preset.encode_tensor(t).numpy(), memory.encode_tensor(t).numpy(), rtol=1e-5, atol=1e-5)
        assert preset.ranges == memory.ranges
    sketched = TargetNormalize.from_data(df, cols=['y'], method=method, exact=False)
    codes = memory.encode_tensor(t).numpy()   # a KLL sketch's quantiles: within about 1% of rank (more at a normal's tails)
    assert np.abs(sketched.encode_tensor(t).numpy() - codes).max() < (0.05 if method == 'quantile' else 0.02) * (codes.max() - codes.min())
    # a preset joins the procs: no refit, the maps kept
    to = TabularPandas(df, procs=[preset], cont_names=['a'], y_names='y')
    assert to.procs.target_normalize is preset or to.procs.target_normalize.preset


def test_from_data_refuses_what_setups_refuses():
    df = table()
    with pytest.raises(ValueError, match="name the target column"): TargetNormalize.from_data(df)
    with pytest.raises(ValueError, match=r"rows 0:400: target column 'y' has 1 missing value"):
        TargetNormalize.from_data(df.assign(y=df.y.where(df.index != 5)), cols=['y'])
    with pytest.raises(ValueError, match="'y'"): TargetNormalize.from_data(df.assign(y=df.y.where(df.index != 5, np.inf)), cols=['y'])
    with pytest.raises(ValueError, match="can be read only once"):   # quantile, then standard: two reads
        TargetNormalize.from_data((c for c in [df.iloc[:200], df.iloc[200:]]), cols=['y'], method='quantile')
    with pytest.raises(ValueError, match=r"\['y'\] are not targets of the data \(y_names: \['y2'\]\)"):
        TabularPandas(df.assign(y2=df.y), procs=[TargetNormalize.from_data(df, cols=['y'])], cont_names=['a'], y_names='y2')
    preset = TargetNormalize.from_data(df, cont_names=['y'])    # no cols: it scales every target of the data it joins
    with pytest.raises(ValueError, match=r"a preset\) has no statistics for target\(s\) \['y2'\]"):
        TabularPandas(df.assign(y2=df.y), procs=[preset], cont_names=['a'], y_names=['y', 'y2'], y_block=RegressionBlock(n_out=2))
