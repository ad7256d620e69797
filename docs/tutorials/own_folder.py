# %% [markdown]
# # Fine-tune a timm model on your own image folder, and see what was transferred
#
# Your images go in a folder tree, one sub-folder per class:
#
#     my_images/train/<class>/<image>
#     my_images/test/<class>/<image>
#
# and `--data folder:my_images` reads it. This tutorial writes such a tree from one of the
# built-in synthetic tasks (so that it runs anywhere without a download), pre-trains a tiny
# source model, fine-tunes it on the folder with 10 images per class, and asks
# `landscape explain` what fine-tuning did to each layer group. It runs in a few minutes on
# a CPU; with your own folder, replace the first cell.

# %%
import tempfile
from pathlib import Path

from PIL import Image

from finetune.data import get_dataset

work = Path(tempfile.mkdtemp())
folder = work / "my_images"
for split, per_class in (("train", 10), ("test", 40)):
    images = get_dataset("synthetic:near[0-4]", split, image_size=32, train_per_class=None)
    counts = {}
    for index in range(len(images)):
        label = images.classes[int(images.targets[index])]
        if counts.get(label, 0) == per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        path = folder / split / label / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images.image(index).permute(1, 2, 0).numpy()).save(path)
sorted(p.name for p in (folder / "train").iterdir())

# %% [markdown]
# A source model: test_resnet pre-trained on the synthetic source task (every run is a run
# directory with its configuration, weights and metrics). With timm's own pre-trained
# weights you would give `--pretrained` instead.

# %%
from finetune.config import build_config
from finetune.engine import train

source = work / "source"
train(build_config("pretrain", {}, {"model": "test_resnet", "data": "synthetic:source",
                                    "image_size": 32, "train_per_class": 100, "epochs": 6,
                                    "batch_size": 64, "lr": 0.05}), source, command="tutorial")

# %% [markdown]
# Fine-tune it on the folder: every layer group transferred, the new head trained with
# the rest (the command line is `landscape finetune --init SOURCE --data folder:...`).

# %%
run = work / "finetuned"
result = train(build_config("finetune", {}, {"model": "test_resnet", "init": str(source),
                                             "data": f"folder:{folder}", "image_size": 32,
                                             "epochs": 30, "batch_size": 16, "lr": 0.01}),
               run, command="tutorial")
result.summary["test_acc"]

# %% [markdown]
# What did fine-tuning do to each layer group? `landscape explain RUN` resets one group at
# a time to its pre-trained weights and measures the error, compares each group's features
# with the pre-trained ones (CKA) and how far its weights moved; every number with its
# jackknife error over the test images.

# %%
from IPython.display import Image as Show

from landscape.plots import plot_file
from landscape.tune.explain import explain_runs

explanation = explain_runs([run], out=work / "explain.h5")
print(explanation.table())
Show(filename=str(plot_file(work / "explain.h5")))
