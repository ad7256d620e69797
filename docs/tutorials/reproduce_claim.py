# %% [markdown]
# # Reproduce one published claim
#
# `landscape repro NAME` re-checks a claim of the papers the toolkit rests on, on tiny
# models. Here the *depth* claim (Yosinski et al. 2014): freezing more of the transferred
# layer groups costs more on a target far from the source than on a near one. `--quick`
# is the size the tests run: small images, a few epochs, two seeds.

# %%
import tempfile
from pathlib import Path

from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import claims, run_claim

for name, claim in claims().items():
    print(f"{name:<20s}{claim.title}")

# %% [markdown]
# A quick source model, then the claim on it (runs are reused when the claim runs again).

# %%
from finetune.config import build_config
from finetune.engine import train

work = Path(tempfile.mkdtemp())
source = work / "source"
train(
    build_config(
        "pretrain",
        {},
        {
            "model": "test_resnet",
            "data": "synthetic:source",
            "image_size": 16,
            "train_per_class": 100,
            "epochs": 4,
            "batch_size": 32,
            "lr": 0.05,
        },
    ),
    source,
    command="tutorial",
)
result = run_claim("depth", ReproOptions(quick=True, runs=work / "runs", source=source), work)
print(result.table())
print("HELD" if result.held else "DID NOT HOLD", result.verdict)

# %% [markdown]
# The file `depth.h5` holds every number (layout `repro`), and `landscape plot` draws it.
# The full-size version (`landscape repro depth`, and `--pair real` on Fashion-MNIST and the
# digits) is committed under `results/repro/`.

# %%
from IPython.display import Image as Show

from landscape.plots import plot_file

Show(filename=str(plot_file(work / "depth.h5")))
