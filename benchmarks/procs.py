"""Cost of each proc's setups+encodes against fastai's `Normalize` and scikit-learn's scalers, from one run.

    python benchmarks/procs.py [--rows 2000000] [--cols 20] [--repeats 3]

A proc's cost is `to.setup()` on a `TabularPandas` built with `do_setup=False`: fitting statistics on the
training split and encoding every row, which is what a proc adds to building `TabularPandas`. scikit-learn's cost
is `fit` on the same training rows plus `transform` of all rows, on a float32 array. Peak memory is measured
with tracemalloc (numpy reports its buffers to it) and given as extra bytes over the frame, in frames.
Goals (issue 2): RobustNormalize <= 2x Normalize's cost and faster than RobustScaler; extra peak <= 1 frame.
Goals (issue 10): PowerNormalize at least as fast as PowerTransformer; extra peak <= 1 frame for it and QuantileNormalize.
Goals (issue 22): QuantileNormalize with its default options within 2x of Normalize and at least 5x faster than
QuantileTransformer with the same n_quantiles and subsample (1000, 1,000,000).
The slow candidates (power transforms, QuantileTransformer) run `--slow-repeats` times (default 1).
Goals (issue 22): SquashNormalize within 1.5x of Normalize and faster than skrub's SquashingScaler; extra peak <= 1 frame.
"""
import argparse, gc, time, tracemalloc, warnings

import numpy as np, pandas as pd
from fastai.tabular.all import TabularPandas, Normalize
from sklearn.preprocessing import RobustScaler, MinMaxScaler, StandardScaler, QuantileTransformer, PowerTransformer
from fastai_scaling.procs import RobustNormalize, MinMaxNormalize
from fastai_scaling.transforms import QuantileNormalize, PowerNormalize
from fastai_scaling.squash import SquashNormalize
from skrub import SquashingScaler

warnings.filterwarnings('ignore')


def make_frame(rows, cols, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.lognormal(0, 1, (rows, cols)).astype(np.float32) * np.logspace(-3, 3, cols, dtype=np.float32)
    data[rng.random((rows, cols)) < 0.01] = np.nan
    df = pd.DataFrame(data, columns=[f'x{i}' for i in range(cols)])
    df['y'] = np.float32(0)
    return df


def proc_run(df, proc, conts, split):
    to = TabularPandas(df, procs=[proc() if isinstance(proc, type) else proc], cont_names=conts, y_names='y',
                       splits=split, do_setup=False, reduce_memory=False)
    def run(): to.setup()
    return run


def sklearn_run(df, scaler, conts, split):
    X = df[conts].to_numpy()
    train = split[0]
    def run(): scaler().fit(X[train]).transform(X)
    return run


def best_time(make_run, repeats):
    times = []
    for _ in range(repeats):
        run = make_run(); gc.collect()
        start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
        del run
    return min(times)


def extra_peak(make_run):
    run = make_run(); gc.collect()
    tracemalloc.start(); tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    run()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=2_000_000)
    ap.add_argument('--cols', type=int, default=20)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--slow-repeats', type=int, default=1)
    ap.add_argument('--only', help='comma-separated substrings: run the candidates whose name contains one (Normalize always runs)')
    args = ap.parse_args(argv)
    df = make_frame(args.rows, args.cols)
    conts = [c for c in df.columns if c != 'y']
    n_train = int(args.rows * 0.8)
    split = [list(range(n_train)), list(range(n_train, args.rows))]
    frame_bytes = df[conts].memory_usage(index=False).sum()
    print(f"frame: {args.rows:,} x {args.cols} float32 ({frame_bytes / 2**20:.0f} MiB), 80% training split, best of {args.repeats}\n")

    candidates = {
        'fastai Normalize': lambda: proc_run(df, Normalize, conts, split),
        'RobustNormalize': lambda: proc_run(df, RobustNormalize, conts, split),
        'MinMaxNormalize': lambda: proc_run(df, MinMaxNormalize, conts, split),
        'MinMaxNormalize(quantile_range=(1, 99), clip=True)': lambda: proc_run(df, MinMaxNormalize(quantile_range=(1, 99), clip=True), conts, split),
        'sklearn StandardScaler': lambda: sklearn_run(df, StandardScaler, conts, split),
        'sklearn RobustScaler': lambda: sklearn_run(df, RobustScaler, conts, split),
        'sklearn MinMaxScaler': lambda: sklearn_run(df, MinMaxScaler, conts, split),
        'QuantileNormalize': lambda: proc_run(df, QuantileNormalize, conts, split),
        'sklearn QuantileTransformer': lambda: sklearn_run(df, lambda: QuantileTransformer(n_quantiles=1000, subsample=1_000_000), conts, split),
        'PowerNormalize': lambda: proc_run(df, PowerNormalize, conts, split),
        'sklearn PowerTransformer': lambda: sklearn_run(df, PowerTransformer, conts, split),
        'SquashNormalize': lambda: proc_run(df, SquashNormalize, conts, split),
        'skrub SquashingScaler': lambda: sklearn_run(df, SquashingScaler, conts, split),
    }
    slow = {'sklearn QuantileTransformer', 'PowerNormalize', 'sklearn PowerTransformer'}   # QuantileNormalize: best of --repeats, as Normalize
    if args.only:
        keep = [k.strip() for k in args.only.split(',')]
        candidates = {n: f for n, f in candidates.items() if n == 'fastai Normalize' or any(k in n for k in keep)}
    rows = []
    for name, make_run in candidates.items():
        seconds = best_time(make_run, args.slow_repeats if name in slow else args.repeats)
        peak = extra_peak(make_run)
        rows.append(dict(candidate=name, seconds=seconds, peak_frames=peak / frame_bytes))
        print(f"  measured {name}: {seconds:.3f} s", flush=True)
    res = pd.DataFrame(rows).set_index('candidate')
    res['x Normalize'] = res.seconds / res.loc['fastai Normalize', 'seconds']
    print('\n' + res.round(3).to_string())
    sec = res.seconds
    goals = [('RobustNormalize', 'fastai Normalize', '<= 2'), ('RobustNormalize', 'sklearn RobustScaler', '< 1'),
             ('QuantileNormalize', 'sklearn QuantileTransformer', '<= 0.2'), ('QuantileNormalize', 'fastai Normalize', '<= 2'),
             ('PowerNormalize', 'sklearn PowerTransformer', '<= 1')]
    goals += [('SquashNormalize', 'fastai Normalize', '<= 1.5'), ('SquashNormalize', 'skrub SquashingScaler', '< 1')]
    print()
    for ours, peer, goal in goals:
        if ours in sec and peer in sec: print(f"{ours} / {peer} = {sec[ours] / sec[peer]:.2f}x  (goal {goal})")
    for ours in ('RobustNormalize', 'QuantileNormalize', 'PowerNormalize'):
        if ours in sec: print(f"extra peak memory, {ours} = {res.loc[ours, 'peak_frames']:.2f} frames  (goal <= 1)")
    if 'SquashNormalize' in sec: print(f"extra peak memory, SquashNormalize = {res.loc['SquashNormalize', 'peak_frames']:.2f} frames  (goal <= 1)")


if __name__ == '__main__':
    main()
