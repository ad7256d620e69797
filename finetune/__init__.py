"""The fine-tuning engine: configs, timm models, datasets, layer groups, the training loop
and the run directory every probe reads."""

__version__ = "0.1.0"
