"The real-table protocol of `compare` (issue 20, item 1): split, early stopping with the best epoch restored, test metrics, paired best."
import warnings
import numpy as np, pandas as pd, pytest

from fastai.tabular.all import TabularPandas, tabular_learner, RegressionBlock, set_seed
from fastai_scaling.compare import (CompareError, ScalerComparison, ScalerRun, compare_scalers, split_rows, KeepBest, holdout_metrics,
                                    baseline_metrics, sklearn_data)
from fastai_scaling.cli import main

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')


def test_split_rows_is_stratified_disjoint_and_fixed_by_its_seed():
    y = pd.Series(['a'] * 500 + ['b'] * 300 + ['c'] * 200)
    tr, va, te = split_rows(y, 'classification', 0.2, 0.2, seed=3)
    assert sorted(tr + va + te) == list(range(1000))
    for rows, share in ((tr, .6), (va, .2), (te, .2)):
        assert y[rows].value_counts().to_dict() == {'a': 500 * share, 'b': 300 * share, 'c': 200 * share}
    assert split_rows(y, 'classification', 0.2, 0.2, seed=3) == (tr, va, te)
    assert split_rows(y, 'classification', 0.2, 0.2, seed=4)[2] != te
    # regression: plain random shares of the rows
    assert [len(p) for p in split_rows(pd.Series(np.arange(10.)), 'regression', 0.3, 0.1)] == [6, 3, 1]


def test_a_class_too_small_to_share_stays_in_training():
    y = pd.Series([0] * 50 + [1] * 2)
    tr, va, te = split_rows(y, 'classification')
    assert {50, 51} <= set(tr) and not {50, 51} & set(va + te)


def test_split_rows_refuses_impossible_shares_and_tiny_tables():
    with pytest.raises(CompareError, match='sum below 1'): split_rows(pd.Series(range(10)), valid_pct=0.6, test_pct=0.4)
    with pytest.raises(CompareError, match='too few'): split_rows(pd.Series([1., 2.]))


def test_keep_best_stops_after_patience_and_restores_the_best_epoch():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(240, 8)), columns=[f"x{i}" for i in range(8)])
    df['y'] = rng.normal(size=240)   # noise: a big MLP on 20 rows overfits from the start
    to = TabularPandas(df, cont_names=list(df.columns[:8]), y_names='y', y_block=RegressionBlock(),
                       splits=(list(range(20)), list(range(20, 240))))
    keep = KeepBest(patience=4)
    set_seed(0)
    learn = tabular_learner(to.dataloaders(bs=8), layers=[200, 100], n_out=1, cbs=keep)
    with learn.no_bar(), learn.no_logging(): learn.fit(40, 1e-2)
    valid = [float(v[1]) for v in learn.recorder.values]
    assert len(valid) == keep.best_epoch + 1 + 4 < 40   # stopped early, exactly `patience` epochs after the best
    assert keep.best_epoch == int(np.argmin(valid))
    with learn.no_bar(): now = float(learn.validate()[0])
    assert now == pytest.approx(min(valid), rel=1e-5) and now < valid[-1]   # the best weights are back, not the last ones


def test_holdout_metrics_agree_with_scikit_learn():
    metrics = pytest.importorskip('sklearn.metrics')
    rng = np.random.default_rng(1)
    y, pred = rng.normal(5, 2, 200), rng.normal(5, 2, 200)
    r = holdout_metrics(pred, y)
    assert r['rmse'] == pytest.approx(np.sqrt(metrics.mean_squared_error(y, pred)))
    assert r['r2'] == pytest.approx(metrics.r2_score(y, pred))
    labels = rng.integers(0, 2, 300)
    p1 = np.round(rng.uniform(.06, .94, 300), 1)   # rounded: ties, which the AUC counts as half
    c = holdout_metrics(np.stack([1 - p1, p1], 1), labels, 'classification')
    assert c['auc'] == pytest.approx(metrics.roc_auc_score(labels, p1))
    assert c['accuracy'] == pytest.approx(metrics.accuracy_score(labels, np.stack([1 - p1, p1], 1).argmax(1)))
    assert c['log_loss'] == pytest.approx(metrics.log_loss(labels, p1))
    p3 = rng.dirichlet(np.ones(3), 100)
    l3 = rng.integers(0, 3, 100)
    c3 = holdout_metrics(p3, l3, 'classification')
    assert 'auc' not in c3 and c3['log_loss'] == pytest.approx(metrics.log_loss(l3, p3))


def test_baseline_metrics_are_the_constant_predictions():
    b = baseline_metrics(pd.Series([0., 2., 4.]), pd.Series([1., 5.]))
    assert b['rmse'] == pytest.approx(np.sqrt((1 + 9) / 2)) and b['r2'] == pytest.approx(1 - 10 / 8)
    c = baseline_metrics(pd.Series(['no'] * 3 + ['yes']), pd.Series(['no', 'yes']), 'classification')
    assert (c['accuracy'], c['auc']) == (0.5, 0.5) and c['log_loss'] == pytest.approx(-(np.log(.75) + np.log(.25)) / 2)


@pytest.fixture(scope='module')
def protocol_run():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({'a': rng.lognormal(3, 1, 500), 'b': rng.normal(0, 1e3, 500)})
    df['y'] = 2 * (np.log(df.a) - 3) + df.b / 500 + rng.normal(0, .3, 500)
    return df, compare_scalers(df, 'y', ['a', 'b'], procs='none,Normalize', epochs=12, lr=1e-2, bs=32, layers=[50], seeds=2,
                               test_pct=0.2, patience=3, progress=False)


def test_the_protocol_reports_holdout_metrics_at_the_restored_epoch(protocol_run):
    df, res = protocol_run
    s = res.settings
    assert (s['n_train'], s['n_valid'], s['n_test']) == (300, 100, 100) and s['patience'] == 3
    assert [c for c in res.table.columns if not c.endswith(('_min', '_max'))][:4] == ['test_rmse', 'test_r2', 'best_epoch', 'epochs_run']
    runs = res.results()
    for name, rs in res.replicates.items():
        for r in rs:
            row = runs.loc[(name, r.seed)]
            # the row's losses are those of the best epoch, the epoch that early stopping restored
            assert r.best_epoch == int(np.argmin(r.valid_loss)) + 1 == row.best_epoch
            assert row.valid_loss == r.valid_loss.min() and row.epochs_run == len(r.valid_loss)
            assert len(r.valid_loss) == 12 or len(r.valid_loss) == r.best_epoch + 3
            assert set(r.test) == {'rmse', 'r2'} and np.isfinite(r.test['rmse'])
    # the baseline predicts the training mean on the same test rows
    tr, va, te = split_rows(df.y, 'regression', 0.2, 0.2, 42)
    y = df.y.astype(np.float32).astype(np.float64)
    expected = np.sqrt(((y[te] - y[tr].mean())**2).mean())
    assert res.baseline.at['baseline', 'test_rmse'] == pytest.approx(expected, rel=1e-6)
    assert pd.isna(res.baseline.at['baseline', 'best_epoch'])
    assert res.settings['baseline']['test_rmse'] > res.table.test_rmse['Normalize']   # a scaled MLP learns this table


def fake(name, seed, test_rmse):
    return ScalerRun(name=name, proc=name, train_loss=np.ones(3), valid_loss=np.array([3., 1., 2.]), accuracy=None,
                     epoch_time=np.ones(3), iter_loss=np.ones(3), iters_per_epoch=1, weights=np.zeros((3, 1, 1)),
                     biases=np.zeros((3, 1)), iters=np.arange(3), raw_weights=pd.DataFrame({'x': [0.], 'bias': [0.]}), seed=seed,
                     best_epoch=2, test=dict(rmse=test_rmse, r2=0.))


def fakes(per_seed):
    runs = {n: [fake(n, 42 + k, v) for k, v in enumerate(vs)] for n, vs in per_seed.items()}
    return ScalerComparison(runs, 1., 'given', dict(task='regression'))


@pytest.mark.parametrize('per_seed, line', [
    ({'none': [9, 9, 9], 'A': [1, 2, 1], 'B': [2, 1, 2]},
     'best: A (1.333 [1, 2]) and runner-up B (1.667 [1, 2]), rmse on the test rows: A is lower on 2 of 3 seeds'),
    # A has the lower mean thanks to one lucky seed, but B is lower on two seeds of three: no winner
    ({'A': [1, 5.1, 5.1], 'B': [6, 5, 5]},
     'no clear winner among A, B: A (3.733 [1, 5.1]) and runner-up B (5.333 [5, 6]), rmse on the test rows; A is lower on only 1 of 3 '
     'seeds'),
    ({'A': [1], 'B': [3]},
     'no clear winner among A, B: one seed cannot separate A (1) and runner-up B (3), rmse on the test rows (train --seeds 3 or more)'),
])
def test_best_is_a_paired_comparison_over_seeds(per_seed, line):
    assert fakes(per_seed).best() == line


def test_cli_breast_cancer_uses_the_protocol(tmp_path, capsys):
    code = main(['compare', '--dataset', 'breast_cancer', '--procs', 'none,Normalize', '--epochs', '3', '--workers', '1',
                 '--out', str(tmp_path / 'rep')])
    out = capsys.readouterr().out
    assert code == 0
    assert 'up to 3 epochs (patience 5)' in out and 'rows split 60%/20%/20% (training/validation/test, stratified)' in out
    header = next(l for l in out.splitlines() if l.startswith('scaler'))
    assert header.split()[1:6] == ['test_accuracy', 'test_log_loss', 'test_auc', 'best_epoch', 'epochs_run']
    base = next(l for l in out.splitlines() if l.startswith('baseline')).split()
    assert base[3] == '0.5000'   # a constant prediction ranks no pair: AUC one half
    assert 'one seed cannot separate' in out
    # a test set judges: no loss target, no first epoch below it, no validation accuracy beside the test's
    assert 'target:' not in out and 'epoch_below_target' not in header and ' accuracy ' not in f" {header} "
    html = (tmp_path / 'rep' / 'report.html').read_text()
    assert 'best epoch&#x27;s weights are restored' in html and '113 test' in html


def test_the_recommendation_is_code_and_only_for_a_clear_winner_that_beats_the_baseline():
    per_seed = {'none': [9, 9, 9], 'A': [1, 2, 1], 'B': [2, 1, 2]}
    runs = {n: [fake(n, 42 + k, v) for k, v in enumerate(vs)] for n, vs in per_seed.items()}
    code = {'none': 'procs=[]', 'A': 'procs=[Categorify, FillMissing, RobustNormalize]', 'B': 'procs=[Normalize]'}
    settings = lambda base: dict(task='regression', code=code, baseline=dict(test_rmse=base, valid_loss=1., desc='the mean'))
    assert ScalerComparison(runs, 1., 'given', settings(5.)).recommendation() == f"to use A: {code['A']}"
    assert ScalerComparison(runs, 1., 'given', settings(1.)).recommendation() is None   # the mean predicts better than A
    tie = {n: [fake(n, 42, 1.)] for n in ('A', 'B')}
    assert ScalerComparison(tie, 1., 'given', settings(5.)).recommendation() is None    # one seed: no winner, no advice
    # the baseline note judges the test metric, not the validation loss
    note = ScalerComparison(runs, 1., 'given', settings(1.5)).baseline_note()
    assert note == 'note: none, B ended at or above the baseline (the mean: test rmse 1.5)'


def test_each_choice_comes_with_the_code_it_trained_with(protocol_run):
    cfg = "config=tabular_config(use_bn=False, bn_cont=False)"
    assert protocol_run[1].settings['code'] == {'none': f"procs=[], {cfg}", 'Normalize': f"procs=[Normalize], {cfg}"}


def test_a_learning_rate_grid_keeps_per_choice_and_seed_the_run_validation_prefers(protocol_run):
    df = protocol_run[0]
    kw = dict(procs='none,Normalize', epochs=6, bs=32, layers=[50], test_pct=0.2, patience=2, progress=False)
    grid = compare_scalers(df, 'y', ['a', 'b'], lr=[1e-4, 3e-2], **kw)
    # the same seed trains the same way alone: each lr's run on its own, to check the choice against
    alone = {lr: compare_scalers(df, 'y', ['a', 'b'], lr=lr, **kw).results() for lr in (1e-4, 3e-2)}
    res = grid.results()
    assert grid.settings['lr'] == [1e-4, 3e-2] and 'lr' in res.columns
    for name in ('none', 'Normalize'):
        key = (name, 42)
        best_lr = min(alone, key=lambda lr: alone[lr].valid_loss[key])
        assert res.lr[key] == best_lr
        assert res.valid_loss[key] == alone[best_lr].valid_loss[key] and res.test_rmse[key] == alone[best_lr].test_rmse[key]
    assert 'lr' not in alone[1e-4].columns   # one learning rate: no column for it


def test_cli_learning_rate_grid(tmp_path, capsys):
    code = main(['compare', '--dataset', 'diabetes', '--rows', '200', '--procs', 'Normalize', '--epochs', '2', '--lr', '1e-3,1e-2',
                 '--workers', '1', '--out', str(tmp_path / 'rep')])
    out = capsys.readouterr().out
    assert code == 0 and 'lr chosen on validation from 0.001,0.01' in out
    assert 'lr chosen per choice and seed from 0.001, 0.01 by validation loss' in (tmp_path / 'rep' / 'report.html').read_text()
    with pytest.raises(SystemExit) as e: main(['compare', '--dataset', 'diabetes', '--lr', '1e-3,0'])
    assert e.value.code == 2 and '--lr' in capsys.readouterr().err


def test_parallel_runs_show_one_bar_for_the_whole_comparison(protocol_run, capfd):
    df = protocol_run[0]
    compare_scalers(df, 'y', ['a', 'b'], procs='none,Normalize', epochs=2, bs=64, lr=1e-2, layers=[8], seeds=2, workers=2,
                    test_pct=0.2, patience=2, progress=True)
    out = capfd.readouterr().out
    assert ' epoch ' not in out and 'training:' not in out     # no interleaved lines from the workers
    states = [s.strip() for s in out.split('\r') if '%' in s]
    assert states[0].endswith('0.00% [0/4 00:00<?]') and '100.00% [4/4' in states[-1]   # fastprogress's count and ETA
    assert states[-1].endswith('done]')   # the last run finished, named in the bar's comment
    compare_scalers(df, 'y', ['a', 'b'], procs='none', epochs=2, bs=64, layers=[8], seeds=2, workers=2, test_pct=0.2,
                    patience=2, progress='lines')
    lines = capfd.readouterr().out
    assert lines.count(' epoch ') >= 4 and '%' not in lines    # logs keep a line per epoch


def test_cli_test_set_and_patience_flags(tmp_path, capsys):
    "--test-pct and --patience turn the real-table protocol on for the synthetic data, or change it for a table"
    code = main(['compare', '--rows', '600', '--procs', 'Normalize', '--epochs', '4', '--test-pct', '0.25', '--patience', '2',
                 '--workers', '1', '--out', str(tmp_path / 'rep')])
    out = capsys.readouterr().out
    assert code == 0 and 'up to 4 epochs (patience 2)' in out and 'rows split 55%/20%/25% (training/validation/test)' in out
    header = next(l for l in out.splitlines() if l.startswith('scaler'))
    assert header.split()[1:3] == ['test_rmse', 'test_r2'] and 'target:' not in out
    for bad, message in ((['--test-pct', '0.9'], 'test_pct must be between 0 and 1'), (['--patience', '0'], '--patience')):
        with pytest.raises(SystemExit) as e: main(['compare', '--rows', '600', *bad])
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_test_set_leaves_the_loss_target_out_of_the_table(protocol_run):
    res = protocol_run[1]
    assert 'epoch_below_target' not in res.results().columns and 'epoch_below_target' not in res.table.columns
    assert 'epoch_below_target' not in res.format_table()
