"""Cost of `DriftNormalize.update` against a pandas `.mean()` + `.std()` of the same frame.

`update` on a 1,000,000 x 20 float32 batch (scores: PSI on every row, KS on a 10,000-row sample, mean shift;
then the strategy's statistics) should cost at most 3x the pandas baseline. Each timing is the best of
`--repeats` runs; the proc is reset before every timed update so each run does the same work.

    python benchmarks/drift.py [--rows 1000000] [--cols 20] [--repeats 3]
"""
import argparse, time, warnings
import numpy as np, pandas as pd
from fastai.tabular.core import TabularPandas
from fastai_scaling.drift import DriftNormalize

warnings.filterwarnings('ignore')


def best_of(f, repeats, before=None):
    best = float('inf')
    for _ in range(repeats):
        if before: before()
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    return best


def main(rows=1_000_000, cols=20, repeats=3, train_rows=100_000):
    rng = np.random.default_rng(0)
    names = [f'x{i}' for i in range(cols)]
    train = pd.DataFrame(rng.standard_normal((train_rows, cols), dtype=np.float32), columns=names)
    train['y'] = np.float32(0)
    batch = pd.DataFrame(rng.standard_normal((rows, cols), dtype=np.float32) * 1.5 + 0.5, columns=names)

    base = best_of(lambda: (batch.mean(), batch.std()), repeats)
    print(f"batch {rows:,} x {cols} float32; pandas .mean() + .std(): {base * 1e3:.0f} ms (best of {repeats})")
    print(f"{'strategy':<28}{'update ms':>10}{'ratio':>8}")
    configs = [('frozen', {}), ('cumulative', {}), ('ema', {}), ('window', {'window': 100_000}),
               ('window', {'window': rows}), ('ema', {'threshold': 0.1})]
    ratios = {}
    for strategy, kw in configs:
        to = TabularPandas(train, procs=[DriftNormalize(strategy=strategy, min_rows=1, **kw)], cont_names=names,
                           y_names='y', splits=[list(range(train_rows)), []], reduce_memory=False)
        p = to.procs.drift_normalize
        t = best_of(lambda: p.update(batch), repeats, before=p.reset)
        label = strategy + ''.join(f' {k}={v:,}' if isinstance(v, int) else f' {k}={v}' for k, v in kw.items())
        ratios[label] = t / base
        print(f"{label:<28}{t * 1e3:>10.0f}{t / base:>8.2f}")
    t = best_of(lambda: p.drift_scores(batch), repeats)
    print(f"{'drift_scores only':<28}{t * 1e3:>10.0f}{t / base:>8.2f}")
    return ratios


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=1_000_000)
    ap.add_argument('--cols', type=int, default=20)
    ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    main(a.rows, a.cols, a.repeats)
