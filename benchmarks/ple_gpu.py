"""PiecewiseLinearEncode on CUDA (issue 23, items 2 and 5): the model's encoding equals the CPU's, its forward pass waits
for no host sync, a learner trains on the GPU (TabDataLoader and TensorTabDataLoader) and predicts as get_preds does, an
export made on the GPU loads with load_learner(cpu=True) and predicts the same, and an epoch's time against
QuantileNormalize at bs 1024 on 200,000 rows x 20 columns (the speed goal: <= 1.5x).

A device check, not run where this was written (the task had no GPU): on a GPU machine, with fastai installed,
    PYTHONPATH=$PWD python3 benchmarks/ple_gpu.py
It writes $OUT/ple_gpu.txt (or ./ple_gpu.txt) and takes about 3 minutes."""
import os, sys, time, statistics, tempfile, traceback, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
import numpy as np, torch
from fastai.tabular.all import TabularPandas, TabDataLoader, tabular_learner, load_learner, set_seed
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.ple import table
from fastai_scaling.encode import PiecewiseLinearEncode
from fastai_scaling.transforms import QuantileNormalize
from fastai_scaling.loader import TensorTabDataLoader

out = open(os.path.join(os.environ.get('OUT', '.'), 'ple_gpu.txt'), 'w')
def say(*a):
    s = ' '.join(str(x) for x in a); print(s, flush=True); out.write(s + '\n'); out.flush()
dev = torch.device('cuda')
say('torch', torch.__version__, torch.cuda.get_device_name(0))
df = table()
conts = list(df.columns[:-1])
splits = (list(range(160_000)), list(range(160_000, 200_000)))
make = lambda proc: TabularPandas(df, procs=[proc], cont_names=conts, y_names='y', splits=splits)

# 1. the encoding: CUDA equals the CPU, and the model's layer waits for no host sync
try:
    to = make(PiecewiseLinearEncode())
    p = to.procs.piecewise_linear_encode
    x = torch.tensor(df[conts].values[:4096], dtype=torch.float32)
    e_cpu, e_gpu = p.encode_tensor(x), p.encode_tensor(x.to(dev))
    layer = p.layer(bn=True).to(dev).train()
    layer(x[:1024].to(dev)); torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        for _ in range(3): layer(x[:1024].to(dev, non_blocking=True))
        sync = 'no host sync'
    except RuntimeError as ex: sync = f'SYNC: {str(ex)[:120]}'
    finally: torch.cuda.set_sync_debug_mode(0)
    say(f"encoding: {tuple(e_gpu.shape)}, max|gpu - cpu| {float((e_gpu.cpu() - e_cpu).abs().max()):.2e}; the layer's forward: {sync}")
except Exception: say('encoding FAILED', traceback.format_exc()[-800:])

# 2. training on the GPU with either loader, predict = get_preds, export on the GPU loads on a CPU
for dl_type in (TabDataLoader, TensorTabDataLoader):
    try:
        to = make(PiecewiseLinearEncode())
        set_seed(0)
        learn = tabular_learner(to.dataloaders(bs=1024, dl_type=dl_type, device=dev), layers=[200, 100], n_out=1)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2)
        preds, targs = learn.get_preds()
        rmse = float(((preds - targs) ** 2).mean().sqrt())
        one = float(learn.predict(df.drop(columns='y').iloc[170_000])[1][0])
        with tempfile.TemporaryDirectory() as d:
            learn.export(Path(d) / 'm.pkl')
            cpu = load_learner(Path(d) / 'm.pkl', cpu=True)
        with cpu.no_bar(): cpu_preds = cpu.get_preds(dl=cpu.dls.test_dl(df.iloc[170_000:170_100]))[0]
        say(f"{dl_type.__name__}: model on {next(learn.model.parameters()).device}, valid RMSE {rmse:.4f} (y's std {float(targs.std()):.3f}); "
            f"predict - get_preds {abs(one - float(preds[10_000, 0])):.1e}; exported on the GPU, loaded on a CPU: "
            f"max|preds - gpu preds| {float((cpu_preds - preds[10_000:10_100]).abs().max()):.1e}")
    except Exception: say(f'training with {dl_type.__name__} FAILED', traceback.format_exc()[-800:])

# 3. an epoch's time against QuantileNormalize, alternated, the median of 5 pairs after a warm-up
for dl_type in (TabDataLoader, TensorTabDataLoader):
    try:
        learners = []
        for proc in (QuantileNormalize(), PiecewiseLinearEncode()):
            set_seed(0)
            learners.append(tabular_learner(make(proc).dataloaders(bs=1024, dl_type=dl_type, device=dev), layers=[200, 100], n_out=1))
        times = ([], [])
        for i in range(6):
            for learn, t in zip(learners, times):
                with learn.no_bar(), learn.no_logging():
                    torch.cuda.synchronize(); start = time.perf_counter(); learn.fit(1, 1e-3); torch.cuda.synchronize()
                if i: t.append(time.perf_counter() - start)
        say(f"epoch, {dl_type.__name__}: QuantileNormalize {statistics.median(times[0]):.2f} s, ple {statistics.median(times[1]):.2f} s: "
            f"{statistics.median(b / a for a, b in zip(*times)):.2f}x")
    except Exception: say(f'timing with {dl_type.__name__} FAILED', traceback.format_exc()[-800:])
