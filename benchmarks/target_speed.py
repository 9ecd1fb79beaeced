"""What target scaling costs (issue 21, item 6): fitting against the same scaler on one input column, and training per epoch.

1. Fitting: `TargetNormalize(method).setup` on a 1,000,000-row table (its target) against the input scaler that method
   fits (`StandardNormalize`, `RobustNormalize`, `PowerNormalize`, `QuantileNormalize`) set up on one input column of
   the same values: best of 5, each on a fresh copy of a `TabularPandas` built without procs (shared/NOTES.md). The goal:
   no more than the input scaler (a ratio <= 1.0x, within noise).
2. Training: seconds per epoch (training and validation) of fastai's MLP (200, 100) on 20,000 rows x 10 columns, with
   and without `TargetNormalize('standard')` (and 'quantile', the costliest map), the same data and seed, alternated
   A/B over 9 epochs each, the median of the per-pair ratios taken (an epoch's time swings by 30% here); at bs 64 with
   fastai's `TabDataLoader` and with this package's `TensorTabDataLoader` (compare's loader, whose cheaper batches make
   any per-batch cost a larger share), and at bs 256. The goal: <= 1.02x.

    python benchmarks/target_speed.py          # about 4 minutes on 2 cores
"""
import copy, statistics, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def fit_times(n=1_000_000, repeats=5) -> dict:
    from fastai.tabular.all import TabularPandas
    from fastai_scaling.procs import StandardNormalize, RobustNormalize
    from fastai_scaling.transforms import PowerNormalize, QuantileNormalize
    from fastai_scaling.target import TargetNormalize
    rng = np.random.default_rng(0)
    y = rng.lognormal(3, 1, n)
    df = pd.DataFrame({'x': y, 'y': y})
    base = TabularPandas(df, procs=[], cont_names=['x'], y_names='y', splits=(list(range(int(.8 * n))), list(range(int(.8 * n), n))),
                         reduce_memory=False)
    pairs = {'standard': StandardNormalize, 'robust': RobustNormalize, 'log': StandardNormalize, 'yeo-johnson': PowerNormalize,
             'quantile': QuantileNormalize}
    def best(make):
        make().setup(copy.deepcopy(base))   # a first, untimed run: imports and allocator warm-up count for neither
        times = []
        for _ in range(repeats):
            to, proc = copy.deepcopy(base), make()
            start = time.perf_counter(); proc.setup(to); times.append(time.perf_counter() - start)
        return min(times)
    return {m: (best(lambda: TargetNormalize(m)), best(lambda: scaler(cols=['x'])), scaler.__name__) for m, scaler in pairs.items()}


def epoch_times(method, n=20_000, epochs=9, bs=64, loader='fastai') -> tuple:
    from fastai.tabular.all import TabularPandas, tabular_learner, set_seed, Normalize
    from fastai_scaling.target import TargetNormalize
    from fastai_scaling.loader import tensor_dataloaders
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(n, 10)), columns=[f"x{i}" for i in range(10)])
    df['y'] = 300 + 50 * df.x0 + 20 * df.x1 ** 2 + rng.normal(0, 5, n)
    splits = (list(range(int(.8 * n))), list(range(int(.8 * n), n)))
    def learner(target):
        to = TabularPandas(df, procs=[Normalize] + ([TargetNormalize(method)] if target else []), cont_names=list(df.columns[:-1]),
                           y_names='y', splits=splits)
        set_seed(0)
        return tabular_learner(to.dataloaders(bs=bs) if loader == 'fastai' else tensor_dataloaders(to, bs=bs), layers=[200, 100])
    a, b = learner(False), learner(True)
    ta, tb = [], []
    for _ in range(epochs):   # alternated, so that the machine's state changes both alike
        for learn, times in ((a, ta), (b, tb)):
            with learn.no_bar(), learn.no_logging():
                start = time.perf_counter(); learn.fit(1, 1e-3); times.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb), statistics.median(b / a for a, b in zip(ta, tb))


def main():
    warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
    torch.set_num_threads(1)
    print("1. fitting on 1,000,000 rows (best of 5): TargetNormalize against the same scaler on one input column")
    for m, (t, s, name) in fit_times().items():
        print(f"   {m:12s} {t:.3f} s against {name} {s:.3f} s: {t / s:.2f}x")
    print("2. training, seconds per epoch (median of 9, alternated), MLP 200-100, 20,000 rows")
    for m, bs, loader in (('standard', 64, 'fastai'), ('standard', 64, 'tensor'), ('standard', 256, 'fastai'),
                          ('quantile', 64, 'fastai'), ('quantile', 64, 'tensor')):
        a, b, ratio = epoch_times(m, bs=bs, loader=loader)
        print(f"   TargetNormalize({m!r}), bs {bs}, {loader} loader: {b:.3f} s against {a:.3f} s without; "
              f"median ratio of the alternated pairs {ratio:.3f}x", flush=True)


if __name__ == '__main__': main()
