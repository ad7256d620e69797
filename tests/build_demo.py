"""Build the demo's runs into the folder given as the only argument, once for all pytest
workers: conftest.py starts it in the background at collection. The lock is taken before
torch is imported, so that the workers' fixtures find it held and wait; a build that fails
leaves no marker and the first fixture to get the lock builds the runs itself."""

import sys
from pathlib import Path

from filelock import FileLock


def main(out: Path) -> None:
    with FileLock(f"{out}.lock"):
        if (out / "built").exists():
            return
        import torch

        torch.set_num_threads(1)
        torch.manual_seed(0)
        torch.use_deterministic_algorithms(True)
        from landscape.experiments.demo import run_demo

        run_demo(out)
        (out / "built").touch()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
