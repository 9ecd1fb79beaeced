"The `fastai_scaling compare` command and `compare_scalers`: CLI errors, reports, fairness, and the seed's finding at small size."
import os, subprocess, sys, warnings
from pathlib import Path

import numpy as np, pandas as pd, pytest

from fastai.tabular.all import Normalize, RandomSplitter, Callback
from fastai_scaling.procs import MinMaxNormalize
import fastai_scaling.compare as compare
from fastai_scaling.compare import (SCALERS, DEFAULT_CHOICES, CompareError, ScalerComparison, ScalerRun, BatchNormInputs, compare_scalers,
                                    csv_data, main, resolve_scalers, seed_data)

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
ROOT = Path(__file__).parents[1]
PNGS = ['loss_curves.png', 'raw_weights.png', 'weight_trajectories.png']


def run_main(*argv):
    "`main(argv)` -> (exit code, stdout, stderr) through pytest's capsys-free capture"
    import contextlib, io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: code = main([str(a) for a in argv])
        except SystemExit as e: code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope='module')
def csvs(tmp_path_factory):
    d = tmp_path_factory.mktemp('csv')
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({'sqft': rng.lognormal(7, .5, n), 'rooms': rng.integers(1, 8, n).astype(float),
                       'city': rng.choice(['a', 'b', 'c'], n)})
    df['price'] = 0.1 * df['sqft'] + 5 * df['rooms'] + df['city'].map({'a': 0., 'b': 20., 'c': 50.})
    df.loc[::50, 'rooms'] = np.nan                        # FillMissing runs too
    df.to_csv(d/'houses.csv', index=False)
    df.assign(price=df['city']).to_csv(d/'text_target.csv', index=False)
    (d/'empty.csv').write_text('')
    (d/'header_only.csv').write_text('sqft,price\n')
    return d


# ---- CLI errors: exit code 2, one line on stderr, no traceback ----------------------------------------------

def error_cases(d):
    return {
        'missing file': (['--csv', d/'nope.csv', '--y', 'price'], 'no such file'),
        'directory': (['--csv', d, '--y', 'price'], 'is a directory'),
        'unknown target column': (['--csv', d/'houses.csv', '--y', 'cost'], "unknown column(s) 'cost'"),
        'unknown cat column': (['--csv', d/'houses.csv', '--y', 'price', '--cat', 'town'], "unknown column(s) 'town'"),
        'unknown cont column': (['--csv', d/'houses.csv', '--y', 'price', '--cont', 'sqft,area'], "unknown column(s) 'area'"),
        'non-numeric target': (['--csv', d/'text_target.csv', '--y', 'price'], 'is not numeric'),
        'empty csv': (['--csv', d/'empty.csv', '--y', 'price'], 'is empty'),
        'header-only csv': (['--csv', d/'header_only.csv', '--y', 'price'], 'has no data rows'),
        'csv without y': (['--csv', d/'houses.csv'], '--csv needs --y'),
        'y without csv': (['--y', 'price'], 'give --csv too'),
        'csv and dataset': (['--csv', d/'houses.csv', '--y', 'price', '--dataset', 'diabetes'], 'not both'),
        'unknown proc': (['--procs', 'none,StandardScaler'], 'choose from none, Normalize, RobustNormalize'),
        'unknown dataset': (['--dataset', 'iris'], 'choose from breast_cancer, diabetes'),
        'bad rows': (['--rows', 'many'], "argument --rows: 'many' is not a int"),
        'negative epochs': (['--epochs', '-1'], 'must be positive'),
        'unknown flag': (['--colour', 'red'], 'unrecognized arguments'),
    }

CASES = list(error_cases(Path('.')))

@pytest.mark.parametrize('case', CASES)
def test_cli_error(csvs, tmp_path, case):
    argv, message = error_cases(csvs)[case]
    code, out, err = run_main('compare', *argv, '--out', tmp_path/'report')
    assert code == 2, (out, err)
    assert err.startswith('fastai_scaling compare: error: ') and message in err, err
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert not (tmp_path/'report').exists()

def test_cli_no_subcommand():
    code, _, err = run_main()
    assert code == 2 and err.startswith('fastai_scaling: error:') and err.count('\n') == 1

def test_console_script_error_exit_code(csvs):
    "The installed entry point (or `main` in a fresh interpreter): real exit status 2 and a one-line stderr"
    script = Path(sys.executable).parent/'fastai_scaling'
    cmd = [str(script)] if script.exists() else [sys.executable, '-c', 'import sys; from fastai_scaling.compare import main; sys.exit(main())']
    p = subprocess.run([*cmd, 'compare', '--csv', str(csvs/'nope.csv'), '--y', 'price'], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"fastai_scaling compare: error: {csvs/'nope.csv'}: no such file"]


# ---- choices ------------------------------------------------------------------------------------------------

def test_resolve_scalers():
    assert list(resolve_scalers()) == list(DEFAULT_CHOICES) == ['none', 'Normalize', 'RobustNormalize', 'MinMaxNormalize',
                                                                'DriftNormalize', 'batchnorm']
    assert isinstance(resolve_scalers('BATCHNORM')['batchnorm'], BatchNormInputs)
    assert resolve_scalers('NONE, minmaxnormalize') == {'none': None, 'MinMaxNormalize': MinMaxNormalize}
    inst = MinMaxNormalize(feature_range=(-1, 1))
    assert resolve_scalers([None, Normalize, inst, inst]) == {'none': None, 'Normalize': Normalize, 'MinMaxNormalize': inst,
                                                            'MinMaxNormalize #2': inst}
    assert resolve_scalers({'mm': inst}) == {'mm': inst}
    with pytest.raises(CompareError, match='choose from'): resolve_scalers(['Normalize', 'Standard'])
    with pytest.raises(CompareError, match='no scaling choices'): resolve_scalers([])
    with pytest.raises(CompareError, match='must be a name'): resolve_scalers([42])

def test_compare_scalers_validates_inputs():
    df = pd.DataFrame({'a': [1., 2., 3.] * 4, 'b': ['x', 'y', 'z'] * 4, 'y': [1., 2., np.inf] * 4})
    with pytest.raises(CompareError, match="unknown column"): compare_scalers(df, 'y', ['a', 'c'])
    with pytest.raises(CompareError, match="'b' is not numeric"): compare_scalers(df, 'y', ['a', 'b'])
    with pytest.raises(CompareError, match="target column 'b' is not numeric"): compare_scalers(df, 'b', ['a'])
    with pytest.raises(CompareError, match='missing values'): compare_scalers(df.assign(y=np.nan), 'y', ['a'])
    with pytest.raises(CompareError, match='infinite'): compare_scalers(df.assign(a=df.y), 'b', ['a'], task='classification')
    with pytest.raises(CompareError, match='no rows'): compare_scalers(df.iloc[:0], 'y', ['a'])
    with pytest.raises(CompareError, match='too few'): compare_scalers(df.iloc[:2], 'a', [], ['b'])
    with pytest.raises(CompareError, match='single value'): compare_scalers(df.iloc[:1], 'a', [], ['b'])
    with pytest.raises(CompareError, match='epochs'): compare_scalers(df, 'a', [], ['b'], epochs=0)


# ---- end to end ---------------------------------------------------------------------------------------------

def test_cli_default_data_end_to_end(tmp_path):
    "The default synthetic data, tiny: every registered choice gets a row, and the report folder is complete"
    out = tmp_path/'report'
    code, stdout, err = run_main('compare', '--rows', 2000, '--epochs', 2, '--workers', 1, '--out', out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(['raw_weights.csv', 'report.html', 'results.csv', 'summary.csv', *PNGS])
    table = pd.read_csv(out/'summary.csv', index_col='scaler')
    assert list(table.index) == list(DEFAULT_CHOICES)
    assert list(table.columns) == ['train_loss', 'valid_loss', 'epoch_below_target', 'sec_per_epoch']
    runs = pd.read_csv(out/'results.csv')                                    # one row per run: one seed here
    assert list(runs.columns) == ['scaler', 'seed', 'train_loss', 'valid_loss', 'epoch_below_target', 'sec_per_epoch']
    assert list(runs.scaler) == list(DEFAULT_CHOICES) and (runs.seed == 42).all()
    np.testing.assert_array_equal(runs.valid_loss, table.valid_loss)
    assert (table.sec_per_epoch > 0).all() and np.isfinite(table.valid_loss).all()
    raw = pd.read_csv(out/'raw_weights.csv', index_col=[0, 1])
    assert list(raw.index.get_level_values(0)) == ['true', *DEFAULT_CHOICES]
    assert list(raw.columns) == [f"x{i}" for i in range(1, 11)] + ['bias']
    for png in PNGS: assert (out/png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    page = (out/'report.html').read_text()
    assert page.count("src='data:image/png;base64,") == 3                  # self-contained
    assert 'fastai_scaling compare --rows 2000 --epochs 2' in page and all(n in page for n in DEFAULT_CHOICES)
    assert 'target: valid loss <' in stdout and 'report:' in stdout
    for name in DEFAULT_CHOICES: assert f"\n{name} " in stdout                     # the printed table


def test_seed_finding_small(tmp_path):
    "The seed's finding at 10,000 rows and 3 epochs: centered inputs end orders of magnitude below no scaling"
    data = seed_data(10_000, seed=42)
    res = data.compare(procs=['none', 'Normalize', 'RobustNormalize', 'MinMaxNormalize', 'DriftNormalize'],
                       epochs=3, progress=False)
    t = res.table
    for name in ['Normalize', 'RobustNormalize', 'DriftNormalize']:
        assert t.valid_loss[name] * 10 < t.valid_loss['none'], t
        # mapped back to raw units, the weights are scale_amt (the seed's puzzle)
        learned = res.raw_weights().loc[name].iloc[0]
        np.testing.assert_allclose(learned[data.cont_names].astype(float), [data.true_weights[c] for c in data.cont_names],
                                   rtol=0.1, atol=1, err_msg=name)
    # min-max scaling of columns that already span [0, 1) changes almost nothing: it trains like no scaling
    assert abs(t.valid_loss['MinMaxNormalize'] / t.valid_loss['none'] - 1) < 0.1
    assert pd.isna(t.epoch_below_target['none']) and t.epoch_below_target['Normalize'] >= 1


def test_fair_and_parallel_identical():
    "Same choice twice -> identical runs (same split, init, batch order); 2 worker processes give the same numbers as 1"
    data = seed_data(1500, seed=3)
    kw = dict(procs=['Normalize', 'Normalize', 'none'], epochs=2, progress=False, seed=3)
    one = data.compare(workers=1, **kw)
    assert list(one.table.index) == ['Normalize', 'Normalize #2', 'none']
    a, b = one.runs['Normalize'], one.runs['Normalize #2']
    np.testing.assert_array_equal(a.valid_loss, b.valid_loss)
    np.testing.assert_array_equal(a.weights, b.weights)
    two = data.compare(workers=2, **kw)
    for name in one.runs:
        np.testing.assert_array_equal(one.runs[name].valid_loss, two.runs[name].valid_loss)
        np.testing.assert_array_equal(one.runs[name].iter_loss, two.runs[name].iter_loss)
    assert two.settings['workers'] == 2


def test_target_and_epoch_below_target():
    data = seed_data(1000, seed=0)
    res = data.compare(procs='none,Normalize', epochs=2, progress=False)
    _, valid = RandomSplitter(valid_pct=0.2, seed=42)(data.df)      # the split compare_scalers makes with seed 42
    assert res.target == pytest.approx(0.01 * np.var(data.df.y.iloc[list(valid)]), rel=1e-4)
    assert 'variance' in res.target_desc
    assert data.compare(procs='none', epochs=1, progress=False, target=5.).target == 5.
    always = ScalerComparison(res.runs, np.inf, 'given', res.settings).table
    never = ScalerComparison(res.runs, 0., 'given', res.settings).table
    assert (always.epoch_below_target == 1).all() and never.epoch_below_target.isna().all()
    assert 'never' in ScalerComparison(res.runs, 0., 'given', res.settings).format_table()


def test_registry_one_line(monkeypatch, tmp_path):
    "A scaler added to SCALERS is a valid --procs name, trained and reported like the others"
    monkeypatch.setitem(compare.SCALERS, 'MinMax11', MinMaxNormalize(feature_range=(-1, 1)))
    code, _, err = run_main('compare', '--rows', 1000, '--epochs', 1, '--workers', 1, '--procs', 'none,minmax11',
                            '--out', tmp_path)
    assert code == 0, err
    assert list(pd.read_csv(tmp_path/'results.csv', index_col=0).index) == ['none', 'MinMax11']


def test_cli_diabetes(tmp_path):
    code, stdout, err = run_main('compare', '--dataset', 'diabetes', '--epochs', 2, '--workers', 1, '--out', tmp_path)
    assert code == 0, err
    assert 'scikit-learn diabetes: 442 rows' in stdout
    assert list(pd.read_csv(tmp_path/'results.csv', index_col=0).index) == list(DEFAULT_CHOICES)
    raw = pd.read_csv(tmp_path/'raw_weights.csv', index_col=[0, 1])
    assert 'bmi' in raw.columns and 'true' not in raw.index.get_level_values(0)


def test_cli_breast_cancer_classification(tmp_path):
    "Cross-entropy and accuracy, a hidden layer (the monitor still maps the input layer to raw units), --rows as a sample"
    code, stdout, err = run_main('compare', '--dataset', 'breast_cancer', '--epochs', 1, '--workers', 1, '--rows', 300,
                                 '--procs', 'none,RobustNormalize', '--layers', 8, '--lr', 0.01, '--out', tmp_path)
    assert code == 0, err
    assert 'breast_cancer: 300 rows' in stdout
    table = pd.read_csv(tmp_path/'results.csv', index_col=0)
    assert 'accuracy' in table.columns and table.accuracy.between(0, 1).all()
    raw = pd.read_csv(tmp_path/'raw_weights.csv', index_col=[0, 1])
    assert len(raw.loc['none']) == 8 and 'mean_radius' in raw.columns    # one row per unit of the hidden layer


def test_cli_csv_with_categorical(csvs, tmp_path):
    "Categorify + FillMissing + a float target (needs n_out=1), and the choices listed in any case"
    code, stdout, err = run_main('compare', '--csv', csvs/'houses.csv', '--y', 'price', '--cat', 'city', '--epochs', 2,
                                 '--workers', 1, '--procs', 'none,robustnormalize,Normalize', '--lr', 0.1, '--out', tmp_path)
    assert code == 0, err
    assert list(pd.read_csv(tmp_path/'results.csv', index_col=0).index) == ['none', 'RobustNormalize', 'Normalize']
    assert 'houses.csv: 600 rows' in stdout


def test_csv_data_defaults(csvs):
    data = csv_data(csvs/'houses.csv', 'price')
    assert data.cont_names == ['sqft', 'rooms'] and data.cat_names == ['city'] and data.task == 'regression'
    assert 'used as categorical: city' in data.description


# ---- issue 9 (3, 4): data that used to end in a traceback -----------------------------------------------------
@pytest.fixture(scope='module')
def bad_csvs(tmp_path_factory):
    "One CSV per kind of troublesome column, each otherwise fine: 300 rows, y from a and b"
    d = tmp_path_factory.mktemp('bad')
    rng = np.random.default_rng(1)
    n = 300
    base = pd.DataFrame({'a': rng.uniform(0, 10, n), 'b': rng.uniform(0, 1, n)})
    base['y'] = 2 * base.a + 30 * base.b
    base.assign(a=np.where(np.arange(n) % 7 == 0, np.nan, base.a)).to_csv(d/'nan_no_cats.csv', index=False)
    base.assign(e=np.nan).to_csv(d/'empty_col.csv', index=False)
    base.assign(k=5.0).to_csv(d/'constant.csv', index=False)
    base.assign(r=np.where(np.arange(n) % 50 == 0, '?', base.a.round(2).astype(str))).to_csv(d/'text_numbers.csv', index=False)
    return d


def test_nan_in_a_numeric_column_without_categorical_columns(bad_csvs, tmp_path):
    "FillMissing adds a categorical `a_na` column: Categorify must come with it (was: AttributeError: classes)"
    code, out, err = run_main('compare', '--csv', bad_csvs/'nan_no_cats.csv', '--y', 'y', '--epochs', 1, '--workers', 1,
                              '--procs', 'none,Normalize,batchnorm', '--lr', 0.01, '--out', tmp_path)
    assert code == 0, err
    assert list(pd.read_csv(tmp_path/'summary.csv', index_col=0).index) == ['none', 'Normalize', 'batchnorm']
    raw = pd.read_csv(tmp_path/'raw_weights.csv', index_col=[0, 1])
    assert any(c.startswith('a_na') for c in raw.columns)      # the missing-value flag is an input of the model
    assert compare._base_procs(pd.DataFrame({'a': [1., np.nan]}), ['a'], []) == [compare.Categorify, compare.FillMissing]
    assert compare._base_procs(pd.DataFrame({'a': [1., 2.]}), ['a'], []) == []
    assert compare._base_procs(pd.DataFrame({'a': [1., 2.], 'c': ['x', 'y']}), ['a'], ['c']) == [compare.Categorify]


def test_all_missing_column_is_a_one_line_error(bad_csvs, tmp_path):
    "An empty feature column: refused before training, naming it (was: NaN losses, then a traceback from a scaler)"
    code, out, err = run_main('compare', '--csv', bad_csvs/'empty_col.csv', '--y', 'y', '--cont', 'a,b,e', '--epochs', 1,
                              '--out', tmp_path/'r')
    assert code == 2 and err.count('\n') == 1 and 'Traceback' not in err
    assert err.startswith("fastai_scaling compare: error: continuous column 'e' has no values (all 300 are missing)"), err
    assert ' epoch ' not in out and not (tmp_path/'r').exists()
    # without --cont the empty column is picked up as a numeric column: the same error
    code, _, err = run_main('compare', '--csv', bad_csvs/'empty_col.csv', '--y', 'y', '--epochs', 1, '--out', tmp_path/'r')
    assert code == 2 and "'e' has no values" in err
    df = pd.read_csv(bad_csvs/'empty_col.csv').assign(c=None)
    with pytest.raises(CompareError, match="categorical column 'c' has no values"): compare_scalers(df, 'y', ['a'], ['c'])


def test_constant_column_is_kept_and_noted(bad_csvs, tmp_path):
    code, out, err = run_main('compare', '--csv', bad_csvs/'constant.csv', '--y', 'y', '--epochs', 1, '--workers', 1,
                              '--procs', 'none,Normalize,RobustNormalize,MinMaxNormalize', '--lr', 0.01, '--out', tmp_path)
    assert code == 0, err
    assert 'note: constant input columns kept' in out and ': k' in out
    table = pd.read_csv(tmp_path/'summary.csv', index_col=0)
    assert np.isfinite(table.valid_loss).all()                 # every scaler handles the zero spread
    assert 'constant input columns kept' in (tmp_path/'report.html').read_text()


def test_text_column_of_numbers(bad_csvs, tmp_path):
    "A column of numbers with a few '?': categorical by default (with a hint), a one-line error when named continuous"
    data = csv_data(bad_csvs/'text_numbers.csv', 'y')
    assert data.cat_names == ['r'] and "r looks numeric, but 6 of its 300 values are not numbers (e.g. '?')" in data.description
    code, _, err = run_main('compare', '--csv', bad_csvs/'text_numbers.csv', '--y', 'y', '--cont', 'a,b,r', '--epochs', 1,
                            '--out', tmp_path/'r')
    assert code == 2 and err.count('\n') == 1
    assert "continuous column 'r' is not numeric (6 of its 300 values are not numbers (e.g. '?'))" in err, err
    # every value a number, stored as text (e.g. a row built by hand): read as numbers, and said so
    df = pd.read_csv(bad_csvs/'constant.csv').drop(columns='k')
    res = compare_scalers(df.assign(a=df.a.astype(str)), 'y', ['a', 'b'], procs='Normalize', epochs=1, lr=0.01, progress=False)
    ref = compare_scalers(df, 'y', ['a', 'b'], procs='Normalize', epochs=1, lr=0.01, progress=False)
    assert res.settings['notes'] == ['text columns whose every value is a number, read as numbers: a']
    np.testing.assert_allclose(res.table.valid_loss, ref.table.valid_loss, rtol=1e-5)


def test_more_data_errors():
    df = pd.DataFrame({'a': np.arange(40.), 'b': np.arange(40.) % 3, 'y': np.arange(40.) * 2})
    with pytest.raises(CompareError, match="'a' listed more than once"): compare_scalers(df, 'y', ['a', 'a'])
    with pytest.raises(CompareError, match="target column 'y' has a single value"): compare_scalers(df.assign(y=1.), 'y', ['a'])
    with pytest.raises(CompareError, match="seeds must be a positive integer"): compare_scalers(df, 'y', ['a'], seeds=0)
    with pytest.raises(CompareError, match="loader must be one of"): compare_scalers(df, 'y', ['a'], loader='numpy')
    # missing values only among the validation rows: FillMissing cannot learn a fill value for them
    _, valid = RandomSplitter(valid_pct=0.2, seed=42)(df)
    holes = df.copy(); holes.loc[list(valid)[:2], 'b'] = np.nan
    with pytest.raises(CompareError, match="'b' has missing values only in validation rows \\(2 of them\\)"):
        compare_scalers(holes, 'y', ['a', 'b'], epochs=1, progress=False)


class RefusingProc(Normalize):
    "A proc that refuses the data in its setup, as a scaler does with a column it cannot scale"
    def setups(self, to): raise ValueError("column 'a' cannot be scaled by RefusingProc")


class BuggyProc(Normalize):
    "A proc with a genuine bug: its traceback must stay visible"
    def setups(self, to): raise RuntimeError('a bug, not the data')


@pytest.mark.parametrize('workers', [1, 2])
def test_proc_errors_are_one_line_even_from_worker_processes(monkeypatch, tmp_path, workers):
    monkeypatch.setitem(compare.SCALERS, 'refusing', RefusingProc())
    code, out, err = run_main('compare', '--rows', 500, '--epochs', 1, '--workers', workers, '--procs', 'none,refusing',
                              '--out', tmp_path/'r')
    assert code == 2 and err.count('\n') == 1 and 'Traceback' not in err, err
    assert err.startswith("fastai_scaling compare: error: refusing: its procs (RefusingProc) refused the data: "
                          "column 'a' cannot be scaled by RefusingProc"), err


def test_genuine_bugs_keep_their_traceback():
    data = seed_data(300)
    with pytest.raises(RuntimeError, match='a bug, not the data'):
        data.compare(procs={'buggy': BuggyProc()}, epochs=1, progress=False)


# ---- the tensor loader, seeds, batchnorm (issue 12) -------------------------------------------------------------
def test_tensor_and_fastai_loader_give_the_same_runs():
    "Same batches in the same memory layout: the same losses and weights (the tensor loader is only faster)"
    data = seed_data(2000, seed=5)
    kw = dict(procs='none,Normalize,batchnorm', epochs=2, progress=False, layers=[8])
    a, b = data.compare(loader='tensor', **kw), data.compare(loader='fastai', **kw)
    assert a.settings['loader'] == 'tensor' and b.settings['loader'] == 'fastai'
    for name in a.runs:
        np.testing.assert_allclose(a.runs[name].valid_loss, b.runs[name].valid_loss, rtol=1e-6)
        np.testing.assert_allclose(a.runs[name].iter_loss, b.runs[name].iter_loss, rtol=1e-6)
        np.testing.assert_allclose(a.runs[name].weights, b.runs[name].weights, rtol=1e-6, atol=1e-7)


def test_cli_fastai_loader_flag(tmp_path):
    code, out, err = run_main('compare', '--rows', 800, '--epochs', 1, '--workers', 1, '--procs', 'normalize',
                              '--fastai-loader', '--out', tmp_path)
    assert code == 0, err
    assert "batches from fastai&#x27;s TabDataLoader" in (tmp_path/'report.html').read_text()


def test_seeds(tmp_path):
    "Every choice trained once per seed; the split fixed; the table gives mean, min and max; results.csv every run"
    code, out, err = run_main('compare', '--rows', 1500, '--epochs', 2, '--workers', 2, '--seeds', 3,
                              '--procs', 'none,Normalize,RobustNormalize', '--out', tmp_path)
    assert code == 0, err
    assert '3 seeds each (42..44)' in out and 'mean [min, max] over 3 seeds (42, 43, 44):' in out
    runs = pd.read_csv(tmp_path/'results.csv')
    assert list(zip(runs.scaler, runs.seed)) == [(n, s) for n in ['none', 'Normalize', 'RobustNormalize'] for s in (42, 43, 44)]
    assert runs.groupby('scaler').valid_loss.nunique().min() == 3          # the seeds changed the runs
    summary = pd.read_csv(tmp_path/'summary.csv', index_col=0)
    by = runs.groupby('scaler', sort=False).valid_loss
    np.testing.assert_allclose(summary.valid_loss, by.mean()); np.testing.assert_allclose(summary.valid_loss_min, by.min())
    np.testing.assert_allclose(summary.valid_loss_max, by.max())
    best = next(l for l in out.splitlines() if l.startswith('best: '))
    assert ('overlaps' in best) or ('every seed below runner-up' in best)
    for line in out.splitlines():                              # the progress lines name the seed
        if ' epoch ' in line and line.startswith('['): assert ' seed 4' in line


def fake_run(name, seed, valid):
    z = np.zeros(1)
    return ScalerRun(name=name, proc=name, train_loss=np.array([valid]), valid_loss=np.array([valid]), accuracy=None,
                     epoch_time=np.ones(1), iter_loss=np.array([valid]), iters_per_epoch=1, weights=np.zeros((1, 1, 1)),
                     biases=np.zeros((1, 1)), iters=z, raw_weights=pd.DataFrame({'x': [0.], 'bias': [0.]}), seed=seed)


def test_best_says_whether_the_difference_is_within_the_spread():
    def comparison(losses):
        runs = {name: [fake_run(name, 42 + k, v) for k, v in enumerate(vs)] for name, vs in losses.items()}
        return ScalerComparison(runs, target=2.5, target_desc='given', settings=dict(seeds=[42, 43, 44]))
    close = comparison({'none': [9, 10, 11], 'A': [1., 2., 3.], 'B': [2.5, 3., 3.5]})
    assert close.best() == "best: A, valid loss 2 [1, 3], 5x below none; runner-up B [2.5, 3.5] overlaps it: the difference is within the spread over 3 seeds"
    apart = comparison({'none': [9, 10, 11], 'A': [1., 2., 3.], 'B': [4., 5., 6.]})
    assert apart.best() == "best: A, valid loss 2 [1, 3], 5x below none; every seed below runner-up B's range [4, 6]"
    t = close.table
    assert list(t.columns) == ['train_loss', 'train_loss_min', 'train_loss_max', 'valid_loss', 'valid_loss_min', 'valid_loss_max',
                               'epoch_below_target', 'epoch_below_target_min', 'epoch_below_target_max', 'sec_per_epoch']
    # reached by two seeds out of three: mean and max "never", min the best seed's epoch
    assert pd.isna(t.epoch_below_target['A']) and t.epoch_below_target_min['A'] == 1 and pd.isna(t.epoch_below_target_max['A'])
    assert 'never [1, never]' in close.format_table()
    one = ScalerComparison({'none': fake_run('none', 42, 10.), 'A': fake_run('A', 42, 2.)}, 1., 'given', {})
    assert one.best() == 'best: A, valid loss 2, 5x below none' and list(one.table.columns)[:2] == ['train_loss', 'valid_loss']


def test_batchnorm_choice_puts_batchnorm_on_the_inputs():
    "No proc; BatchNorm1d on the continuous inputs; raw weights through its running statistics"
    data = seed_data(3000, seed=1)
    res = data.compare(procs='none,batchnorm', epochs=2, progress=False)
    assert res.runs['batchnorm'].proc == repr(BatchNormInputs()) and res.settings['bn_cont'] == ['batchnorm']
    assert not np.allclose(res.runs['batchnorm'].valid_loss, res.runs['none'].valid_loss)
    raw = res.raw_weights().loc['batchnorm'].iloc[0]
    assert np.isfinite(raw.astype(float)).all()


def test_no_third_party_deprecation_warnings_and_one_line_per_epoch(tmp_path):
    "The command in a fresh interpreter, warnings shown as Python shows them to a user who asks for all of them"
    script = Path(sys.executable).parent/'fastai_scaling'
    cmd = [str(script)] if script.exists() else [sys.executable, '-c', 'import sys; from fastai_scaling.compare import main; sys.exit(main())']
    env = {**os.environ, 'PYTHONWARNINGS': 'always::FutureWarning,always::DeprecationWarning'}
    p = subprocess.run([*cmd, 'compare', '--rows', '600', '--epochs', '2', '--workers', '2', '--procs', 'none,normalize',
                        '--out', str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    assert 'torch.jit.script' not in p.stderr, p.stderr
    epochs = [l for l in p.stdout.splitlines() if ' epoch ' in l]
    assert sorted(epochs) == sorted(set(epochs)) and len(epochs) == 2 * 2                # one line per choice and epoch
    for name in ('none', 'Normalize'):
        assert [l.split(']')[0] for l in epochs if f' {name}]' in l] == [f'[{1 if name == "none" else 2}/2 {name}'] * 2


class Seen(Callback):
    "Logs the events it handles"
    def __init__(self): self.seen = []
    def before_batch(self): self.seen.append(('before_batch', self.training))
    def after_epoch(self): self.seen.append(('after_epoch', self.epoch))


class SeesAll(Callback):
    "Its own dispatch: must get every event"
    def __init__(self): self.seen = []
    def __call__(self, event_name): self.seen.append(event_name)


def test_compare_learner_dispatch_is_fastais(monkeypatch):
    "The cheaper dispatch calls the same callbacks with the same events in the same order, and changes no number"
    from fastai.tabular.all import TabularPandas, tabular_learner, tabular_config, set_seed
    data = seed_data(600, seed=2)
    to = TabularPandas(data.df, procs=[Normalize], cont_names=data.cont_names, y_names='y',
                       splits=RandomSplitter(seed=0)(data.df))
    logs = {}
    for cls in (compare.TabularLearner, compare._CompareLearner):
        set_seed(0)
        func_seen = []
        cbs = [Seen(), SeesAll(), compare.Callback(before_epoch=lambda self: func_seen.append('before_epoch'))]
        learn = tabular_learner(to.dataloaders(bs=64), layers=[], config=tabular_config(use_bn=False, bn_cont=False), cbs=cbs)
        learn.__class__ = cls
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2)
        logs[cls] = (cbs[0].seen, cbs[1].seen, func_seen, learn.recorder.values, learn.recorder.losses)
    (a0, a1, a2, av, al), (b0, b1, b2, bv, bl) = logs.values()
    assert a0 == b0 and a1 == b1 and a2 == b2 == ['before_epoch'] * 2
    assert ('before_batch', False) in a0 and 'after_pred' in a1        # validation batches too; every event for SeesAll
    assert av == bv and [float(x) for x in al] == [float(x) for x in bl]
    fast = data.compare(procs='none,Normalize', epochs=1, progress=False)
    monkeypatch.setattr(compare, '_CompareLearner', compare.TabularLearner)
    plain = data.compare(procs='none,Normalize', epochs=1, progress=False)
    for name in fast.runs: np.testing.assert_array_equal(fast.runs[name].iter_loss, plain.runs[name].iter_loss)


# ---- every scaler by name, and `fastai_scaling suggest` --------------------------------------------------------

def test_every_scaler_of_the_package_is_a_choice_by_name():
    from fastai_scaling.transforms import QuantileNormalize, PowerNormalize
    from fastai_scaling.auto import AutoNormalize
    from fastai_scaling.procs import StandardNormalize
    for name, cls in [('QuantileNormalize', QuantileNormalize), ('PowerNormalize', PowerNormalize), ('auto', AutoNormalize),
                      ('standardnormalize', StandardNormalize)]:
        (key, proc), = resolve_scalers(name).items()
        assert proc is cls, name
    assert set(DEFAULT_CHOICES) <= set(SCALERS) and 'auto' not in DEFAULT_CHOICES

def test_non_affine_choices_train_and_report_linearised_raw_weights(tmp_path):
    from fastai_scaling.auto import mixed_table
    df = mixed_table(600, seed=2)
    res = compare_scalers(df, 'y', ['flag', 'price', 'pct', 'temp', 'visits'], procs='auto,QuantileNormalize,PowerNormalize',
                          epochs=2, lr=1e-2, progress=False)
    assert list(res.table.index) == ['auto', 'QuantileNormalize', 'PowerNormalize']
    assert np.isfinite(res.table['valid_loss']).all()
    assert res.runs['auto'].raw_weights.attrs['linearized'] == ['price', 'visits']
    assert res.runs['QuantileNormalize'].raw_weights.attrs['linearized'] == ['flag', 'price', 'pct', 'temp', 'visits']
    html = res.write_report(tmp_path / 'r').read_text()
    assert 'local linearisation' in html and 'flag, pct, price, temp, visits' in html

def test_suggest_command_prints_the_advice_table(capsys):
    assert main(['suggest', '--dataset', 'breast_cancer']) == 0
    out = capsys.readouterr().out
    assert out.startswith('data: scikit-learn breast_cancer') and 'reason' in out and 'suggested: ' in out
    for col in ('mean_radius', 'worst_area'): assert f"\n{col} " in out

def test_suggest_command_on_a_csv_warns_about_constant_columns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pd.DataFrame({'a': rng.lognormal(size=200), 'c': 1., 'flag': rng.integers(0, 2, 200), 'y': rng.normal(size=200)}).to_csv(tmp_path / 'd.csv', index=False)
    assert main(['suggest', '--csv', str(tmp_path / 'd.csv'), '--y', 'y']) == 0
    out = capsys.readouterr().out
    assert "warning: suggest_scalers: column(s) ['c'] are constant" in out
    table = {line.split()[0]: line for line in out.splitlines()[1:] if line and line.split()[0] in ('a', 'c', 'flag')}
    assert 'PowerNormalize' in table['a'] and ' none ' in table['c'] and ' none ' in table['flag']

@pytest.mark.parametrize('argv, message', [
    (['suggest', '--csv', 'nope.csv', '--y', 'y'], 'nope.csv: no such file'),
    (['suggest', '--dataset', 'iris'], "unknown dataset 'iris'"),
    (['suggest', '--dataset', 'diabetes', '--bogus'], 'unrecognized arguments: --bogus')])
def test_suggest_command_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e: main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('fastai_scaling suggest: error:') and message in err and '\n' not in err
