"The `fastai_scaling` command line: arguments parsed before the heavy imports, help text, and `fastai_scaling suggest`."
import json, os, re, subprocess, sys, time
from pathlib import Path

import numpy as np, pandas as pd, pytest

ROOT = Path(__file__).parents[1]
HEAVY = ('torch', 'fastai', 'pandas')
# runs `main(argv)` in a fresh interpreter and reports its exit code and which heavy modules it imported, on stderr's last line
PROBE = ("import sys, json\nfrom fastai_scaling.cli import main\ntry: rc = main(sys.argv[1:])\nexcept SystemExit as e: rc = e.code\n"
         "sys.stderr.write(json.dumps([rc, [m for m in %r if m in sys.modules]]))" % (HEAVY,))


def fresh(*argv, columns=100):
    "(exit code, stdout, stderr without the probe's line, heavy modules imported) of `main(argv)` in a new interpreter"
    p = subprocess.run([sys.executable, '-c', PROBE, *map(str, argv)], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, 'COLUMNS': str(columns)})
    err, _, status = p.stderr.rpartition('\n')
    rc, heavy = json.loads(status)
    return rc, p.stdout, err, heavy


# ---- item 13: parse first, import what the command needs after ------------------------------------------------

def test_the_cli_module_imports_only_the_standard_library():
    code = "import sys, fastai_scaling.cli; print([m for m in %r if m in sys.modules])" % (HEAVY,)
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == '[]', p.stdout + p.stderr


@pytest.mark.parametrize('argv', [['--help'], ['compare', '--help'], ['suggest', '--help'], ['drift', '--help']])
def test_help_needs_no_heavy_import(argv):
    rc, out, err, heavy = fresh(*argv)
    assert (rc, heavy, err) == (0, [], '')
    assert out.startswith('usage: fastai_scaling')


@pytest.mark.parametrize('argv, message', [
    (['compare', '--procs', 'none,StandardScaler'], "argument --procs: unknown scaler 'StandardScaler'; choose from none, Normalize"),
    (['compare', '--procs', ','], 'no scaling choices given'),
    (['compare', '--csv', 'data.csv'], '--csv needs --y, the target column'),
    (['compare', '--csv', 'nope.csv', '--y', 'price'], 'nope.csv: no such file'),
    (['compare', '--csv', 'tests', '--y', 'price'], 'tests is a directory, not a CSV file'),
    (['compare', '--y', 'price'], 'give --csv too'),
    (['compare', '--cat', 'a'], '--cat and --cont apply to --csv data only'),
    (['compare', '--task', 'classification'], '--task applies to --csv data only'),
    (['compare', '--dataset', 'iris'], "unknown dataset 'iris'; choose from breast_cancer, diabetes"),
    (['compare', '--dataset', 'diabetes', '--csv', 'x.csv', '--y', 'y'], 'give --csv or --dataset, not both'),
    (['compare', '--rows', 'many'], "argument --rows: 'many' is not a int"),
    (['compare', '--epochs', '0'], "argument --epochs: '0' must be positive"),
    (['compare', '--colour', 'red'], 'unrecognized arguments: --colour red'),
    (['suggest', '--dataset', 'iris'], "unknown dataset 'iris'"),
    (['suggest', '--out', 'no/such/folder/advice.csv'], '--out no/such/folder/advice.csv: folder no/such/folder does not exist'),
    (['suggest', '--out', 'tests'], '--out tests is a folder; give a file name such as tests/advice.csv'),
    (['compare', '--out', 'setup.py'], '--out setup.py is a file; give a folder for the report'),
])
def test_argument_errors_come_before_any_heavy_import(argv, message):
    rc, out, err, heavy = fresh(*argv)
    assert (rc, heavy, out) == (2, [], '')
    assert err.startswith(f'fastai_scaling {argv[0]}: error: ') and message in err and '\n' not in err, err


def test_no_command_is_an_error():
    rc, out, err, heavy = fresh()
    assert (rc, heavy) == (2, []) and err.startswith('fastai_scaling: error:') and '\n' not in err


def test_installed_console_script_is_the_light_one():
    "The entry point is `fastai_scaling.cli:main`; its `--help` comes back at once (timed here only for the record)"
    script = Path(sys.executable).parent/'fastai_scaling'
    if not script.exists(): pytest.skip('the package is not installed in this environment')
    assert 'from fastai_scaling.cli import main' in script.read_text()
    start = time.perf_counter()
    p = subprocess.run([str(script), '--help'], capture_output=True, text=True, timeout=120)
    print(f"fastai_scaling --help: {time.perf_counter() - start:.2f} s")
    assert p.returncode == 0 and 'compare' in p.stdout and 'suggest' in p.stdout


@pytest.mark.parametrize('columns', [40, 60, 100, 200])
def test_procs_help_never_cuts_a_name(columns):
    from fastai_scaling.registry import scaler_names
    rc, out, err, heavy = fresh('compare', '--help', columns=columns)
    assert rc == 0
    words = {w.strip(',().') for w in out.split()}
    assert set(scaler_names('compare')) <= words and {'--csv/--dataset', 'fit_one_cycle(10'} <= words


def test_the_light_names_agree_with_the_registry():
    "One list of names for the command line, checked against the registry it stands for"
    from fastai_scaling import registry, compare
    assert registry.scaler_names('compare') == tuple(compare.SCALERS)
    assert registry.scaler_names('default') == tuple(compare.DEFAULT_CHOICES)
    assert registry.DATASETS == tuple(compare.DATASETS)


def test_the_help_states_the_defaults_compare_uses():
    "The numbers in `compare --help` are the ones `seed_data` and `table_training` give"
    from fastai_scaling.compare import seed_data, table_training
    rc, out, err, heavy = fresh('compare', '--help', columns=1000)
    help_of, option = {}, None
    for l in out.splitlines():   # an option's help, with the lines argparse wraps it onto
        if l.strip().startswith('-'): option = l.split()[0] if l.strip().startswith('--') else None
        if option and l.strip(): help_of[option] = ' '.join(help_of.get(option, '').split() + l.split())
        if not l.strip(): option = None
    seed, small, mid, big = seed_data(10).training, table_training(10), table_training(2_000), table_training(100_000)
    assert f"default: {seed['epochs']} for the synthetic data, {small['epochs']} for --csv/--dataset" in help_of['--epochs']
    lrs = re.search(r"default: (\S+) for the synthetic data, (\S+) for --csv/--dataset", help_of['--lr']).groups()
    assert float(lrs[0]) == seed['lr'] and [float(v) for v in lrs[1].split(',')] == small['lr']
    assert (f"default: {seed['bs']} for the synthetic data; for --csv/--dataset {small['bs']} under 2,000 rows, {mid['bs']} under "
            f"100,000, {big['bs']} from there") in help_of['--bs']
    assert table_training(1_999)['bs'] == small['bs'] and table_training(99_999)['bs'] == mid['bs']
    assert f"{','.join(map(str, small['layers']))} for --csv/--dataset" in help_of['--layers'] and seed['layers'] == []
    epochs, *lr = re.search(r"Adam, fit_one_cycle for up to (\d+) epochs at the best of (\S+), (\S+) and (\S+) on validation",
                            ' '.join(out.split())).groups()
    assert (int(epochs), [float(v) for v in lr]) == (small['epochs'], small['lr'])
    assert (f"default: {small['target_scaling']} for a regression --csv/--dataset, measured better on real tables; none for the "
            "synthetic data") in help_of['--target-scaling'] and 'target_scaling' not in seed


# ---- `fastai_scaling suggest` ------------------------------------------------------------------------------

def run(*argv, capsys):
    from fastai_scaling.cli import main
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_suggest_command_prints_the_advice_table(capsys):
    out = run('suggest', '--dataset', 'breast_cancer', capsys=capsys)
    assert out.startswith('data: scikit-learn breast_cancer') and 'reason' in out and 'suggested: ' in out
    for col in ('mean_radius', 'worst_area'): assert f"\n{col} " in out


def test_suggest_command_on_a_csv_warns_about_constant_columns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pd.DataFrame({'a': rng.lognormal(size=200), 'c': 1., 'flag': rng.integers(0, 2, 200), 'y': rng.normal(size=200)}).to_csv(tmp_path / 'd.csv', index=False)
    out = run('suggest', '--csv', tmp_path / 'd.csv', '--y', 'y', capsys=capsys)
    assert "warning: suggest_scalers: column(s) ['c'] are constant" in out
    table = {line.split()[0]: line for line in out.splitlines()[1:] if line and line.split()[0] in ('a', 'c', 'flag')}
    assert 'PowerNormalize' in table['a'] and ' none ' in table['c'] and ' none ' in table['flag']


@pytest.mark.parametrize('argv, message', [
    (['suggest', '--csv', 'nope.csv', '--y', 'y'], 'nope.csv: no such file'),
    (['suggest', '--dataset', 'iris'], "unknown dataset 'iris'"),
    (['suggest', '--dataset', 'diabetes', '--bogus'], 'unrecognized arguments: --bogus')])
def test_suggest_command_errors_are_one_line(argv, message, capsys):
    from fastai_scaling.cli import main
    with pytest.raises(SystemExit) as e: main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('fastai_scaling suggest: error:') and message in err and '\n' not in err


def training_advice(d, seed=42):
    "`suggest_scalers` on the training rows `compare` would fit `auto` on: what `suggest` must print"
    from fastai_scaling.compare import split_rows
    from fastai_scaling.auto import suggest_scalers
    train = split_rows(d.df[d.y_name], d.task, 0.2, 0.2, seed)[0]   # the real-table split: 60/20/20
    return suggest_scalers(d.df.iloc[train], d.cont_names, warn=False)


@pytest.fixture(scope='module')
def wide_csv(tmp_path_factory):
    "Long column names, skewed and heavy-tailed columns (long reasons), a constant one, and many rows of advice"
    rng = np.random.default_rng(1); n = 500
    df = pd.DataFrame({'a_very_long_column_name_that_goes_on_and_on': rng.lognormal(size=n), 'heavy': rng.standard_t(1.5, n),
                       'const': 2., 'pct': rng.uniform(0, 100, n), 'temp': rng.normal(15, 8, n), 'y': rng.normal(size=n)})
    path = tmp_path_factory.mktemp('suggest')/'wide.csv'
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize('data', [['--dataset', 'breast_cancer'], ['--dataset', 'diabetes'], 'wide'])
def test_suggest_fits_100_columns_and_loses_nothing(data, wide_csv, capsys):
    argv = ['--csv', wide_csv, '--y', 'y'] if data == 'wide' else data
    out = run('suggest', *argv, capsys=capsys)
    lines = out.splitlines()
    assert max(map(len, lines)) <= 100, max(lines, key=len)
    from fastai_scaling.compare import csv_data, sklearn_data
    d = csv_data(wide_csv, 'y') if data == 'wide' else sklearn_data(data[1])
    table = training_advice(d)
    header = next(i for i, l in enumerate(lines) if l.startswith('column '))
    at = lines[header].index('reason')
    body = lines[header + 1:]
    rows, current = [], None
    for line in body:
        if line.startswith('suggested: ') or not line.strip(): break
        if line[:at].strip(): current = [line[:at].split(), line[at:]]; rows.append(current)
        else: current[1] += ' ' + line[at:]                                      # a reason wrapped under itself
    assert [r[0][-1] for r in rows] == table.scaler.tolist()
    assert [r[1] for r in rows] == table.reason.tolist()
    names = [r[0][0] for r in rows]
    assert [n if len(n) <= 28 else n[:25] + '...' for n in table.index] == names


def test_suggest_wide_and_out(wide_csv, tmp_path, capsys):
    out = run('suggest', '--csv', wide_csv, '--y', 'y', '--wide', capsys=capsys)
    header = next(l for l in out.splitlines() if 'quartile_skewness' in l)
    assert all(c in header for c in ('n_unique', 'missing_share', 'min', 'max', 'outlier_share', 'kurtosis', 'scaler', 'reason'))
    assert 'a_very_long_column_name_that_goes_on_and_on ' in out and max(map(len, out.splitlines())) > 100
    out = run('suggest', '--csv', wide_csv, '--y', 'y', '--out', tmp_path/'advice.csv', capsys=capsys)
    saved = pd.read_csv(tmp_path/'advice.csv', index_col=0)
    from fastai_scaling.compare import csv_data
    expected = training_advice(csv_data(wide_csv, 'y'))
    assert list(saved.index) == list(expected.index) and list(saved.columns) == list(expected.columns)
    pd.testing.assert_series_equal(saved.reason, expected.reason)
    np.testing.assert_allclose(saved['kurtosis'].astype(float), expected['kurtosis'].astype(float), rtol=1e-12)
    assert f"{tmp_path/'advice.csv'}" in ''.join(out.split()) and max(map(len, out.splitlines())) <= 100


def test_suggest_prints_what_auto_applies_in_compare(tmp_path, capsys):
    "Cause (d) of issue 20: the advice printed and the advice applied were made on different rows (all vs training) and values (raw vs median-filled)"
    from fastai_scaling.compare import csv_data
    rng = np.random.default_rng(3); n = 600
    df = pd.DataFrame({'pct': rng.uniform(0, 100, n), 'temp': rng.normal(15, 8, n), 'price': rng.lognormal(3, 1, n),
                       'visits': rng.poisson(1.5, n).astype(float), 'y': rng.normal(size=n)})
    df.loc[rng.random(n) < 0.55, ['pct', 'temp']] = np.nan   # a median fill of half would put both quartiles on it: 'heavy tails'
    df.to_csv(tmp_path / 'holes.csv', index=False)
    run('suggest', '--csv', tmp_path / 'holes.csv', '--y', 'y', '--out', tmp_path / 'advice.csv', capsys=capsys)
    printed = pd.read_csv(tmp_path / 'advice.csv', index_col=0)['scaler']
    res = csv_data(tmp_path / 'holes.csv', 'y').compare(procs='auto', epochs=1, progress=False)
    applied = res.runs['auto'].choices['scaler']
    assert printed.to_dict() == applied.to_dict()
    assert printed['temp'] == 'StandardNormalize'   # normal where observed; the filled medians would make it heavy-tailed
    from fastai_scaling.cli import main
    assert main(['compare', '--csv', str(tmp_path / 'holes.csv'), '--y', 'y', '--procs', 'auto', '--epochs', '1', '--workers', '1',
                 '--out', str(tmp_path / 'rep')]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith('auto applied: '))
    for col, scaler in applied.items(): assert f"{col}" in line.split(scaler)[1].split(')')[0]


# ---- issue 25: `fastai_scaling drift` ----------------------------------------------------------------------------

def drift_csvs(tmp_path):
    r = np.random.default_rng(0)
    ref = pd.DataFrame({'a': r.normal(size=2000), 'b': r.exponential(size=2000), 'shop': r.choice(['n', 's', 'e'], 2000)})
    new = pd.DataFrame({'a': r.normal(1, 1, 1500), 'b': r.exponential(size=1500), 'shop': r.choice(['n', 's', 'w'], 1500)})
    new['date'] = pd.date_range('2025-01-01', periods=1500, freq='h')
    for name, df in [('ref', ref), ('new', new), ('same', ref.iloc[:1000])]: df.to_csv(tmp_path / f'{name}.csv', index=False)
    return ref, new


def test_drift_command_exits_1_on_dataset_drift_and_writes_the_report(tmp_path):
    ref, new = drift_csvs(tmp_path)
    rc, out, err, _ = fresh('drift', '--reference', tmp_path / 'ref.csv', '--new', tmp_path / 'new.csv', '--cats', 'shop',
                            '--period', 'date:W', '--out', tmp_path / 'rep')
    assert rc == 1, err
    lines = out.splitlines()
    assert lines[1] == "note: the reference has no column 'date': chunks are judged by fixed thresholds"
    lines = lines[1:]
    assert [l.split()[0] for l in lines[2:5]] == ['a', 'b', 'shop'] and [l.split()[-1] for l in lines[2:5]] == ['yes', 'no', 'yes']
    assert lines[-1].startswith('dataset: DRIFTED (2 of 3 columns')
    scores = pd.read_csv(tmp_path / 'rep' / 'scores.csv', index_col=0)
    assert scores['drifted'].tolist() == [True, False, True] and scores.loc['shop', 'unseen_share'] == pytest.approx((new['shop'] == 'w').mean())
    assert len(pd.read_csv(tmp_path / 'rep' / 'chunks.csv')) == 3 * new['date'].dt.to_period('W').nunique()
    assert (tmp_path / 'rep' / 'report.html').read_text().count('data:image/png;base64') == 2


def test_drift_command_exits_0_without_drift_and_2_on_errors(tmp_path):
    drift_csvs(tmp_path)
    rc, out, err, _ = fresh('drift', '--reference', tmp_path / 'ref.csv', '--new', tmp_path / 'same.csv', '--cats', 'shop', '--out', tmp_path / 'r')
    assert rc == 0 and 'dataset: no drift (0 of 3 columns' in out, err
    for argv, message in [(['--new', tmp_path / 'nope.csv'], 'nope.csv: no such file'), (['--drift-share', '2'], 'at most 1'),
                          (['--period', 'date'], 'give COL:FREQ'), (['--cats', 'zone'], "['zone'] are missing from the reference")]:
        args = {'--reference': tmp_path / 'ref.csv', '--new': tmp_path / 'new.csv', **dict(zip(argv[::2], argv[1::2]))}
        rc, out, err, _ = fresh('drift', *[v for kv in args.items() for v in kv], '--out', tmp_path / 'r')
        assert rc == 2 and err.startswith('fastai_scaling drift: error: ') and message in err and '\n' not in err, err
