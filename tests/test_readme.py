"""Every code block of README.md runs as shown (issue 18.11). The Python blocks run top to bottom in one fresh
interpreter, as a reader pasting them would; each shell command runs as written, except the test command itself
(CI's `.ci/run` runs that one verbatim) and `pip install`, whose extras are checked against the package's own."""
import os, re, shlex, subprocess, sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = (ROOT / 'README.md').read_text(encoding='utf-8')
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
TEST_COMMAND = 'pip install -e ".[dev]" && nbdev-test && pytest tests'


def code_blocks(lang):
    return [body for kind, body in FENCE.findall(README) if kind == lang]

def shell_commands():
    "Every command of the README's shell blocks, in order, split at `&&`"
    return [cmd.strip() for block in code_blocks('sh') for line in block.splitlines() if line.strip()
            for cmd in line.split('&&')]

def executable(name):
    "A console script of this environment, also when the venv is not activated (pytest run as .venv/bin/python -m pytest)"
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def test_readme_has_the_blocks_this_test_runs():
    assert code_blocks('python'), "README.md lost its Python example"
    assert TEST_COMMAND in [line.strip() for block in code_blocks('sh') for line in block.splitlines()]
    assert set(kind for kind, _ in FENCE.findall(README)) <= {'python', 'sh'}, "a code block of another kind: run it here too"

def test_python_blocks_run_in_a_fresh_interpreter(tmp_path):
    code = '\n\n'.join(code_blocks('python'))
    assert code.lstrip().startswith(('from ', 'import ')), "the first Python block must bring its own imports"
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                       env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert r.returncode == 0, f"the README's Python blocks fail in a fresh interpreter:\n{r.stderr[-4000:]}"

def _pip_extras(cmd):
    words = shlex.split(cmd)
    assert words[:3] == ['pip', 'install', '-e'] and len(words) == 4, f"unexpected pip command in README.md: {cmd}"
    m = re.fullmatch(r"\.(?:\[([\w,]+)\])?", words[3])
    assert m, f"README.md installs {words[3]!r}, not this checkout"
    return set(filter(None, (m.group(1) or '').split(',')))

def test_pip_commands_name_extras_that_exist():
    extras = set(metadata.metadata('fastai_scaling').get_all('Provides-Extra') or [])
    pips = [c for c in shell_commands() if c.startswith('pip ')]
    assert pips
    for cmd in pips:
        assert _pip_extras(cmd) <= extras, f"{cmd}: the package has the extras {sorted(extras)}"

@pytest.mark.parametrize('cmd', [c for c in shell_commands() if not c.startswith('pip ')])
def test_shell_command_runs_as_shown(cmd, tmp_path):
    if cmd in ('nbdev-test', 'pytest tests'):
        return   # the README's test command: CI (.ci/run) greps it out of README.md and runs it verbatim
    words = shlex.split(cmd)
    assert words[0] == 'fastai_scaling', f"a new command in README.md: make this test run it: {cmd}"
    r = subprocess.run([executable(words[0]), *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"`{cmd}` failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    if words[1:2] == ['compare']: assert (tmp_path / 'scaling-report' / 'report.html').exists()
