"Command-line options the torch benchmarks share: how many torch threads, and where to write the results"
import warnings
import torch


def parse_torch_args(p, argv=None):
    "Add `--threads` and `--json` to the parser `p`, parse `argv`, and apply `--threads` before anything is timed"
    p.add_argument('--threads', type=int, help="torch threads (default: torch's own choice)")
    p.add_argument('--json', help='write the results to this file')
    a = p.parse_args(argv)
    warnings.filterwarnings('ignore')
    if a.threads: torch.set_num_threads(a.threads)
    return a
