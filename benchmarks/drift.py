"""Cost of `DriftNormalize.update` against a pandas `.mean()` + `.std()` of the same frame, and of `drift_scores` against Evidently.

`update` on a 1,000,000 x 20 float32 batch (scores: PSI on every row, KS on a 10,000-row sample, mean shift;
then the strategy's statistics) should cost at most 3x the pandas baseline. Each timing is the best of
`--repeats` runs; the proc is reset before every timed update so each run does the same work.

    python benchmarks/drift.py [--rows 1000000] [--cols 20] [--repeats 3]

`--scores` (issue 25, item 7): `drift_scores` (every statistic, Evidently's verdict per column) for 20 numeric + 5
categorical columns (8 categories each) of 1,000,000 new rows against a 200,000-row reference; goal: within 3 s on
2 cores. Against scipy's functions called per column on the same data (`wasserstein_distance` / `np.std`, `ks_2samp`,
`jensenshannon` on 30 Sturges bins as Evidently bins, `chisquare` on category counts) and, with
`--evidently-python` (a separate venv: `python3 -m venv /tmp/evtest && /tmp/evtest/bin/pip install evidently
"pandas<3"`), against Evidently's `DataDriftPreset` on the same frames (generated from the same seed there).

    python benchmarks/drift.py --scores [--evidently-python /tmp/evtest/bin/python]
"""
import argparse, subprocess, sys, time, warnings
import numpy as np, pandas as pd

warnings.filterwarnings('ignore')


def best_of(f, repeats, before=None):
    best = float('inf')
    for _ in range(repeats):
        if before: before()
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    return best


def main(rows=1_000_000, cols=20, repeats=3, train_rows=100_000):
    from fastai.tabular.core import TabularPandas
    from fastai_scaling.drift import DriftNormalize
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


NUMS, CATS = [f'x{i}' for i in range(20)], [f'c{j}' for j in range(5)]

def score_frames(rows=1_000_000, ref_rows=200_000):
    "The reference and the new frame of `--scores`: standard normals (new: shifted by 0.1 sd) and 8-category columns (new: other shares)"
    rng = np.random.default_rng(0)
    def frame(n, shift, p):
        df = pd.DataFrame(rng.standard_normal((n, len(NUMS)), dtype=np.float32) + np.float32(shift), columns=NUMS)
        for c in CATS: df[c] = pd.Categorical(rng.choice([f'v{k}' for k in range(8)], n, p=p))
        return df
    return frame(ref_rows, 0., None), frame(rows, .1, [.2] + [.8 / 7] * 7)

def evidently_seconds(repeats):
    "Run inside the Evidently venv: the best time of its `DataDriftPreset` report on the `--scores` frames"
    from evidently import Report, Dataset, DataDefinition
    from evidently.presets import DataDriftPreset
    ref, new = score_frames()
    dd = DataDefinition(numerical_columns=NUMS, categorical_columns=CATS)
    def run():
        snap = Report([DataDriftPreset()]).run(current_data=Dataset.from_pandas(new, data_definition=dd),
                                               reference_data=Dataset.from_pandas(ref, data_definition=dd))
        return snap.dict()['metrics'][0]['value']
    t = best_of(run, repeats)
    return t, run()

def scipy_per_column(ref, new):
    "The same questions asked of scipy, column by column, on the whole data"
    import scipy.stats, scipy.spatial.distance
    for c in NUMS:
        x, y = ref[c].to_numpy(np.float64), new[c].to_numpy(np.float64)
        scipy.stats.wasserstein_distance(x, y) / np.std(x); scipy.stats.ks_2samp(x, y)
        bins = np.histogram_bin_edges(np.concatenate([x, y]), bins='sturges')
        scipy.spatial.distance.jensenshannon(np.histogram(x, bins)[0] / len(x), np.histogram(y, bins)[0] / len(y))
    for c in CATS:
        vr, vn = ref[c].value_counts(), new[c].value_counts()
        scipy.stats.chisquare(vn[vr.index], vr.to_numpy() * len(new) / len(ref))

def scores(repeats=3, evidently_python=None):
    from fastai.tabular.core import TabularPandas
    from fastai_scaling.drift import DriftNormalize
    ref, new = score_frames()
    to = TabularPandas(ref.assign(y=np.float32(0)), procs=[DriftNormalize()], cont_names=NUMS, cat_names=CATS, y_names='y',
                       splits=[list(range(len(ref))), []], reduce_memory=False)
    p = to.procs.drift_normalize
    t = best_of(lambda: p.drift_scores(new), repeats)
    d = p.dataset_drift(p.drift_scores(new))
    print(f"drift_scores, {len(NUMS)} numeric + {len(CATS)} categorical columns, {len(new):,} new vs {len(ref):,} reference rows: "
          f"{t:.2f} s (best of {repeats}); {d['n_drifted']} of {d['n_columns']} columns drifted")
    s = best_of(lambda: scipy_per_column(ref, new), 1)
    print(f"scipy per column (wasserstein_distance, ks_2samp, jensenshannon, chisquare) on all rows: {s:.2f} s ({s / t:.1f}x)")
    if evidently_python:
        out = subprocess.run([evidently_python, __file__, '--evidently-only', '--repeats', '1'], capture_output=True, text=True)
        if out.returncode: print(f"Evidently failed: {out.stderr[-2000:]}")
        else:
            e, value = out.stdout.split()[:2]
            print(f"Evidently DataDriftPreset (same frames, {evidently_python}): {float(e):.2f} s ({float(e) / t:.1f}x); "
                  f"its drifted share {float(value):.2f}")


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=1_000_000)
    ap.add_argument('--cols', type=int, default=20)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--scores', action='store_true', help="time drift_scores against scipy per column and Evidently")
    ap.add_argument('--evidently-python', default=None, help="python of a venv with evidently, for --scores")
    ap.add_argument('--evidently-only', action='store_true', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.evidently_only:
        warnings.filterwarnings('ignore')
        t, v = evidently_seconds(a.repeats)
        print(t, v['share'])
    elif a.scores: scores(a.repeats, a.evidently_python)
    else: main(a.rows, a.cols, a.repeats)
