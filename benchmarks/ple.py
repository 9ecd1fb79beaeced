"""What the piecewise-linear encoding costs and gives (issue 23, item 5).

1. Training time: seconds per epoch (training and validation) of fastai's MLP (200, 100) on 200,000 rows x 20 numeric
   columns at bs 1024, with `PiecewiseLinearEncode(n_bins=48)` (960 inputs to the first layer) and with
   `QuantileNormalize` (20), the same data, seed and model otherwise; a warm-up epoch each, then epochs alternated A/B,
   the median of the per-pair ratios (an epoch's time swings by 30% on a shared machine). Three settings: fastai's
   `TabDataLoader` and `tabular_learner`'s defaults (BatchNorm layers, `bn_cont`), the same with this package's
   `TensorTabDataLoader`, and `compare`'s model (no BatchNorm) with `TensorTabDataLoader`. torch's default threads.
   The goal: <= 1.5x.
2. Peak memory: the peak resident memory of a fresh process that builds the data (200,000 x 20), its loaders and the
   learner, and trains one epoch, for n_bins 8, 48 and 96 and for `QuantileNormalize`; against what grows with n_bins
   (the model, its gradients and Adam's two moments, and a batch's encoding) and what an encoding in the frame would take.
   The goal: the pipeline's peak independent of n_bins beyond the model and one batch.
3. Accuracy: the real-data benchmark's protocol (`benchmarks/realdata.py`: `compare`'s real-table settings, early
   stopping, a learning rate per choice and seed from 1e-3, 3e-3, 1e-2, test metric) on six of its tables, three
   regression and three classification, 3 seeds: fastai's `Normalize`, `QuantileNormalize`, `ple` (48 quantile bins)
   and `ple_tree` (a decision tree's bins, `TREE_DEFAULTS`).

Writes benchmarks/ple.json (read by the encode notebook) and prints a summary.

    python benchmarks/ple.py                 # about 25 minutes on 2 cores (accuracy: 20)
    python benchmarks/ple.py --only speed    # or memory, accuracy
"""
import argparse, json, os, resource, statistics, subprocess, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

N_ROWS, N_COLS, BS = 200_000, 20, 1024
ACCURACY_TABLES = ('Stat2Data/NCbirths', 'mosaicData/SaratogaHouses', 'wooldridge/k401ksubs', 'carData/BEPS', 'survival/rotterdam',
                   'Ecdat/Cracker')
ACCURACY_CHOICES = ['Normalize', 'QuantileNormalize', 'ple', 'ple_tree']


def table(n=N_ROWS, k=N_COLS, seed=0) -> pd.DataFrame:
    "k numeric columns of several shapes (normal, skewed, uniform, integer) and a target that is not linear in them"
    rng = np.random.default_rng(seed)
    makers = [lambda: rng.normal(size=n), lambda: rng.lognormal(2, 1, n), lambda: rng.uniform(0, 100, n), lambda: rng.integers(0, 30, n) * 1.]
    df = pd.DataFrame({f'x{j}': makers[j % 4]() for j in range(k)})
    df['y'] = np.sin(df.x0) + np.log(df.x1) / 2 + (df.x2 > 50) + rng.normal(size=n) * .1
    return df


def learner(df, proc, loader, model):
    from fastai.tabular.all import TabularPandas, TabDataLoader, tabular_learner, set_seed
    from fastai_scaling.loader import TensorTabDataLoader
    splits = (list(range(int(.8 * len(df)))), list(range(int(.8 * len(df)), len(df))))
    to = TabularPandas(df, procs=[proc], cont_names=list(df.columns[:-1]), y_names='y', splits=splits)
    set_seed(0)
    dls = to.dataloaders(bs=BS, dl_type=TabDataLoader if loader == 'fastai' else TensorTabDataLoader)
    set_seed(0)
    config = {} if model == 'fastai' else dict(use_bn=False, bn_cont=False)
    return tabular_learner(dls, layers=[200, 100], config=config, n_out=1)


def speed(pairs=6) -> list:
    from fastai_scaling.encode import PiecewiseLinearEncode
    from fastai_scaling.transforms import QuantileNormalize
    import torch
    df, out = table(), []
    for loader, model in (('fastai', 'fastai'), ('tensor', 'fastai'), ('tensor', 'compare')):
        a, b = learner(df, QuantileNormalize(), loader, model), learner(df, PiecewiseLinearEncode(n_bins=48), loader, model)
        ta, tb = [], []
        for i in range(pairs + 1):   # alternated, so that the machine's state changes both alike; the first pair warms up
            for learn, times in ((a, ta), (b, tb)):
                with learn.no_bar(), learn.no_logging():
                    start = time.perf_counter(); learn.fit(1, 1e-3); t = time.perf_counter() - start
                if i: times.append(t)
        row = dict(loader=loader, model=model, quantile_s=statistics.median(ta), ple_s=statistics.median(tb),
                   ratio=statistics.median(y / x for x, y in zip(ta, tb)), first_layer_inputs=[a.model.layers[0][0].in_features,
                   b.model.layers[0][0].in_features], threads=torch.get_num_threads())
        print(f"   {loader:6s} loader, {model:7s} MLP: QuantileNormalize {row['quantile_s']:.2f} s, ple {row['ple_s']:.2f} s per epoch: "
              f"{row['ratio']:.2f}x (first layer {row['first_layer_inputs'][0]} -> {row['first_layer_inputs'][1]} inputs)", flush=True)
        out.append(row)
    return out


def _memory_child(proc_name, n_bins):
    "One measurement, in its own process: peak RSS after data, loaders, learner and one epoch"
    warnings.filterwarnings('ignore')
    from fastai_scaling.encode import PiecewiseLinearEncode
    from fastai_scaling.transforms import QuantileNormalize
    df = table()
    proc = PiecewiseLinearEncode(n_bins=n_bins) if proc_name == 'ple' else QuantileNormalize()
    learn = learner(df, proc, 'fastai', 'fastai')
    del df
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    params = sum(p.numel() for p in learn.model.parameters())
    width = learn.model.layers[0][0].in_features
    print(json.dumps(dict(proc=proc_name, n_bins=n_bins, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          params=params, first_layer_inputs=width)))


def memory() -> list:
    out = []
    for proc, n_bins in (('quantile', 0), ('ple', 8), ('ple', 48), ('ple', 96)):
        p = subprocess.run([sys.executable, __file__, '--memory-child', proc, str(n_bins)], capture_output=True, text=True, timeout=1200,
                           env={**os.environ, 'PYTHONPATH': str(HERE.parent)})
        if p.returncode: raise RuntimeError(p.stderr[-2000:])
        row = json.loads(p.stdout.strip().splitlines()[-1])
        # what grows with n_bins: the model with its gradients and Adam's two moments (4 copies of float32 parameters), and a
        # batch's encoding (training and validation batches: the encoding, its BatchNorm output and saved tensors, a few copies)
        row['model_mb'] = 4 * 4 * row['params'] / 2**20
        row['batch_encoding_mb'] = BS * row['first_layer_inputs'] * 4 / 2**20
        row['frame_encoding_mb'] = N_ROWS * row['first_layer_inputs'] * 4 / 2**20   # what a proc that encoded the frame would add
        print(f"   {proc:8s} n_bins {n_bins:3d}: peak {row['peak_mb']:7.0f} MB; model x4 {row['model_mb']:5.1f} MB, one batch's encoding "
              f"{row['batch_encoding_mb']:4.1f} MB (the frame's would be {row['frame_encoding_mb']:5.0f} MB)", flush=True)
        out.append(row)
    return out


def accuracy(seeds=3, workers=2) -> list:
    from benchmarks.realdata import run_table, key, summarise
    from benchmarks.realdata_tables import TABLES
    results = []
    for t in [t for t in TABLES if key(t) in ACCURACY_TABLES]:
        r = run_table(t, ACCURACY_CHOICES, seeds, workers)
        means = pd.DataFrame(r['runs']).groupby('choice', sort=False).metric.mean()
        print(f"   {r['table']}: " + ', '.join(f"{c} {v:.4g}" for c, v in means.items()) + f" ({r['seconds']:.0f} s)", flush=True)
        results.append(r)
    s = summarise(results)
    print("   mean rank: " + ', '.join(f"{c} {v:.2f}" for c, v in s['mean_rank'].items()))
    print('   ' + s['wtl'].to_string().replace('\n', '\n   '))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--only', choices=('speed', 'memory', 'accuracy'))
    p.add_argument('--memory-child', nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.memory_child: return _memory_child(a.memory_child[0], int(a.memory_child[1]))
    warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
    path = HERE / 'ple.json'
    out = json.loads(path.read_text()) if path.exists() else {}
    machine = lambda: f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start (a machine shared with other work)"
    if not isinstance(out.get('machine'), dict): out['machine'] = {}
    if a.only in (None, 'speed'):
        out['machine']['speed'] = machine()
        print(f"1. training, seconds per epoch (median of alternated epochs), MLP 200-100, {N_ROWS:,} rows x {N_COLS} columns, bs {BS}")
        out['speed'] = speed()
    if a.only in (None, 'memory'):
        out['machine']['memory'] = machine()
        print("2. peak memory of a fresh process: data, loaders, learner, one epoch")
        out['memory'] = memory()
    if a.only in (None, 'accuracy'):
        out['machine']['accuracy'] = machine()
        print("3. accuracy: the real-data protocol on six tables, 3 seeds")
        out['accuracy'] = accuracy()
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {path}")


if __name__ == '__main__': main()
