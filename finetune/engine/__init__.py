"""The training engine: a RunConfig in, a run directory out (docs/design.md).

- ``setup``: everything a run needs, built and checked before anything is written (data,
  model and layer-wise policy, optimizer, regularisers, forwards); ``describe_plan``.
- ``loop``: ``train`` and ``resume``, and the epoch loop with its logging, evaluation,
  checkpoints and final summary.
- ``step``: one training step, read top to bottom.
- ``stages``: what trains in each epoch (LP-FT's probe, then the fine-tuning).
- ``auto_lr``: Auto-RGN's per-tensor learning-rate scales, measured at every epoch's start.
- ``meter``: an epoch's loss and accuracy, read back to the host only when logged.
- ``distance``: how far each layer group has moved from w0.
- ``checkpoint``: the checkpoint a run resumes from.
- ``provenance``: config.json and run.h5's attributes.
- ``history``: the metrics history written to run.h5.

Evaluation is ``finetune.evaluation.measure``, shared with every probe; the Fisher
information of L2-SP-Fisher is ``finetune.regularisers.fisher_source``.
"""

from finetune.engine.distance import group_distances
from finetune.engine.loop import Progress, RunResult, process_share, resume, train
from finetune.engine.meter import Diverged
from finetune.engine.setup import describe_plan

__all__ = [
    "Diverged",
    "Progress",
    "RunResult",
    "describe_plan",
    "group_distances",
    "process_share",
    "resume",
    "train",
]
