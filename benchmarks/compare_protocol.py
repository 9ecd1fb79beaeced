"""Wall time of `compare` on a real-table-sized problem with the real-table protocol (issue 20, item 1, its speed goal).

Goal: a 5,000-row, 20-column table, six choices x three seeds, within 3 minutes on 2 cores. The table is synthetic (so
that nothing is downloaded): 20 continuous columns of mixed shapes (normal, log-normal, uniform, counts) in units from
1e-2 to 1e4, and a regression target from a few of them plus noise. `compare_scalers` runs with `table_training(5000)`
(fastai's default MLP, 200 and 100, Adam, bs 64, up to 30 epochs with early stopping, patience 5, each choice and seed
at the best of the learning rates 1e-3, 3e-3 and 1e-2 on validation, a 60/20/20 split), `seeds=3`, `workers=2` and
six choices: the five real-table defaults and RobustNormalize, as `fastai_scaling compare --csv ... --seeds 3
--procs none,Normalize,QuantileNormalize,PowerNormalize,auto,RobustNormalize` would.

    python benchmarks/compare_protocol.py              # prints one line: rows, columns, runs, wall time, epochs run
"""
import argparse, os, time, warnings
import numpy as np, pandas as pd


def table(rows:int, cols:int, seed:int=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    makers = [lambda n: rng.normal(50, 10, n), lambda n: rng.lognormal(5, 1.5, n), lambda n: rng.uniform(0, 1e4, n),
              lambda n: rng.poisson(3, n).astype(float), lambda n: rng.normal(0, 1e-2, n)]
    df = pd.DataFrame({f"x{i}": makers[i % len(makers)](rows) for i in range(cols)})
    df['y'] = 0.05 * df.x0 + np.log1p(df.x1) + df.x2 / 5e3 + 0.3 * df.x3 + rng.normal(0, .5, rows)
    return df


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rows', type=int, default=5_000)
    p.add_argument('--cols', type=int, default=20)
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--workers', type=int, default=2)
    a = p.parse_args()
    warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
    from fastai_scaling.compare import compare_scalers, table_training
    df = table(a.rows, a.cols)
    conts = [c for c in df.columns if c != 'y']
    load = os.getloadavg()[0]
    start = time.perf_counter()
    training = table_training(len(df))
    training['procs'] = training['procs'] + ['RobustNormalize']   # the goal's six choices
    res = compare_scalers(df, 'y', conts, seeds=a.seeds, workers=a.workers, progress=False, **training)
    wall = time.perf_counter() - start
    epochs = res.results().epochs_run
    lrs = training['lr']
    print(f"{a.rows:,} rows x {a.cols} columns, {len(res.replicates)} choices x {a.seeds} seeds x {len(lrs)} learning rates, {a.workers} workers: "
          f"{wall:.0f} s wall ({'within' if wall <= 180 else 'over'} the 3-minute goal); epochs run per run "
          f"{epochs.min()}-{epochs.max()} (mean {epochs.mean():.1f}); load average before {load:.1f}")
    print(res.format_table())


if __name__ == '__main__': main()
