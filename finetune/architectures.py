"""Tiny architectures for 32-pixel images, registered in timm's own model registry, so that
every part of the project (and ``timm.create_model``) builds them by name like any timm
model. timm's test models are sized for 160-pixel inputs: ``test_vit`` cuts a 32-pixel
image into 2 x 2 patches of 16 pixels, too few tokens to learn the tasks here.

- ``landscape_vit_p4``: ``test_vit`` (6 blocks of width 64, 2 heads) with 4-pixel patches
  (64 tokens at 32 pixels), for a second architecture family beside the ResNets."""

from __future__ import annotations

from timm.models import generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, _cfg, _create_vision_transformer

# Read by timm's register_model from this module: the models' data configs (no weights).
default_cfgs = generate_default_cfgs(
    {"landscape_vit_p4": _cfg(input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)}
)


@register_model
def landscape_vit_p4(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """timm's ``test_vit`` with 4-pixel patches and a 32-pixel default input."""
    args = dict(patch_size=4, embed_dim=64, depth=6, num_heads=2, mlp_ratio=3,
                dynamic_img_size=True, img_size=32)  # fmt: skip
    return _create_vision_transformer(
        "landscape_vit_p4", pretrained=pretrained, **dict(args, **kwargs)
    )
