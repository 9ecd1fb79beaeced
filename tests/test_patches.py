"""The package's patches of fastai, each with a test that fails if fastai changes under it.

Two patches, both in `fastai_scaling.patches` and applied when `fastai_scaling.core` (which imports it) is imported:
- fastai's tabular `Normalize.setups`, wrapped so that it refuses columns one of this package's scalers already scales;
  the wrapper finds fastai's original among the methods of the plum function `Normalize.setups`;
- fastai's tabular `show_results`, registered again with plum's `dispatch` so that the inputs show in original units.
"""
import warnings

import numpy as np, pandas as pd, pytest
from fastai.tabular.all import (TabularPandas, Tabular, Normalize, RandomSplitter, tabular_learner, tabular_config)
import fastai.data.core, fastai.tabular.learner
from plum import Signature

import fastai_scaling.patches as patches
from fastai_scaling.patches import _fastai_normalize_setups
from fastai_scaling.procs import RobustNormalize

warnings.filterwarnings('ignore', message='The given NumPy array is not writable')


def table(n=200, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'a': rng.normal(50, 10, n), 'b': rng.uniform(0, 1e4, n)})
    df['y'] = df.a / 10 + df.b / 1e3 + rng.normal(0, .1, n)
    return df


# ---- Normalize.setups ---------------------------------------------------------------------------------------

def tabular_methods(function):
    "The methods of a plum function whose last argument is a `Tabular`"
    return [m for m in function.methods if m.signature.types[-1] is Tabular]


def test_the_wrapped_normalize_setups_is_fastais_own():
    "The original the wrapper calls is fastai's tabular `Normalize.setups`, and the wrapper replaced it (one Tabular method)"
    assert _fastai_normalize_setups.__module__ == 'fastai.tabular.core' and _fastai_normalize_setups.__name__ == 'setups'
    methods = tabular_methods(Normalize.setups)
    assert len(methods) == 1 and methods[0].implementation.__module__ == patches.__name__


def test_normalize_still_fits_what_fastai_documents():
    "Through the wrapper, fastai's Normalize fits the training rows' mean and std(ddof=0) + 1e-7, as fastai's code does"
    df = table()
    splits = RandomSplitter(seed=1)(df)
    to = TabularPandas(df, procs=[Normalize], cont_names=['a', 'b'], y_names='y', splits=splits)
    norm, train = to.procs.normalize, df.iloc[list(splits[0])]
    for c in ('a', 'b'):
        assert norm.means[c] == pytest.approx(train[c].mean(), rel=1e-6)
        assert norm.stds[c] == pytest.approx(train[c].std(ddof=0) + 1e-7, rel=1e-6)
    np.testing.assert_allclose(to.train.items['a'], (train['a'] - norm.means['a']) / norm.stds['a'], rtol=1e-5)


def test_normalize_refuses_a_column_another_scaler_scales():
    df = table()
    with pytest.raises(ValueError, match=r"column\(s\) \['a'\] would be scaled twice"):
        TabularPandas(df, procs=[RobustNormalize(cols=['a']), Normalize], cont_names=['a', 'b'], y_names='y',
                      splits=RandomSplitter(seed=1)(df))


# ---- show_results --------------------------------------------------------------------------------------------

def test_show_results_is_registered_where_fastai_dispatches_it():
    "One plum function, the one fastai's `TfmdDL.show_results` calls, with our method for (Tabular, Tabular) and no other"
    assert patches.show_results is fastai.data.core.show_results is fastai.tabular.learner.show_results
    # plum makes one method per number of arguments given (defaults left out): all of them ours, fastai's replaced
    methods = [m for m in patches.show_results.methods if tuple(m.signature.types[:2]) == (Tabular, Tabular)]
    assert methods and all(m.implementation.__module__ == patches.__name__ for m in methods)
    function, _ = patches.show_results.resolve_method(Signature(TabularPandas, TabularPandas, list, list))   # what a tabular call gets
    assert function.__module__ == patches.__name__


def test_show_results_shows_the_inputs_in_original_units(monkeypatch):
    df = table()
    splits = RandomSplitter(seed=1)(df)
    to = TabularPandas(df, procs=[RobustNormalize], cont_names=['a', 'b'], y_names='y', splits=splits)
    learn = tabular_learner(to.dataloaders(bs=32, shuffle=False), layers=[], config=tabular_config(use_bn=False), n_out=1)
    shown = []
    monkeypatch.setattr(patches, "display_df", shown.append)
    with learn.no_bar(): learn.show_results(max_n=5, shuffle=False)
    assert len(shown) == 1 and {'a', 'b', 'y_pred'} <= set(shown[0].columns)
    rows = df.iloc[list(splits[1])[:5]]                                                   # the first validation rows, in order
    np.testing.assert_allclose(shown[0]['a'].astype(float), rows['a'], rtol=1e-5)       # raw units, not robust-scaled codes
    np.testing.assert_allclose(shown[0]['b'].astype(float), rows['b'], rtol=1e-5)
