"The `fastai_scaling compare` command and `compare_scalers`: CLI errors, reports, fairness, and the seed's finding at small size."
import os, subprocess, sys, warnings
from pathlib import Path

import numpy as np, pandas as pd, pytest

from fastai.tabular.all import Normalize, RandomSplitter
from fastai_scaling.procs import MinMaxNormalize
import fastai_scaling.compare as compare
from fastai_scaling.compare import (SCALERS, CompareError, ScalerComparison, compare_scalers, csv_data, main,
                                    resolve_scalers, seed_data)

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
    assert list(resolve_scalers()) == list(SCALERS) == ['none', 'Normalize', 'RobustNormalize', 'MinMaxNormalize', 'DriftNormalize']
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
    with pytest.raises(CompareError, match='too few'): compare_scalers(df.iloc[:1], 'a', [], ['b'])
    with pytest.raises(CompareError, match='epochs'): compare_scalers(df, 'a', [], ['b'], epochs=0)


# ---- end to end ---------------------------------------------------------------------------------------------

def test_cli_default_data_end_to_end(tmp_path):
    "The default synthetic data, tiny: every registered choice gets a row, and the report folder is complete"
    out = tmp_path/'report'
    code, stdout, err = run_main('compare', '--rows', 2000, '--epochs', 2, '--workers', 1, '--out', out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(['raw_weights.csv', 'report.html', 'results.csv', *PNGS])
    table = pd.read_csv(out/'results.csv', index_col='scaler')
    assert list(table.index) == list(SCALERS)
    assert list(table.columns) == ['train_loss', 'valid_loss', 'epoch_below_target', 'sec_per_epoch']
    assert (table.sec_per_epoch > 0).all() and np.isfinite(table.valid_loss).all()
    raw = pd.read_csv(out/'raw_weights.csv', index_col=[0, 1])
    assert list(raw.index.get_level_values(0)) == ['true', *SCALERS]
    assert list(raw.columns) == [f"x{i}" for i in range(1, 11)] + ['bias']
    for png in PNGS: assert (out/png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    page = (out/'report.html').read_text()
    assert page.count("src='data:image/png;base64,") == 3                  # self-contained
    assert 'fastai_scaling compare --rows 2000 --epochs 2' in page and all(n in page for n in SCALERS)
    assert 'target: valid loss <' in stdout and 'report:' in stdout
    for name in SCALERS: assert f"\n{name} " in stdout                     # the printed table


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
    assert list(pd.read_csv(tmp_path/'results.csv', index_col=0).index) == list(SCALERS)
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
