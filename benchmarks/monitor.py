"""Per-epoch cost of `ParameterMonitor` on the seed experiment's setup, and its cost per event.

The seed (004): 10 uniform features, y = x . scale_amt, fastai `Normalize`, a linear `tabular_learner`
(layers=[], no BatchNorm), bs=64. Three measurements, in one run:

1. reused learner: each round times one `learn.fit(1)` (train + validation epoch) of one learner for
     base     no monitor
     monitor  ParameterMonitor(every=1, grads=True)
     naive    the seed's forward hook, appending clones of the weight and bias to Python lists (also in validation)
   in a rotating order (A/B/C, B/C/A, C/A/B, ...) so that drift of the shared machine hits all of them alike.
2. fresh learner (`--fresh`, on by default): each round creates a new learner per variant (base, monitor) and times
   its `fit_one_cycle(1)`, which is how `compare` and most users run it: the monitor's per-fit setup counts too.
3. per event (`--events`, on by default): every call the learner makes into the callback during one
   `fit_one_cycle(1)` is timed; the cost of timing an empty callback the same way is subtracted, which leaves what
   the monitor's handlers cost beyond a callback that does nothing. Reported per training batch.

The goals: monitor/base <= 1.05 per epoch, and <= 30 us per training batch.

    python benchmarks/monitor.py                     # CPU, 20,000 rows, 7 rounds, the tensor loader
    python benchmarks/monitor.py --loader fastai --rows 200000 --rounds 3
    python benchmarks/monitor.py --device cuda --rows 200000
"""
from __future__ import annotations
import argparse, json, statistics, time
from collections import defaultdict
import numpy as np, pandas as pd, torch
from fastai.tabular.all import (TabularPandas, Normalize, RandomSplitter, tabular_learner, tabular_config, Callback,
                                TabDataLoader, set_seed)
from fastai_scaling.monitor import ParameterMonitor
from fastai_scaling.loader import TensorTabDataLoader
from _torch_args import parse_torch_args


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


def new_learner(dls):
    return tabular_learner(dls, layers=[], config=tabular_config(use_bn=False, bn_cont=False))


def rotated(variants, r): return variants[r % len(variants):] + variants[:r % len(variants)]


def reused_learner(dls, device, variants, rounds):
    learn = new_learner(dls)
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
    for v in variants: run(v)  # warm-up
    times = {v: [] for v in variants}
    for r in range(rounds):
        for v in rotated(variants, r): times[v].append(run(v))
    return times


def fresh_learner(dls, device, rounds):
    """A new learner per fit, `fit_one_cycle(1)`: the monitor's per-fit setup (hooks, buffer, first forward) included.
    Each round fits both variants back to back (the order alternating) and keeps their ratio: on a shared machine the
    speed drifts by more than the monitor costs between rounds, much less between two consecutive fits."""
    def run(variant):
        learn = new_learner(dls)
        cbs = [ParameterMonitor(every=1, grads=True)] if variant == 'monitor' else []
        with learn.no_bar(), learn.no_logging():
            sync(device); t = time.perf_counter()
            learn.fit_one_cycle(1, 1e-2, cbs=cbs)
            sync(device); return time.perf_counter() - t
    variants = ['base', 'monitor']
    for v in variants: run(v)
    times = {v: [] for v in variants}
    for r in range(rounds):
        for v in rotated(variants, r): times[v].append(run(v))
    return times, [m / b for b, m in zip(times['base'], times['monitor'])]


class Null(Callback):
    "A callback that does nothing, as cheaply as possible: the calibration of the per-event timing"
    def __call__(self, event_name): return None


def per_event(dls, repeats):
    "Microseconds per training batch spent in the callback's `__call__`, per event, net of the timing and call overhead"
    def timed(cls):
        durs, calls = defaultdict(int), defaultdict(int)
        pc = time.perf_counter_ns
        class Timed(cls):
            def __call__(self, event_name):
                t = pc(); res = super().__call__(event_name); durs[event_name] += pc() - t; calls[event_name] += 1
                return res
        learn = new_learner(dls)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2, cbs=[Timed()])
        return durs, calls
    n_batches = len(dls.train)
    runs = {'monitor': [], 'null': []}
    for _ in range(repeats):
        for name, cls in (('monitor', ParameterMonitor), ('null', Null)):
            durs, calls = timed(cls)
            runs[name].append({e: durs[e] / 1e3 / n_batches for e in durs})
    med = {name: pd.DataFrame(rs).median() for name, rs in runs.items()}
    events = [e for e in med['monitor'].index if med['monitor'][e] > 0.005]
    table = pd.DataFrame({'raw_us': med['monitor'][events], 'timing_overhead_us': med['null'].reindex(events).fillna(0)})
    table['net_us'] = table.raw_us - table.timing_overhead_us
    return table.sort_values('raw_us', ascending=False), calls


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', type=int, default=20_000)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--rounds', type=int, default=7, help='timed fits per variant (after one warm-up round)')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--loader', choices=['tensor', 'fastai'], default='tensor',
                   help="TensorTabDataLoader (default; faster batches make the monitor's share larger) or fastai's TabDataLoader")
    p.add_argument('--only', default='reused,fresh,events', help='comma-separated measurements to run: reused, fresh, events')
    p.add_argument('--no-naive', action='store_true', help="skip the seed's naive hook")
    a = parse_torch_args(p, argv)
    device = torch.device(a.device)
    if device.type == 'cuda' and not torch.cuda.is_available(): p.error('--device cuda: CUDA is not available')
    only = set(a.only.split(','))

    df, _ = seed_data(a.rows)
    conts = [c for c in df.columns if c != 'y']
    to = TabularPandas(df, procs=[Normalize], cont_names=conts, y_names='y', splits=RandomSplitter(seed=0)(df))
    set_seed(0)
    dls = to.dataloaders(bs=a.bs, device=device, dl_type=TensorTabDataLoader if a.loader == 'tensor' else TabDataLoader)
    nb = len(dls.train)
    res = dict(device=str(device), rows=a.rows, bs=a.bs, loader=a.loader, batches_per_epoch=nb, rounds=a.rounds)
    print(f"{a.rows:,} rows, bs {a.bs}, {nb} training batches per epoch, {a.loader} loader, {device}, "
          f"{torch.get_num_threads()} torch thread(s)", flush=True)

    if 'reused' in only:
        variants = ['base', 'monitor'] + ([] if a.no_naive else ['naive'])
        times = reused_learner(dls, device, variants, a.rounds)
        med = {v: statistics.median(ts) for v, ts in times.items()}
        res['reused'] = dict(median_epoch_s=med, ratio_to_base={v: med[v]/med['base'] for v in variants}, times_s=times)
        print("\n1. one learner, learn.fit(1) (train + validation), medians:")
        for v in variants:
            print(f"   {v:8s} {med[v]*1e3:8.1f} ms/epoch   x{med[v]/med['base']:.3f}   "
                  f"min {min(times[v])*1e3:8.1f}  max {max(times[v])*1e3:8.1f}", flush=True)

    if 'fresh' in only:
        times, ratios = fresh_learner(dls, device, a.rounds)
        med = {v: statistics.median(ts) for v, ts in times.items()}
        ratio = statistics.median(ratios)
        res['fresh'] = dict(median_epoch_s=med, ratio=ratio, round_ratios=ratios, times_s=times)
        print("\n2. a fresh learner per fit, fit_one_cycle(1), medians:")
        for v in med:
            print(f"   {v:8s} {med[v]*1e3:8.1f} ms/epoch   x{med[v]/med['base']:.3f}   "
                  f"min {min(times[v])*1e3:8.1f}  max {max(times[v])*1e3:8.1f}", flush=True)
        q = np.percentile(ratios, [25, 75])
        print(f"   monitor/base, median of the {len(ratios)} rounds' ratios: {ratio:.3f} (quartiles {q[0]:.3f}, {q[1]:.3f}; "
              f"goal <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'})")

    if 'events' in only:
        table, calls = per_event(dls, max(3, a.rounds // 2))
        total = float(table.net_us.sum())
        res['events'] = dict(per_training_batch_us=table.to_dict(), net_total_us=total, raw_total_us=float(table.raw_us.sum()))
        print(f"\n3. time inside the callback per training batch ({nb} batches, fit_one_cycle(1), medians of "
              f"{max(3, a.rounds // 2)} fits), us:")
        print('   ' + table.round(2).to_string().replace('\n', '\n   '))
        print(f"   total: {table.raw_us.sum():.1f} us raw, {total:.1f} us net of the timing and call overhead "
              f"(goal <= 30: {'met' if total <= 30 else 'NOT met'})")
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1, default=str)
    return res


if __name__ == '__main__': main()
