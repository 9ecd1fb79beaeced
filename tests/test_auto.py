"""suggest_scalers' rules, AutoNormalize, and per-column composition of scalers (cols=, claims).
(The tutorial flow, export, test_dl and every input class run for AutoNormalize in test_inputs.py.)"""
import warnings
import numpy as np, pandas as pd, pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from hypothesis.extra import numpy as hnp
from fastai.tabular.all import TabularPandas, Normalize, FillMissing, Categorify, RandomSplitter
from fastai_scaling.procs import RobustNormalize, MinMaxNormalize, StandardNormalize
from fastai_scaling.transforms import QuantileNormalize, PowerNormalize
from fastai_scaling.squash import SquashNormalize
from fastai_scaling.auto import suggest_scalers, column_stats, AutoNormalize, mixed_table

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
rng = np.random.default_rng(0)
N = 4000


def advice(**cols):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return suggest_scalers(pd.DataFrame(cols))


# ---- one test per rule, on a column of that kind --------------------------------------------------------------

def test_constant_column_is_left_alone_with_a_warning():
    with pytest.warns(UserWarning, match=r"\['c'\] are constant: they carry no information"):
        table = suggest_scalers(pd.DataFrame({'c': np.full(N, 2.5), 'x': rng.normal(size=N)}))
    assert table.loc['c', 'scaler'] == 'none' and table.loc['c', 'constant'] and 'constant' in table.loc['c', 'reason']
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        suggest_scalers(pd.DataFrame({'c': np.full(N, 2.5)}), warn=False)   # the warning can be turned off

@pytest.mark.parametrize('values, scaler', [([0., 1.], 'none'), ([-1., 1.], 'none'), ([0., 250.], 'MinMaxNormalize'), ([3., 7.], 'MinMaxNormalize')])
def test_binary_flags_stay_unscaled_other_pairs_go_to_0_1(values, scaler):
    table = advice(b=rng.choice(values, N))
    assert table.loc['b', 'binary'] and table.loc['b', 'scaler'] == scaler

@pytest.mark.parametrize('column', [rng.lognormal(2, 1, N), -rng.lognormal(2, 1, N), rng.exponential(5, N), rng.poisson(0.7, N) + 0.])
def test_skewed_bulk_goes_to_the_skewed_scaler(column):
    table = advice(s=column)
    assert abs(table.loc['s', 'quartile_skewness']) >= 0.2 and table.loc['s', 'scaler'] == 'PowerNormalize'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert suggest_scalers(pd.DataFrame({'s': column}), skewed_scaler='QuantileNormalize').loc['s', 'scaler'] == 'QuantileNormalize'

def test_heavy_symmetric_tails_go_to_the_tail_scaler():
    table = advice(t=rng.standard_cauchy(N))
    assert abs(table.loc['t', 'quartile_skewness']) < 0.2 and table.loc['t', 'outlier_share'] >= 0.05
    assert table.loc['t', 'scaler'] == 'QuantileNormalize' and 'heavy tails' in table.loc['t', 'reason']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert suggest_scalers(pd.DataFrame({'t': rng.standard_cauchy(N)}), tail_scaler='PowerNormalize').loc['t', 'scaler'] == 'PowerNormalize'

def test_a_few_outliers_in_a_symmetric_column_go_to_robust_when_that_rule_is_on():
    x = rng.normal(100, 10, N)
    x[:20] = 1e6                                                          # 0.5%
    assert advice(o=x).loc['o', 'scaler'] == 'StandardNormalize'         # off by default: the real-data benchmark measured it
    table = suggest_scalers(pd.DataFrame({'o': x}), outlier_share=0.001)
    assert table.loc['o', 'scaler'] == 'RobustNormalize' and '0.50%' in table.loc['o', 'reason']
    assert table.loc['o', 'skewness'] > 10                                # what a moment-based rule would have misread

def test_bounded_flat_column_goes_to_min_max_when_that_rule_is_on():
    df = pd.DataFrame({'u': rng.uniform(0, 100, N), 'beta': rng.beta(0.8, 0.8, N)})
    default = suggest_scalers(df)
    assert (default['scaler'] == 'StandardNormalize').all() and not default['bounded'].any()   # off by default
    table = suggest_scalers(df, bounded_kurtosis=-0.8)
    assert (table['scaler'] == 'MinMaxNormalize').all() and table['bounded'].all()

def test_near_normal_goes_to_standard():
    table = advice(n=rng.normal(15, 8, N), counts=rng.poisson(30, N) + 0.)
    assert (table['scaler'] == 'StandardNormalize').all()
    assert table.loc['counts', 'integer'] and not table.loc['n', 'integer']

def test_thresholds_are_parameters():
    x = rng.normal(size=N); x[:8] = 50.                                   # 0.2% outliers
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert suggest_scalers(pd.DataFrame({'x': x}), outlier_share=0.001).loc['x', 'scaler'] == 'RobustNormalize'
        assert suggest_scalers(pd.DataFrame({'x': x}), outlier_share=0.01).loc['x', 'scaler'] == 'StandardNormalize'
        assert suggest_scalers(pd.DataFrame({'x': x}), outlier_share=0.001, tail_share=0.001).loc['x', 'scaler'] == 'QuantileNormalize'
        ln = rng.lognormal(0, 0.2, N)                                     # mildly skewed: quartile skewness ~0.07, few beyond 3 IQR
        assert suggest_scalers(pd.DataFrame({'x': ln})).loc['x', 'scaler'] == 'StandardNormalize'
        assert suggest_scalers(pd.DataFrame({'x': ln}), skew_threshold=0.02).loc['x', 'scaler'] == 'PowerNormalize'

def test_the_table_has_every_statistic_and_missing_values_are_counted():
    x = rng.normal(size=N); x[::10] = np.nan
    table = advice(x=x)
    for col in ['n_unique', 'missing_share', 'min', 'max', 'skewness', 'quartile_skewness', 'kurtosis', 'outlier_share',
                'constant', 'binary', 'integer', 'bounded', 'scaler', 'reason']:
        assert col in table.columns
    np.testing.assert_allclose(table.loc['x', 'missing_share'], 0.1)
    assert table.loc['x', 'n'] == N - N // 10
    st_ = column_stats(x)
    np.testing.assert_allclose(st_['mean'], np.nanmean(x)); np.testing.assert_allclose(st_['max'], np.nanmax(x))

@pytest.mark.parametrize('call, error, message', [
    (lambda: suggest_scalers(np.zeros((3, 2))), TypeError, 'expected a DataFrame'),
    (lambda: suggest_scalers(pd.DataFrame({'a': [1., 2.]}), ['b']), KeyError, r"\['b'\] are not in the data"),
    (lambda: suggest_scalers(pd.DataFrame({'a': [np.nan, np.nan]})), ValueError, r"\['a'\] have no non-missing values"),
    (lambda: suggest_scalers(pd.DataFrame({'a': [1., np.inf]})), ValueError, r"column 'a' contains 1 infinite"),
    (lambda: suggest_scalers(pd.DataFrame({'a': ['x', 'y']}), ['a']), TypeError, r"column 'a' holds 2 value"),
    (lambda: suggest_scalers(pd.DataFrame({'a': [1., 2.]}), skew_threshold=-1), ValueError, 'skew_threshold'),
    (lambda: suggest_scalers(pd.DataFrame({'a': [1., 2.]}), skewed_scaler='Normalize'), ValueError, 'skewed_scaler'),
    (lambda: AutoNormalize(tail_scaler='RobustNormalize'), ValueError, 'tail_scaler'),
    (lambda: AutoNormalize(skew=0.3), TypeError, r"unknown option\(s\) \['skew'\]"),
    (lambda: AutoNormalize(tail_share=0.001, outlier_share=0.01), ValueError, 'must not exceed'),
    (lambda: suggest_scalers(pd.DataFrame({'a': [1., 2.]}), bounded_kurtosis='flat'), ValueError, 'must be a number or None'),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message): call()


# ---- AutoNormalize ------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def mixed():
    df = mixed_table(3000, seed=1)
    conts = ['flag', 'price', 'pct', 'temp', 'visits']
    splits = [list(s) for s in RandomSplitter(seed=0)(df)]
    return df, conts, splits

def test_auto_applies_each_choice_to_its_columns(mixed):
    df, conts, splits = mixed
    to = TabularPandas(df, procs=[AutoNormalize], cont_names=conts, y_names='y', splits=splits, reduce_memory=False)
    auto = to.procs.auto_normalize
    train = df.iloc[splits[0]]
    expected = suggest_scalers(train, conts, warn=False)
    pd.testing.assert_frame_equal(auto.choices, expected)                # fitted on the training split only
    for name, scaler in expected['scaler'].items():
        proc = auto.scaler_of(name)
        if scaler == 'none': np.testing.assert_array_equal(to.items[name], df.loc[to.items.index, name].astype(np.float32))
        else:
            assert type(proc).__name__ == scaler
            alone = TabularPandas(df, procs=[type(proc)(cols=[name])], cont_names=conts, y_names='y', splits=splits, reduce_memory=False)
            np.testing.assert_array_equal(to.items[name], alone.items[name])   # the same as that scaler on its own

def test_validation_rows_never_change_the_choices(mixed):
    df, conts, splits = mixed
    other = df.copy()
    other.loc[splits[1], 'temp'] = 1e6                                   # wild validation rows
    a = TabularPandas(df, procs=[AutoNormalize], cont_names=conts, y_names='y', splits=splits).procs.auto_normalize
    b = TabularPandas(other, procs=[AutoNormalize], cont_names=conts, y_names='y', splits=splits).procs.auto_normalize
    pd.testing.assert_frame_equal(a.choices, b.choices)

def test_auto_with_cols_composes_with_other_scalers(mixed):
    df, conts, splits = mixed
    to = TabularPandas(df, procs=[AutoNormalize(cols=['price', 'pct']), RobustNormalize(cols=['temp'])], cont_names=conts,
                       y_names='y', splits=splits)
    assert to.procs.auto_normalize.choices.index.tolist() == ['price', 'pct']
    np.testing.assert_array_equal(to.items['visits'], df.loc[to.items.index, 'visits'])   # claimed by nobody: unchanged

def test_from_choices_is_a_preset_that_scales_only_the_data_columns(mixed):
    "A preset (what `from_data` builds) set up on fewer continuous columns than it has advice for uses theirs, like any preset"
    df, conts, splits = mixed
    full = TabularPandas(df, procs=[AutoNormalize(warn=False)], cont_names=conts, y_names='y', splits=splits, reduce_memory=False)
    fitted = full.procs.auto_normalize
    preset = AutoNormalize.from_choices(fitted.choices, fitted.scalers)
    assert preset.preset and preset.choices.index.tolist() == conts
    to = TabularPandas(df, procs=[preset], cont_names=['price', 'temp'], y_names='y', splits=splits, reduce_memory=False)
    assert preset.choices.index.tolist() == ['price', 'temp'] and list(preset.scalers) == ['PowerNormalize', 'StandardNormalize']
    assert preset.scaler_of('price').cols == ['price'] and preset.scaler_of('price').fitted_columns() == ['price']
    for c in ['price', 'temp']: np.testing.assert_array_equal(to.items[c], full.items[c])       # the statistics it was given
    np.testing.assert_array_equal(to.items['pct'], df.loc[to.items.index, 'pct'])             # not a continuous column here
    with pytest.raises(ValueError, match=r"has no statistics for columns \['extra'\]"):
        TabularPandas(df.assign(extra=1.), procs=[preset], cont_names=['price', 'extra'], y_names='y')
    no_power = {k: v for k, v in fitted.scalers.items() if k != 'PowerNormalize'}
    with pytest.raises(ValueError, match=r"column 'price' is advised 'PowerNormalize', and `scalers` has no fitted PowerNormalize"):
        AutoNormalize.from_choices(fitted.choices, no_power)

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_auto_never_turns_finite_training_data_into_nan_or_inf(data):
    n = data.draw(st.integers(6, 80))
    kinds = [st.floats(-1e6, 1e6, allow_nan=False, width=32), st.sampled_from([0., 1.]), st.integers(0, 5).map(float),
             st.floats(2**-10, 1e3, width=32), st.just(7.)]
    cols = {f'c{i}': data.draw(hnp.arrays(np.float64, n, elements=k)) for i, k in enumerate(kinds)}
    df = pd.DataFrame(cols).assign(y=0.)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        to = TabularPandas(df, procs=[AutoNormalize], cont_names=list(cols), y_names='y')
    assert np.isfinite(to.items[list(cols)].to_numpy()).all()


# ---- composition rules of every scaler (cols=) ----------------------------------------------------------------

@pytest.mark.parametrize('first, second', [
    (RobustNormalize(cols=['a', 'b']), MinMaxNormalize(cols=['b'])), (Normalize(), QuantileNormalize(cols=['a'])),
    (AutoNormalize(), PowerNormalize(cols=['b'])), (StandardNormalize(), RobustNormalize()), (SquashNormalize(cols=['a']), Normalize())])
def test_a_column_claimed_by_two_scalers_is_an_error_naming_both(first, second):
    df = pd.DataFrame({'a': rng.normal(size=50), 'b': rng.lognormal(size=50), 'y': 0.})
    a, b = type(first).__name__, type(second).__name__
    with pytest.raises(ValueError, match=rf"would be scaled twice, by ({a}.* and by {b}|{b}.* and by {a})"):
        TabularPandas(df, procs=[first, second], cont_names=['a', 'b'], y_names='y')

@pytest.mark.parametrize('make', [RobustNormalize, MinMaxNormalize, StandardNormalize, QuantileNormalize, PowerNormalize, SquashNormalize,
                                  AutoNormalize])
def test_cols_must_name_continuous_columns(make):
    df = pd.DataFrame({'a': rng.normal(size=50), 'city': rng.choice(['x', 'y'], 50), 'y': 0.})
    with pytest.raises(ValueError, match=r"\['city'\] are not continuous columns"):
        TabularPandas(df, procs=[Categorify, make(cols=['a', 'city'])], cat_names=['city'], cont_names=['a'], y_names='y')

def test_fill_missing_then_per_column_scalers_like_the_design_says():
    df = pd.DataFrame({'income': rng.lognormal(10, 1, 300), 'price': rng.lognormal(5, 1, 300), 'pct': rng.uniform(0, 100, 300),
                       'age': rng.normal(40, 10, 300), 'y': 0.})
    df.loc[::17, 'income'] = np.nan
    to = TabularPandas(df, procs=[Categorify, FillMissing, RobustNormalize(cols=['income', 'price']), MinMaxNormalize(cols=['pct'])],
                       cont_names=['income', 'price', 'pct', 'age'], y_names='y', splits=RandomSplitter(seed=0)(df))
    assert to.items['pct'].between(-0.1, 1.1).all() and (to.items['age'] == df.loc[to.items.index, 'age'].astype(np.float32)).all()
    decoded = to.procs.decode(to.new(to.items.copy())).items
    np.testing.assert_allclose(decoded['price'], df.loc[decoded.index, 'price'], rtol=1e-5)
