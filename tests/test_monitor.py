"`ParameterMonitor`: what it records and when, bounded memory, interruption, export, layer choice, raw weights, CUDA."
import copy, os, warnings
from functools import partial
import numpy as np, pandas as pd, pytest, torch
from torch import nn
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt

from fastai.tabular.all import (TabularPandas, Normalize, Categorify, IndexSplitter, tabular_learner,
                                tabular_config, Learner, MSELossFlat, Callback, CancelFitException, load_learner, Module, set_seed, SGD,
                                OptimWrapper)
from fastai_scaling.core import AffineNormalize
from fastai_scaling.procs import RobustNormalize
from fastai_scaling.monitor import ParameterMonitor, find_layer, input_affine

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
COEF = np.array([3., -2., 0.5])
SCALES = np.array([1., 10., 100.])           # raw columns on very different scales
CONTS = ['a', 'b', 'c']


class MeanStd(AffineNormalize):
    "A small mean/std subclass of our affine base"
    def fit_column(self, x): return x.mean(dtype=np.float64), x.std(dtype=np.float64)


def make_df(n=512, seed=0, cat=False):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 3)) * SCALES + np.array([0.5, -3., 20.])
    df = pd.DataFrame(x, columns=CONTS)
    df['y'] = x @ COEF + 4.
    if cat: df['kind'] = rng.choice(['p', 'q', 'r'], n)
    return df


def make_learn(procs=(Normalize,), n=512, cat=False, layers=(), bn_cont=False, use_bn=False, bs=64, shuffle=True, **mon_kw):
    df = make_df(n, cat=cat)
    procs = ([Categorify] if cat else []) + list(procs)
    to = TabularPandas(df, procs=procs, cat_names=['kind'] if cat else [], cont_names=CONTS, y_names='y',
                       splits=IndexSplitter(list(range(n - n//4, n)))(df))
    set_seed(0)   # same batch order and initial weights for the same arguments
    dls = to.dataloaders(bs=bs, shuffle=shuffle, drop_last=False)
    learn = tabular_learner(dls, layers=list(layers), n_out=1, config=tabular_config(bn_cont=bn_cont, use_bn=use_bn),
                            cbs=ParameterMonitor(**mon_kw))
    return learn, df


def fit(learn, n_epoch=1, lr=1e-2, cbs=None, one_cycle=False):
    with learn.no_bar(), learn.no_logging():
        if one_cycle: learn.fit_one_cycle(n_epoch, lr, cbs=cbs)
        else: learn.fit(n_epoch, lr, cbs=cbs)
    return learn.parameter_monitor


# ---- what is recorded, and when ------------------------------------------------------------------------------
def test_every_1_records_initial_then_every_step():
    learn, _ = make_learn()
    w0 = learn.model.layers[0][0].weight.detach().clone()
    b0 = learn.model.layers[0][0].bias.detach().clone()
    mon = fit(learn, 2)
    n_steps = 2 * len(learn.dls.train)
    assert mon.n_records == n_steps + 1
    assert mon.iters.tolist() == list(range(n_steps + 1))
    assert mon.weights.shape == (n_steps + 1, 1, 3) and mon.biases.shape == (n_steps + 1, 1)
    assert mon.grads.shape == mon.weights.shape
    for t in (mon.weights, mon.biases, mon.grads, mon.lrs):
        assert t.dtype == torch.float32 and t.device.type == 'cpu'
    assert torch.equal(mon.weights[0], w0) and torch.equal(mon.biases[0], b0)   # the initial value
    lin = learn.model.layers[0][0]
    assert torch.equal(mon.weights[-1], lin.weight.detach()) and torch.equal(mon.biases[-1], lin.bias.detach())
    assert torch.isnan(mon.grads[0]).all() and torch.isnan(mon.lrs[0])          # no step before the initial record
    assert not torch.isnan(mon.grads[1:]).any()
    np.testing.assert_allclose(mon.lrs[1:].numpy(), 1e-2)
    assert mon.stride == 1


def test_every_3_and_scheduled_lrs():
    learn, _ = make_learn(every=3)
    mon = fit(learn, 2, one_cycle=True)
    n_steps = 2 * len(learn.dls.train)
    assert mon.iters.tolist() == list(range(0, n_steps + 1, 3))
    lrs = mon.lrs[1:].numpy()
    assert lrs.max() <= 1e-2 + 1e-9 and lrs.min() < 1e-3   # one-cycle schedule: warm-up then annealing
    assert np.argmax(lrs) not in (0, len(lrs) - 1)


def test_grads_equal_a_manual_backward_on_the_first_batch():
    learn, _ = make_learn(shuffle=False)
    model0 = copy.deepcopy(learn.model).train()
    xb = learn.dls.train.one_batch()
    loss = learn.loss_func(model0(xb[0], xb[1]), xb[2])
    loss.backward()
    mon = fit(learn, 1)
    torch.testing.assert_close(mon.grads[1], model0.layers[0][0].weight.grad)


def test_grads_are_the_gradient_the_step_used_with_l2_weight_decay():
    "fastai's `l2_reg` (decouple_wd=False) adds wd * w to the gradient during the step: that is the gradient recorded"
    learn, _ = make_learn()
    learn.opt_func = partial(SGD, mom=0., decouple_wd=False)
    lr, wd = 1e-2, 0.5
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr, wd=wd)
    mon = learn.parameter_monitor
    W = mon.weights.double()
    used = (W[:-1] - W[1:]) / lr                           # plain SGD: w_new = w_old - lr * g_used
    torch.testing.assert_close(mon.grads[1:].double(), used, rtol=1e-3, atol=1e-4)
    assert not torch.allclose(mon.grads[1:].double(), used - wd * W[:-1], rtol=1e-3, atol=1e-4)  # not the bare loss gradient


@pytest.mark.parametrize('opt', ['fastai', 'torch'])
def test_lrs_follow_the_schedule_for_fastai_and_wrapped_torch_optimizers(opt):
    learn, _ = make_learn()
    if opt == 'torch': learn.opt_func = partial(OptimWrapper, opt=torch.optim.SGD)
    mon = fit(learn, 2, one_cycle=True)
    np.testing.assert_allclose(mon.lrs[1:].numpy(), np.array(learn.recorder.lrs, dtype=np.float32), rtol=1e-6)
    assert mon.lrs[1:].max() > 5 * mon.lrs[1]              # it did change along the one-cycle schedule


class ToDouble(Callback):
    order = -5
    def before_batch(self): self.learn.xb, self.learn.yb = (self.xb[0], self.xb[1].double()), (self.yb[0].double(),)


def test_a_model_not_in_float32_is_recorded_converted():
    "The one-op record needs float32 parameters on the buffer's device; others are copied one tensor at a time"
    learn, _ = make_learn()
    learn.model.double()
    mon = fit(learn, 1, cbs=ToDouble())
    assert mon.n_records == len(learn.dls.train) + 1 and mon.weights.dtype == torch.float32
    lin = learn.model.layers[0][0]
    torch.testing.assert_close(mon.weights[-1], lin.weight.detach().float())
    torch.testing.assert_close(mon.biases[-1], lin.bias.detach().float())
    assert torch.isfinite(mon.grads[1:]).all() and (mon.grads[1:] != 0).any()


class CountingMonitor(ParameterMonitor):
    "A subclass that handles one more event"
    def before_batch(self): self.learn.n_counted = getattr(self.learn, 'n_counted', 0) + 1


def test_subclasses_receive_the_events_they_define():
    learn, _ = make_learn()
    learn.remove_cb(learn.parameter_monitor)
    learn.add_cb(CountingMonitor())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    mon = learn.counting_monitor
    assert learn.n_counted == len(learn.dls.train)         # training batches only: run_valid=False
    assert mon.n_records == len(learn.dls.train) + 1


class Snapshot(Callback):
    order = 99
    def before_validate(self): self.before = self.learn.parameter_monitor.n_records
    def after_validate(self): assert self.learn.parameter_monitor.n_records == self.before, 'recorded during validation'


def test_no_records_during_validation_validate_or_get_preds():
    learn, _ = make_learn()
    mon = fit(learn, 2, cbs=Snapshot())
    n = mon.n_records
    w = mon.weights.clone()
    learn.validate(); learn.get_preds()
    assert mon.n_records == n and torch.equal(mon.weights, w)   # validation contexts call before_fit/after_fit too


def test_lr_find_is_not_recorded():
    learn, _ = make_learn()
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=8, show_plot=False)
    assert learn.parameter_monitor.n_records == 0 and learn.parameter_monitor.weights is None
    assert fit(learn, 1).n_records == len(learn.dls.train) + 1


# ---- bounded memory ------------------------------------------------------------------------------------------
def test_stride_doubling_keeps_the_whole_run_evenly_spaced():
    rec_bytes = 4 * (3 + 3 + 1)                    # weights + grads + bias of a 1x3 layer, float32
    learn, _ = make_learn(max_bytes=10 * rec_bytes)  # room for 10 records
    mon = fit(learn, 4)
    n_steps = 4 * len(learn.dls.train)            # 24 steps: 25 records wanted
    its = mon.iters.numpy()
    assert mon.n_records <= 10 and mon.history.nbytes <= 10 * rec_bytes
    assert its[0] == 0 and n_steps - its[-1] < mon.stride      # spans the whole run
    assert mon.stride in (2, 4, 8) and (np.diff(its) == mon.stride).all()
    # each kept record still holds the weights of its own iteration: compare with an every=1 run of the same training
    ref, _ = make_learn()
    ref_mon = fit(ref, 4)
    torch.testing.assert_close(mon.weights, ref_mon.weights[its])
    torch.testing.assert_close(mon.grads[1:], ref_mon.grads[its[1:]])


def test_buffer_grows_before_it_compacts():
    learn, _ = make_learn()
    learn.parameter_monitor._planned = lambda: 1   # a wrong plan: the buffer must grow, not thin out
    mon = fit(learn, 2)
    assert mon.stride == 1 and mon.iters.tolist() == list(range(2 * len(learn.dls.train) + 1))


def test_bad_arguments():
    with pytest.raises(ValueError, match='every'): ParameterMonitor(every=0)
    learn, _ = make_learn(max_bytes=20)
    with pytest.raises(ValueError, match='max_bytes'): fit(learn, 1)


# ---- several fits, interruption, export ----------------------------------------------------------------------
class CancelAt(Callback):
    order = 99
    def __init__(self, k, exc=CancelFitException): self.k, self.exc = k, exc
    def after_step(self):
        if self.learn.train_iter == self.k - 1: raise self.exc()


def test_cancel_fit_keeps_what_was_recorded():
    learn, _ = make_learn()
    mon = fit(learn, 3, cbs=CancelAt(4))
    assert mon.iters.tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(mon.weights[-1], learn.model.layers[0][0].weight.detach())
    assert mon._buf is None   # moved to the CPU at after_fit


def test_keyboard_interrupt_keeps_records_and_next_fit_resets():
    learn, _ = make_learn()
    with pytest.raises(KeyboardInterrupt): fit(learn, 3, cbs=CancelAt(3, KeyboardInterrupt))
    mon = learn.parameter_monitor
    assert mon.iters.tolist() == [0, 1, 2, 3] and mon.weights.shape[0] == 4   # readable without after_fit
    assert fit(learn, 1).iters.tolist() == list(range(len(learn.dls.train) + 1))


def test_reset_on_fit_true_and_false():
    learn, _ = make_learn()
    n = len(learn.dls.train)
    fit(learn, 1); mon = fit(learn, 1)
    assert mon.iters.tolist() == list(range(n + 1))
    learn, _ = make_learn(reset_on_fit=False)
    fit(learn, 1); mon = fit(learn, 2)
    assert mon.iters.tolist() == list(range(3 * n + 1))   # cumulative, the boundary state once
    assert torch.equal(mon.weights[-1], learn.model.layers[0][0].weight.detach())
    assert torch.isnan(mon.lrs[0]) and not torch.isnan(mon.lrs[1:]).any()
    mon.reset()
    assert mon.n_records == 0 and mon.weights is None


def test_export_does_not_pickle_the_history(tmp_path):
    learn, _ = make_learn(layers=(32,), use_bn=True)
    learn.path = tmp_path
    learn.export('before.pkl')
    mon = fit(learn, 3)
    assert mon.history.nbytes > 10_000
    learn.export('after.pkl')
    s0, s1 = os.path.getsize(tmp_path/'before.pkl'), os.path.getsize(tmp_path/'after.pkl')
    assert abs(s1 - s0) < 2_000, (s0, s1)
    mon2 = load_learner(tmp_path/'after.pkl').parameter_monitor
    assert isinstance(mon2, ParameterMonitor) and mon2.n_records == 0 and mon2.weights is None
    assert mon.n_records == 3 * len(learn.dls.train) + 1   # exporting left ours alone


# ---- which layer ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('module', ['layers.1.0', 'layers[1][0]', 'object'])
def test_module_by_path_or_object(module):
    learn, _ = make_learn(layers=(4,), use_bn=True)
    lin = learn.model.layers[1][0]
    learn.parameter_monitor.module = lin if module == 'object' else module
    mon = fit(learn, 1)
    assert mon.layer is lin and mon.weights.shape[1:] == (1, 4)
    assert torch.equal(mon.weights[-1], lin.weight.detach())
    assert mon.feature_names() == ['in[0]', 'in[1]', 'in[2]', 'in[3]']
    with pytest.raises(ValueError, match='can only map the input layer'): mon.raw_weights()


def test_default_is_first_linear_and_hidden_bn_layer_has_no_bias():
    learn, _ = make_learn(layers=(4,), use_bn=True)
    mon = fit(learn, 1)
    assert mon.layer is learn.model.layers[0][0] and mon.weights.shape[1:] == (4, 3)
    assert mon.biases is None      # Linear followed by BatchNorm: bias=False
    assert mon.to_df()['feature'].tolist()[:3] == CONTS


class Backwards(Module):
    "Registers `late` first but calls `early` first"
    def __init__(self):
        self.late, self.early = nn.Linear(2, 1), nn.Linear(3, 2)
    def forward(self, x_cat, x_cont): return self.late(self.early(x_cont))


def test_default_follows_forward_order():
    learn0, _ = make_learn()
    learn = Learner(learn0.dls, Backwards(), loss_func=MSELossFlat(), cbs=ParameterMonitor())
    assert find_layer(learn.model) is learn.model.late     # registration order
    mon = fit(learn, 1)
    assert mon.layer is learn.model.early and mon.weights.shape[1:] == (2, 3)


class NoLinear(Module):
    def __init__(self): self.p = nn.Parameter(torch.ones(1))
    def forward(self, x_cat, x_cont): return x_cont.sum(1, keepdim=True) * self.p


def test_clear_errors_for_no_linear_and_unknown_path():
    learn0, _ = make_learn()
    learn = Learner(learn0.dls, NoLinear(), loss_func=MSELossFlat(), cbs=ParameterMonitor())
    with pytest.raises(ValueError, match='has no nn.Linear'): fit(learn, 1)
    learn, _ = make_learn(module='layers.7')
    with pytest.raises(AttributeError, match="no submodule 'layers.7'"): fit(learn, 1)


# ---- raw weights ---------------------------------------------------------------------------------------------
def _check_raw_identity(learn, df):
    "In eval mode the model's output on encoded inputs equals raw_weights applied to the raw columns"
    mon = learn.parameter_monitor
    raw = mon.raw_weights()
    dl = learn.dls.test_dl(df)
    x_cat, x_cont, _ = dl.one_batch()
    learn.model.eval()
    with torch.no_grad(): pred = learn.model(x_cat, x_cont).double().numpy().ravel()
    n = len(pred)
    expect = df[CONTS].values[:n] @ raw[CONTS].values[0] + raw['bias'].values[0]
    np.testing.assert_allclose(pred, expect, rtol=1e-4, atol=1e-3 * np.abs(expect).max())


SPLIT = lambda: (MeanStd(cols=['a']), RobustNormalize(cols=['b', 'c']))    # a scaler per column group (never two on one)

@pytest.mark.parametrize('procs,bn_cont', [((Normalize,), False), ((MeanStd,), False), ((RobustNormalize,), False),
                                           ('split', False), ((Normalize,), True), ((), True)])
def test_raw_weights_is_the_model_in_original_units(procs, bn_cont):
    learn, df = make_learn(procs=SPLIT() if procs == 'split' else procs, bn_cont=bn_cont)
    fit(learn, 1, lr=1e-2)
    _check_raw_identity(learn, df)


@pytest.mark.parametrize('procs', [(Normalize,), (MeanStd,), (RobustNormalize,)])
def test_raw_weights_recover_the_coefficients(procs):
    learn, _ = make_learn(procs=procs, n=2048, bs=32)
    learn.opt_func = partial(SGD, mom=0.9)     # noiseless least squares: well conditioned once scaled
    with learn.no_bar(), learn.no_logging(): learn.fit(8, 0.1, wd=0.)
    raw = learn.parameter_monitor.raw_weights()
    np.testing.assert_allclose(raw[CONTS].values[0], COEF, rtol=0.02)
    np.testing.assert_allclose(raw['bias'].values[0], 4., atol=0.1)
    enc = learn.parameter_monitor.weights[-1, 0].numpy()     # what the layer sees: coef * std, not coef
    assert not np.allclose(enc, COEF, rtol=0.2)


def test_input_affine_maps_each_column_through_its_proc():
    learn, df = make_learn(procs=SPLIT())
    a, b = input_affine(learn.dls, learn.model)
    enc = learn.dls.train_ds.conts.values
    raw = df[CONTS].values[learn.dls.train_ds.items.index]
    np.testing.assert_allclose(raw * a + b, enc, rtol=1e-4, atol=1e-4)


# ---- to_df and plots -----------------------------------------------------------------------------------------
def test_to_df_names_embeddings_and_continuous_columns():
    learn, _ = make_learn(cat=True)
    mon = fit(learn, 1)
    emb = learn.model.embeds[0].embedding_dim
    names = [f'kind[{k}]' for k in range(emb)] + CONTS
    assert mon.feature_names() == names
    df = mon.to_df()
    assert list(df.columns) == ['iter', 'lr', 'out', 'feature', 'weight', 'grad']
    assert len(df) == mon.n_records * (len(names) + 1)
    assert list(df['feature'].cat.categories) == names + ['bias']
    last = df[df['iter'] == mon.iters[-1].item()].set_index('feature')
    np.testing.assert_allclose(last.loc[names, 'weight'].values, mon.weights[-1, 0].numpy())
    assert last.loc['bias', 'grad'] != last.loc['bias', 'grad']   # NaN: only the weight's gradient is recorded
    raw = mon.raw_weights()
    assert list(raw.columns) == names + ['bias']
    np.testing.assert_allclose(raw[names[:emb]].values[0], mon.weights[-1, 0, :emb].numpy(), rtol=1e-6)  # embeddings kept


def test_plots_draw_one_line_per_feature():
    learn, _ = make_learn(cat=True)
    mon = fit(learn, 1)
    n_in = len(mon.feature_names())
    ax = mon.plot()
    assert len(ax.lines) == n_in + 1                     # + bias; the learning rate is on its twin axis
    assert [l.get_label() for l in ax.lines] == mon.feature_names() + ['bias']
    ax = mon.plot_grads()
    assert len(ax.lines) == n_in and ax.get_yscale() == 'log'
    assert len(ax.lines[0].get_xdata()) == mon.n_records - 1   # the initial record has no gradient
    y = mon.plot_grads(window=1).lines[0].get_ydata()
    np.testing.assert_allclose(y, mon.grads[1:, :, 0].abs().mean(1).numpy(), rtol=1e-6)
    plt.close('all')
    learn, _ = make_learn(layers=(4,), use_bn=True, grads=False)
    mon = fit(learn, 1)
    assert len(mon.plot(lr=False).lines) == 3                # RMS over 4 output units, no bias
    with pytest.raises(ValueError, match='no gradients'): mon.plot_grads()
    plt.close('all')


# ---- no host reads on the hot path ---------------------------------------------------------------------------
HOT = ('after_step', 'after_cancel_step', '_first_forward', '_make_room', '_row')


def _wrap_hot_path(mon, enter, leave):
    for name in HOT:
        f = getattr(mon, name)
        def wrapped(*args, _f=f):
            enter()
            try: return _f(*args)
            finally: leave()
        object.__setattr__(mon, name, wrapped)


def test_hot_path_reads_nothing_from_tensors_cpu_proxy():
    "CPU stand-in for the CUDA test: `.item()`, `.tolist()`, `float(t)`... on any tensor fail inside the per-batch work"
    learn, _ = make_learn(max_bytes=4 * 7 * 6)          # compaction and growth on the hot path too
    mon = learn.parameter_monitor
    banned = ['item', 'tolist', 'numpy', 'cpu', '__float__', '__int__', '__bool__', '__index__']
    saved = {n: getattr(torch.Tensor, n) for n in banned}
    def boom(*a, **k): raise AssertionError('host read in the per-batch path')
    def enter():
        for n in banned: setattr(torch.Tensor, n, boom)
    def leave():
        for n, f in saved.items(): setattr(torch.Tensor, n, f)
    _wrap_hot_path(mon, enter, leave)
    try: fit(learn, 2)
    finally: leave()
    assert mon.n_records <= 6 and mon.iters[0] == 0


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


@cuda
@pytest.mark.parametrize('fp16', [False, True])
def test_cuda_records_without_host_sync(fp16):
    learn, _ = make_learn(layers=(16,), use_bn=True, n=2048, max_bytes=4 * (2*16*3) * 40)   # compaction happens
    learn.dls.to('cuda'); learn.model.cuda()
    if fp16: learn.to_fp16()
    mon = learn.parameter_monitor
    _wrap_hot_path(mon, lambda: torch.cuda.set_sync_debug_mode('error'), lambda: torch.cuda.set_sync_debug_mode(0))
    try: fit(learn, 3)
    finally: torch.cuda.set_sync_debug_mode(0)
    assert mon.weights.device.type == 'cpu' and mon.weights.dtype == torch.float32
    assert mon.n_records <= 40 and mon.stride > 1
    lin = learn.model.layers[0][0]
    assert lin.weight.dtype == torch.float32           # native AMP keeps float32 master weights
    if mon.iters[-1] == 3 * len(learn.dls.train): torch.testing.assert_close(mon.weights[-1], lin.weight.detach().cpu())
    g = mon.grads[1:]
    g = g[torch.isfinite(g).all(-1).all(-1)]
    assert len(g) and g.abs().max() < 1e3            # unscaled gradients (GradScaler's scale is 65536)
