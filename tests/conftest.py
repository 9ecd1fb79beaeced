"pytest setup shared by every test module"
import sys
from pathlib import Path

# `pytest tests` puts tests/ on sys.path, not the repository root: the real-data tests import `benchmarks.realdata*`
# (scripts, not part of the installed package), as `python benchmarks/realdata.py` does from its own folder
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
