"""Training and iteration speed of `TensorTabDataLoader` against fastai's tabular loader, measured in one run.

Data: the seed experiment (`fastai_scaling.compare.seed_data`): 200,000 rows of 10 uniform features,
y = x . scale_amt, fastai `Normalize`, a random 80/20 split. Two setups, each timed through the *same* `Learner`
(only `learn.dls` is swapped between the two loaders' `DataLoaders`):

  seed   bs 64, a linear `tabular_learner` (layers=[], no BatchNorm): the seed experiment, goal >= 1.6x
  mlp    bs 1024, an MLP with layers [200, 100] (fastai's default model): goal >= 1.4x

Each round times one `learn.fit(1)` (a training epoch plus the validation pass) per loader, alternating which goes
first, and the report gives medians. Then rows per second of iterating the training loader alone (no model), for
fastai's loader, ours, and a bare torch loop (random permutation, `index_select` of the batch from row-major
tensors) as the floor. Every ratio compares numbers measured in this run, on this machine.

    python benchmarks/dataloader.py                     # 200,000 rows, 5 rounds
    python benchmarks/dataloader.py --rows 50000 --rounds 5 --json out.json
"""
from __future__ import annotations
import argparse, json, statistics, time
import numpy as np, torch
from fastai.tabular.all import (TabularPandas, Normalize, RandomSplitter, TabDataLoader, tabular_learner, tabular_config,
                                set_seed)
from fastai_scaling.compare import seed_data
from fastai_scaling.loader import TensorTabDataLoader
from _torch_args import parse_torch_args

SETUPS = {'seed': dict(bs=64, layers=[], goal=1.6), 'mlp': dict(bs=1024, layers=[200, 100], goal=1.4)}
LOADERS = {'fastai': TabDataLoader, 'tensor': TensorTabDataLoader}


def epoch_times(to, bs, layers, rounds):
    "Seconds of `learn.fit(1)` per loader: one learner, its `dls` swapped, the order alternating by round"
    dls = {}
    for name, dl_type in LOADERS.items():
        set_seed(0)
        dls[name] = to.dataloaders(bs=bs, dl_type=dl_type)
    set_seed(0)
    config = tabular_config(use_bn=False, bn_cont=False) if not layers else None
    learn = tabular_learner(dls['fastai'], layers=layers, config=config, n_out=1)
    def fit(name):
        learn.dls = dls[name]
        with learn.no_bar(), learn.no_logging():
            t = time.perf_counter(); learn.fit(1, 1e-3); return time.perf_counter() - t
    for name in LOADERS: fit(name)                     # warm-up: imports, allocator, the tensor loader's tensors
    times = {name: [] for name in LOADERS}
    names = list(LOADERS)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]): times[name].append(fit(name))
    return times, len(dls['fastai'].train), len(dls['fastai'].valid)


def iterate(dl, repeats):
    "Rows per second of iterating `dl` (median of `repeats` passes after a warm-up pass)"
    for _ in dl: pass
    rates = []
    for _ in range(repeats):
        t = time.perf_counter(); n = sum(len(b[1]) for b in dl); rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def bare_torch(x, y, bs, repeats):
    "The floor: a random permutation, then `index_select` of each batch from row-major tensors"
    def one_pass():
        perm = torch.randperm(len(x))
        n = 0
        for i in range(0, len(x), bs):
            idx = perm[i:i+bs]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            n += len(xb)
        return n
    one_pass()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter(); n = one_pass(); rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', type=int, default=200_000)
    p.add_argument('--rounds', type=int, default=5, help='timed epochs per loader and setup (after one warm-up epoch each)')
    p.add_argument('--setups', default='seed,mlp', help='comma-separated: seed, mlp')
    a = parse_torch_args(p, argv)
    data = seed_data(a.rows, seed=42)
    to = TabularPandas(data.df, procs=[Normalize], cont_names=data.cont_names, y_names='y',
                       splits=RandomSplitter(seed=42)(data.df))
    print(f"seed data: {a.rows:,} rows ({len(to.train):,} training), torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)", flush=True)
    res = dict(rows=a.rows, rounds=a.rounds, threads=torch.get_num_threads(), setups={}, iterate={})

    print("\nper-epoch time through the same Learner (learn.fit(1): training + validation), medians:")
    for name in a.setups.split(','):
        s = SETUPS[name]
        times, n_train, n_valid = epoch_times(to, s['bs'], s['layers'], a.rounds)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med['fastai'] / med['tensor']
        res['setups'][name] = dict(bs=s['bs'], layers=s['layers'], batches=(n_train, n_valid), epoch_s=times, median_s=med,
                                   speedup=ratio, goal=s['goal'])
        print(f"  {name:5s} bs {s['bs']:4d} layers {str(s['layers']):10s} fastai {med['fastai']:6.2f} s  tensor {med['tensor']:6.2f} s"
              f"  -> {ratio:.2f}x faster (goal {s['goal']}x: {'met' if ratio >= s['goal'] else 'NOT met'})"
              f"  [runs fastai {', '.join(f'{t:.2f}' for t in times['fastai'])}; tensor {', '.join(f'{t:.2f}' for t in times['tensor'])}]",
              flush=True)

    print("\niterating the training loader alone (no model), rows/s, medians:")
    x = torch.tensor(to.train.conts.values, dtype=torch.float32).contiguous()
    y = torch.tensor(to.train.ys.values, dtype=torch.float32).contiguous()
    for bs in sorted({SETUPS[n]['bs'] for n in a.setups.split(',')}):
        rates = {}
        for name, dl_type in LOADERS.items():
            set_seed(0)
            rates[name] = iterate(to.dataloaders(bs=bs, dl_type=dl_type).train, max(1, a.rounds))
        rates['bare torch'] = bare_torch(x, y, bs, max(1, a.rounds))
        res['iterate'][bs] = rates
        print(f"  bs {bs:4d}: fastai {rates['fastai']:>12,.0f}   tensor {rates['tensor']:>12,.0f}   bare torch {rates['bare torch']:>12,.0f}"
              f"   -> tensor/fastai {rates['tensor']/rates['fastai']:.1f}x, tensor/bare {rates['tensor']/rates['bare torch']:.2f}", flush=True)
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1, default=str)
    return res


if __name__ == '__main__': main()
