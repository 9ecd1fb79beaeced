"The comparison's modules: each under 500 lines, and `compare` gives the names of its parts. (Their layers: tests/test_layers.py.)"
from pathlib import Path

import pytest

import fastai_scaling.compare as compare
import fastai_scaling.compare_data as compare_data
import fastai_scaling.compare_results as compare_results

PKG = Path(compare.__file__).parent
MODULES = ['registry', 'compare_pool', 'compare_data', 'compare_results', 'compare_report', 'compare', 'cli']


@pytest.mark.parametrize('module', MODULES)
def test_under_500_lines(module):
    assert len((PKG/f'{module}.py').read_text().splitlines()) < 500


def test_compare_gives_every_public_name_of_its_parts():
    "`from fastai_scaling.compare import X` works for the names of data and results (`one_line`, a message helper, excepted)"
    names = (set(compare_data.__all__) - {'one_line'}) | set(compare_results.__all__) | {'BatchNormInputs', 'DATASETS'}
    assert names <= set(compare.__all__)
    for name in compare.__all__: assert hasattr(compare, name), name


def test_the_report_methods_come_with_compare():
    "`compare_report` adds the plots and `write_report` to `ScalerComparison`; importing `compare` brings them"
    for name in ('plot_losses', 'plot_weights', 'plot_raw_weights', 'write_report'):
        assert callable(getattr(compare.ScalerComparison, name, None)), name
    assert compare.ScalerComparison is compare_results.ScalerComparison
