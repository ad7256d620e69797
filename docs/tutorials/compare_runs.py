# %% [markdown]
# # Compare two runs: CKA, parameter distance, loss barrier
#
# Neyshabur, Sedghi and Zhang (2020) found that two fine-tunings from the same pre-trained
# weights stay in one loss basin, close in weight space and similar in their features,
# while two trainings from random init do not. This tutorial trains both pairs on a small
# target and measures them with three probes.

# %%
import tempfile
from pathlib import Path

from finetune.config import build_config
from finetune.engine import train

work = Path(tempfile.mkdtemp())
recipe = {"model": "test_resnet", "data": "synthetic:near", "image_size": 32,
          "train_per_class": 10, "epochs": 30, "batch_size": 32, "lr": 0.01}
source = work / "source"
train(build_config("pretrain", {}, {"model": "test_resnet", "data": "synthetic:source",
                                    "image_size": 32, "train_per_class": 100, "epochs": 6,
                                    "batch_size": 64, "lr": 0.05}), source, command="tutorial")
runs = {}
for init in ("pretrained", "random"):
    for seed in (0, 1):
        values = {**recipe, "seed": seed, **({"init": str(source)} if init == "pretrained" else {})}
        runs[init, seed] = work / f"{init}-{seed}"
        train(build_config("finetune", {}, values), runs[init, seed], command="tutorial")

# %% [markdown]
# CKA between the two seeds' features at every layer group's output, on the target's test
# images (minibatch linear CKA): 1 means the same representation up to rotation and scale.

# %%
from probes.options import ProbeOptions
from probes.similarity import compare_runs

options = ProbeOptions(examples=500)
for init in ("pretrained", "random"):
    cka = compare_runs(runs[init, 0], runs[init, 1], options=options)
    print(f"{init:>10s}: CKA per group", " ".join(f"{v:.2f}" for v in cka.diagonal))

# %% [markdown]
# How far apart the two seeds' weights are, relative to the weights' norm.

# %%
from probes.distance import distance_between_runs

for init in ("pretrained", "random"):
    distances = distance_between_runs(runs[init, 0], runs[init, 1])
    print(f"{init:>10s}: relative distance {distances.total['relative_distance']:.3f}")

# %% [markdown]
# The loss on the straight line between the two seeds' weights, BatchNorm statistics
# re-estimated at every point: a barrier is a rise above the line between the ends.

# %%
from IPython.display import Image as Show

from landscape.geometry.barrier import barrier_between
from landscape.plots import plot_file

for init in ("pretrained", "random"):
    line = barrier_between(runs[init, 0], runs[init, 1], points=11, options=options,
                           out=work / f"barrier-{init}.h5")
    print(f"{init:>10s}: loss barrier {line.loss_barrier.linear:.3f}")
Show(filename=str(plot_file(work / "barrier-random.h5")))
