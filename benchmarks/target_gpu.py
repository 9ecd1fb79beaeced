"""TargetNormalize on CUDA (issue 21): its tensor maps equal on GPU and CPU, no host sync per batch, training with
metrics in units of y, get_preds and predict, export on the GPU then load_learner(cpu=True), and the epoch cost.

A device check: run on the GPU machine (the `device` tool), with fastai's wheels from ../shared/gpu/wheels.sh:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:$PWD python3 benchmarks/target_gpu.py
It writes $OUT/gpu.txt (or ./gpu.txt). The 'round trip' of 'quantile' includes validation values beyond the training
range, which decode to the training ends (its map saturates there), hence its larger figure."""
import os, sys, time, statistics, warnings, tempfile, traceback
warnings.filterwarnings('ignore')
import numpy as np, pandas as pd, torch
from fastai.tabular.all import *
from fastai_scaling.target import TargetNormalize, TargetScaling
out = open(os.path.join(os.environ.get('OUT', '.'), 'gpu.txt'), 'w')
def say(*a):
    s = ' '.join(str(x) for x in a); print(s, flush=True); out.write(s + '\n'); out.flush()
dev = torch.device('cuda')
say('torch', torch.__version__, torch.cuda.get_device_name(0))
rng = np.random.default_rng(0); n = 20000
df = pd.DataFrame(rng.normal(size=(n, 10)), columns=[f"x{i}" for i in range(10)])
df['y'] = np.exp((300 + 50 * df.x0 + 20 * df.x1 ** 2 + rng.normal(0, 5, n)) / 150)
splits = (list(range(16000)), list(range(16000, n)))
conts = list(df.columns[:-1])
# 1. tensor maps: CUDA equals CPU, and no host sync once the device state is cached
for m in ('standard', 'robust', 'log', 'yeo-johnson', 'quantile'):
    try:
        to = TabularPandas(df, procs=[Normalize, TargetNormalize(m)], cont_names=conts, y_names='y', splits=splits)
        tn = to.procs.target_normalize
        y = torch.tensor(df[['y']].values, dtype=torch.float32)
        e_cpu, e_gpu = tn.encode_tensor(y), tn.encode_tensor(y.to(dev))
        d_cpu, d_gpu = tn.decode_tensor(e_cpu), tn.decode_tensor(e_gpu)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('error')
        try:
            for _ in range(3): tn.decode_tensor(tn.encode_tensor(y[:64].to(dev, non_blocking=True)))
            sync = 'no host sync'
        except RuntimeError as ex: sync = f'SYNC: {str(ex)[:120]}'
        finally: torch.cuda.set_sync_debug_mode(0)
        say(f"maps {m:12s} max|enc gpu-cpu| {float((e_gpu.cpu() - e_cpu).abs().max()):.2e}  max|dec gpu-cpu|/|y| "
            f"{float(((d_gpu.cpu() - d_cpu).abs() / y.abs().clamp(min=1)).max()):.2e}  round trip {float(((d_gpu.cpu() - y).abs() / y.abs()).max()):.2e}  {sync}")
    except Exception: say(f"maps {m} FAILED", traceback.format_exc()[-800:])
# 2. training on CUDA: metrics in units of y, get_preds, predict, per-batch sync check, export -> load on CPU
for m in ('standard', 'quantile'):
    try:
        to = TabularPandas(df, procs=[Normalize, TargetNormalize(m)], cont_names=conts, y_names='y', splits=splits)
        set_seed(0)
        learn = tabular_learner(to.dataloaders(bs=256, device=dev), layers=[200, 100], metrics=[rmse])
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 3e-3)
        vloss, vrmse = learn.recorder.values[-1][1:]
        preds, targs = learn.get_preds()
        r = float(((preds - targs) ** 2).mean().sqrt())
        _, p1, _ = learn.predict(df.iloc[16005])
        say(f"train {m:9s} on {next(learn.model.parameters()).device}: valid rmse metric {vrmse:.4g}, from get_preds {r:.4g}, loss {vloss:.4g} "
            f"(rmse^2 {vrmse**2:.4g}); y std {df.y[16000:].std():.4g}; predict {float(p1[0]):.4g} vs get_preds {float(preds[5, 0]):.4g}")
        path = tempfile.mkdtemp() + '/m.pkl'; learn.export(path)
        cpu = load_learner(path, cpu=True)
        with cpu.no_bar(): pc, _ = cpu.get_preds(dl=cpu.dls.test_dl(df.iloc[16000:16100].drop(columns='y')))
        say(f"  export on GPU, load_learner(cpu=True): max|pred diff| {float((pc[:, 0] - preds[:100, 0].cpu()).abs().max()):.3g}")
    except Exception: say(f"train {m} FAILED", traceback.format_exc()[-1500:])
# 3. epoch cost on the GPU, alternated pairs, bs 256
def learner(target):
    to = TabularPandas(df, procs=[Normalize] + ([TargetNormalize('standard')] if target else []), cont_names=conts, y_names='y', splits=splits)
    set_seed(0); return tabular_learner(to.dataloaders(bs=256, device=dev), layers=[200, 100])
a, b = learner(False), learner(True)
ta, tb = [], []
for _ in range(7):
    for l, t in ((a, ta), (b, tb)):
        with l.no_bar(), l.no_logging():
            torch.cuda.synchronize(); s = time.perf_counter(); l.fit(1, 1e-3); torch.cuda.synchronize(); t.append(time.perf_counter() - s)
say(f"epoch on GPU, bs 256: without {statistics.median(ta):.3f} s, with TargetNormalize('standard') {statistics.median(tb):.3f} s, "
    f"median pair ratio {statistics.median(y / x for x, y in zip(ta, tb)):.3f}")
