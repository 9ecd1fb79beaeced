"""Per-epoch cost of `ParameterMonitor` on the seed experiment's setup.

The seed (004): 10 uniform features, y = x . scale_amt, fastai `Normalize`, a linear `tabular_learner`
(layers=[], no BatchNorm), bs=64. Each round times one `learn.fit(1)` (train + validation epoch) for

  base     no monitor
  monitor  ParameterMonitor(every=1, grads=True)
  naive    the seed's forward hook, appending clones of the weight and bias to Python lists (also in validation)

in a rotating order (A/B/C, B/C/A, C/A/B, ...) so that drift of the shared machine hits all of them alike,
and reports medians and ratios to `base`. The goal is monitor/base <= 1.05.

    python benchmarks/monitor.py                     # CPU, 20,000 rows, 7 rounds
    python benchmarks/monitor.py --device cuda --rows 200000
"""
from __future__ import annotations
import argparse, json, statistics, time, warnings
import numpy as np, pandas as pd, torch
from fastai.tabular.all import TabularPandas, Normalize, RandomSplitter, tabular_learner, tabular_config
from fastai_scaling.monitor import ParameterMonitor


def seed_data(rows:int, n_feat:int=10, seed:int=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((rows, n_feat), generator=g)
    scale_amt = torch.randint(0, 100, size=(n_feat,), generator=g)
    df = pd.DataFrame(x.numpy(), columns=[f"x{n}" for n in range(1, n_feat+1)])
    df['y'] = (df.values * scale_amt.numpy()).sum(axis=1)
    return df, scale_amt


class NaiveHook:
    "The seed's monitor: a forward hook on `layers[0][0]` that appends the weight and bias to lists"
    def __init__(self, m):
        self.weight_track, self.bias_track = [], []
        self.handle = m.register_forward_hook(self)
    def __call__(self, m, i, o):
        self.weight_track.append(m.weight.detach().clone())
        self.bias_track.append(m.bias.detach().clone())
    def remove(self): self.handle.remove()


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', type=int, default=20_000)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--rounds', type=int, default=7, help='timed fits per variant (after one warm-up round)')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--no-naive', action='store_true', help="skip the seed's naive hook")
    p.add_argument('--json', help='write the results to this file')
    a = p.parse_args(argv)
    warnings.filterwarnings('ignore')
    device = torch.device(a.device)
    if device.type == 'cuda' and not torch.cuda.is_available(): p.error('--device cuda: CUDA is not available')

    df, _ = seed_data(a.rows)
    conts = [c for c in df.columns if c != 'y']
    to = TabularPandas(df, procs=[Normalize], cont_names=conts, y_names='y', splits=RandomSplitter(seed=0)(df))
    dls = to.dataloaders(bs=a.bs, device=device)
    learn = tabular_learner(dls, layers=[], config=tabular_config(use_bn=False, bn_cont=False))
    layer = learn.model.layers[0][0]

    def run(variant):
        cbs, hook = [], None
        if variant == 'monitor': cbs = [ParameterMonitor(every=1, grads=True)]
        if variant == 'naive': hook = NaiveHook(layer)
        with learn.no_bar(), learn.no_logging():
            sync(device); t = time.perf_counter()
            learn.fit(1, 1e-2, cbs=cbs)
            sync(device); dt = time.perf_counter() - t
        if hook is not None: hook.remove()
        return dt

    variants = ['base', 'monitor'] + ([] if a.no_naive else ['naive'])
    for v in variants: run(v)  # warm-up
    times = {v: [] for v in variants}
    for r in range(a.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order: times[v].append(run(v))
    med = {v: statistics.median(ts) for v, ts in times.items()}
    res = dict(device=str(device), rows=a.rows, bs=a.bs, batches_per_epoch=len(dls.train), rounds=a.rounds,
               median_epoch_s=med, ratio_to_base={v: med[v]/med['base'] for v in variants},
               per_batch_overhead_us={v: 1e6*(med[v]-med['base'])/len(dls.train) for v in variants if v != 'base'},
               times_s=times)
    for v in variants:
        print(f"{v:8s} median {med[v]*1e3:8.1f} ms/epoch   x{med[v]/med['base']:.3f}   "
              f"min {min(times[v])*1e3:8.1f}  max {max(times[v])*1e3:8.1f}")
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1)
    return res


if __name__ == '__main__': main()
