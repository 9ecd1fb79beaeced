"""Out-of-core scaler statistics (`from_data`, issue 13) against Dask's own route, on the same parquet data and scheduler.

Writes a synthetic parquet dataset (default 20,000,000 rows x 20 float32 columns, ~1.6 GB) in chunks to a temporary
directory, deleted afterwards, then times each route in a fresh subprocess and reports its peak RSS there
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`, the process's own high-water mark; imports are not timed, and the RSS
after them -- fastai and torch, ~0.7 GB -- is printed too):

  ours   moments      StandardNormalize.from_data(path)                     (fastai's Normalize statistics: mean, std ddof=0)
  ours   minmax       MinMaxNormalize.from_data(path)
  ours   robust_kll   RobustNormalize.from_data(path, exact=False)           (KLL k=200, one pass, rank error <= 1.33%)
  ours   robust_exact RobustNormalize.from_data(path)                        (numpy's exact percentiles, two passes)
  ours   robust_dask  RobustNormalize.from_data(dd.read_parquet(path), exact=False)   (our summaries, Dask's scheduler)
  dask   moments      dask.compute(ddf.mean(), ddf.std(ddof=0), ddf.min(), ddf.max())
  dask   quantile     ddf.quantile([.25, .5, .75])                           (approximate, no error bound)
  dask   describe     ddf.describe()
  dask   robust_ml    dask_ml.preprocessing.RobustScaler().fit(ddf)          (if dask-ml is installed)

Dask runs on its default local (threaded) scheduler, as `from_data(ddf)` does when no Client is active. Speeds are
rows per second of each route; the ratios compare ours with Dask's route for the same statistics, measured in the same
run. The machine is shared and noisy: `--repeat` runs every route that many times, round-robin (so a change of load
hits all routes alike), and reports the median; the load average is printed before and after.

    python benchmarks/scale.py                    # the full 20M-row run
    python benchmarks/scale.py --rows 2000000     # smaller
"""
import argparse, json, os, resource, shutil, statistics, subprocess, sys, tempfile, time

ROUTES = ['ours:moments', 'ours:minmax', 'ours:robust_kll', 'ours:robust_exact', 'ours:robust_dask',
          'dask:moments', 'dask:quantile', 'dask:describe', 'dask:robust_ml']


def write_data(path, rows, cols, chunk):
    "Synthetic float32 columns, written `chunk` rows per file: normal, log-normal, uniform and tied integer columns, 1% NaN"
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq
    rng = np.random.default_rng(0)
    kinds = ['normal', 'lognormal', 'uniform', 'integer']
    for i, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        arrays = {}
        for j in range(cols):
            kind = kinds[j % len(kinds)]
            x = (rng.normal(10 * j, 1 + j, n) if kind == 'normal' else rng.lognormal(j / 10, 1, n) if kind == 'lognormal'
                 else rng.uniform(-j, j + 1, n) if kind == 'uniform' else rng.integers(0, 5 + j, n)).astype(np.float32)
            x[rng.random(n) < 0.01] = np.nan
            arrays[f'c{j:02d}'] = x
        pq.write_table(pa.table(arrays), os.path.join(path, f'part-{i:05d}.parquet'), row_group_size=262_144)


def run_route(route, path, cols):
    "Run one route in this process; return what it computed (for the accuracy comparison)"
    import numpy as np
    names = [f'c{j:02d}' for j in range(cols)]
    side, what = route.split(':')
    if side == 'ours':
        from fastai_scaling.procs import StandardNormalize, MinMaxNormalize, RobustNormalize
        if what == 'moments': p = StandardNormalize.from_data(path, names); return dict(center=p.centers, scale=p.scales)
        if what == 'minmax': p = MinMaxNormalize.from_data(path, names); return dict(center=p.centers, scale=p.scales)
        if what == 'robust_kll': p = RobustNormalize.from_data(path, names, exact=False)
        elif what == 'robust_exact': p = RobustNormalize.from_data(path, names)
        else:
            import dask.dataframe as dd
            p = RobustNormalize.from_data(dd.read_parquet(path), names, exact=False)
        return dict(center=p.centers, scale=p.scales)
    import dask, dask.dataframe as dd
    ddf = dd.read_parquet(path)
    if what == 'moments':
        mean, std, lo, hi = dask.compute(ddf.mean(), ddf.std(ddof=0), ddf.min(), ddf.max())
        return dict(center=mean.to_dict(), scale=std.to_dict())
    if what == 'quantile':
        q = ddf.quantile([.25, .5, .75]).compute()
        return dict(center=q.loc[.5].to_dict(), scale=(q.loc[.75] - q.loc[.25]).to_dict())
    if what == 'describe':
        d = ddf.describe().compute()
        return dict(center=d.loc['50%'].to_dict(), scale=(d.loc['75%'] - d.loc['25%']).to_dict())
    from dask_ml.preprocessing import RobustScaler
    s = RobustScaler().fit(ddf)
    return dict(center=dict(zip(names, np.asarray(s.center_, dtype=float))), scale=dict(zip(names, np.asarray(s.scale_, dtype=float))))


def child(route, path, cols):
    import numpy, pandas, dask.dataframe, fastai_scaling.procs, fastai_scaling.summaries     # imports (fastai: ~5 s) are not timed
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux
    t = time.perf_counter()
    out = run_route(route, path, cols)
    secs = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(route=route, seconds=secs, rss_mb=rss, base_mb=base,
                          out={k: {c: float(v) for c, v in d.items()} for k, d in out.items()})))


def measure(route, path, cols):
    r = subprocess.run([sys.executable, __file__, '--child', route, '--dir', path, '--cols', str(cols)], capture_output=True, text=True)
    if r.returncode:
        return dict(route=route, error=(r.stderr.strip().splitlines() or ['?'])[-1])
    return json.loads(r.stdout.strip().splitlines()[-1])


def load(): return ' '.join(f'{x:.2f}' for x in os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rows', type=int, default=20_000_000)
    ap.add_argument('--cols', type=int, default=20)
    ap.add_argument('--file-rows', type=int, default=1_000_000, help='rows per parquet file')
    ap.add_argument('--repeat', type=int, default=1, help='runs per route; the median is reported')
    ap.add_argument('--routes', default=','.join(ROUTES))
    ap.add_argument('--dir', help='use (and keep) this directory; default: a temporary one, deleted afterwards')
    ap.add_argument('--child', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child(a.child, a.dir, a.cols)
    tmp = a.dir or tempfile.mkdtemp(prefix='fastai_scaling_bench_')
    try:
        os.makedirs(tmp, exist_ok=True)
        if not any(f.endswith('.parquet') for f in os.listdir(tmp)):
            t = time.perf_counter()
            write_data(tmp, a.rows, a.cols, a.file_rows)
            size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)) / 2**30
            print(f'wrote {a.rows:,} rows x {a.cols} float32 columns: {size:.2f} GiB of parquet in {time.perf_counter() - t:.0f} s')
        print(f'load average before: {load()}  ({os.cpu_count()} cores)')
        results, routes = {}, a.routes.split(',')
        # round-robin: every repeat runs every route once, so a change in the machine's load hits all routes alike
        runs_of = {route: [] for route in routes}
        for _ in range(a.repeat):
            for route in routes: runs_of[route].append(measure(route, tmp, a.cols))
        for route in routes:
            runs = runs_of[route]
            ok = [r for r in runs if 'error' not in r]
            if not ok:
                print(f"{route:20s} failed: {runs[0]['error']}"); continue
            secs = statistics.median(r['seconds'] for r in ok)
            results[route] = dict(seconds=secs, rss_mb=max(r['rss_mb'] for r in ok), base_mb=min(r['base_mb'] for r in ok), out=ok[0]['out'])
            times = ', '.join(f"{r['seconds']:.1f}" for r in ok)
            print(f"{route:20s} {secs:8.1f} s  {a.rows / secs / 1e6:7.2f} M rows/s  peak RSS {results[route]['rss_mb']:6.0f} MB "
                  f"(after imports {results[route]['base_mb']:4.0f} MB)  runs: {times}", flush=True)
        print(f'load average after: {load()}')
        print('\nspeed ratio (ours rows/s / dask rows/s; > 1: ours faster), same data and scheduler:')
        for ours, theirs in [('ours:moments', 'dask:moments'), ('ours:minmax', 'dask:moments'), ('ours:robust_kll', 'dask:quantile'),
                             ('ours:robust_exact', 'dask:quantile'), ('ours:robust_dask', 'dask:quantile'),
                             ('ours:robust_kll', 'dask:robust_ml'), ('ours:robust_exact', 'dask:robust_ml'),
                             ('ours:robust_exact', 'dask:describe')]:
            if ours in results and theirs in results:
                print(f"  {ours:18s} vs {theirs:15s} {results[theirs]['seconds'] / results[ours]['seconds']:6.2f}x")
        if 'ours:robust_exact' in results:
            exact = results['ours:robust_exact']['out']
            cont = [c for c in exact['center'] if int(c[1:]) % 4 != 3]    # the untied columns: on tied ones a rank-correct value can sit
            print('\nmedian and IQR vs the exact ones, untied columns (max over columns of |error| / exact IQR):')   # a whole step away
            for route in ['ours:robust_kll', 'ours:robust_dask', 'dask:quantile', 'dask:describe', 'dask:robust_ml']:
                if route not in results: continue
                o = results[route]['out']
                err = lambda k: max(abs(o[k][c] - exact[k][c]) / exact['scale'][c] for c in cont)
                print(f'  {route:18s} median {err("center"):.2e}  IQR {err("scale"):.2e}')
        if 'ours:moments' in results and 'dask:moments' in results:
            o, d = results['ours:moments']['out'], results['dask:moments']['out']
            rel = max(abs(o[k][c] - d[k][c]) / abs(d[k][c]) for k in o for c in o[k])
            print(f'\nmoments: ours vs dask, max relative difference {rel:.1e}')
    finally:
        if not a.dir: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__': main()
