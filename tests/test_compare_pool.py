"The worker processes of `compare_scalers` (`compare_pool`): order, progress lines, errors, dead workers, and no heavy import."
import os, signal, subprocess, sys, time
from pathlib import Path

import pytest

from fastai_scaling.compare_pool import run_in_processes, quiet_fastai_import

ROOT = Path(__file__).parents[1]


# jobs run in spawned workers, which import this module to find them: module-level functions, light imports
def square(x, report):
    report(f"squaring {x}")
    return x * x

def slow_square(x, report):
    time.sleep(0.3 if x == 0 else 0)   # the first job finishes last
    return x * x

def fail_on(x, report):
    if x == 'bad': raise ValueError(f"job {x!r} refuses")
    time.sleep(60)
    return x

def die(x, report):
    os.kill(os.getpid(), signal.SIGKILL)

def unpicklable(x, report):
    return lambda: x


def test_results_in_job_order_and_every_progress_line():
    lines = []
    assert run_in_processes(slow_square, list(range(6)), workers=3) == [x * x for x in range(6)]
    assert run_in_processes(square, [1, 2, 3], workers=2, report=lines.append) == [1, 4, 9]
    assert sorted(lines) == ['squaring 1', 'squaring 2', 'squaring 3']


def test_the_first_error_stops_every_worker_and_keeps_its_traceback():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="job 'bad' refuses") as e:
        run_in_processes(fail_on, ['slow', 'bad', 'slow'], workers=3)
    assert time.perf_counter() - start < 30                       # not the 60 s of the other jobs
    assert 'in fail_on' in str(e.value.__cause__)                 # the worker's traceback, as the cause


def test_a_dead_worker_is_an_error_not_a_wait():
    with pytest.raises(RuntimeError, match=r"a worker process stopped \(exit code -9\)"):
        run_in_processes(die, [1, 2], workers=2)


def test_a_result_that_cannot_travel_is_an_error():
    with pytest.raises(Exception, match='pickle'):
        run_in_processes(unpicklable, [1, 2], workers=2)


def test_quiet_fastai_import_hides_that_one_message_inside_the_block_only():
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with quiet_fastai_import():
            warnings.warn('`torch.jit.script` is deprecated. Please switch to `torch.compile`.', FutureWarning)
            warnings.warn('`torch.jit.script` is deprecated. Please switch to `torch.compile`.', DeprecationWarning)
            warnings.warn('another deprecation', DeprecationWarning)
        warnings.warn('`torch.jit.script` is deprecated.', FutureWarning)
    assert [str(w.message) for w in caught] == ['another deprecation', '`torch.jit.script` is deprecated.']


def test_the_pool_imports_only_the_standard_library():
    "A spawned worker imports the pool's module before its first job: it must start light"
    code = "import sys, fastai_scaling.compare_pool; print([m for m in ('torch', 'fastai', 'pandas', 'numpy') if m in sys.modules])"
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == '[]', p.stdout + p.stderr
