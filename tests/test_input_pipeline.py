"""The input pipeline: timm's data config resolved into an InputSpec, decoding at the stored
size, the batched centre and random resized crops against torchvision and hand slicing,
preparation in parts equal to preparation whole, and runs with the rrc augmentation."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import fast_config
from PIL import Image
from safetensors.torch import load_file
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from finetune import engine
from finetune.config import DataConfig, ModelConfig, build_config
from finetune.data import get_dataset
from finetune.data.augment import BatchPrep
from finetune.data.block_shuffle import BlockShuffle
from finetune.data.crops import center_crop, random_resized_crop, rrc_boxes
from finetune.data.folder import square_uint8
from finetune.data.input_spec import InputSpec, recorded_input, resolve_input
from finetune.errors import UnknownModelError
from finetune.runs import load_run
from probes.inputs import eval_prep, probe_data
from probes.options import ProbeOptions

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
CPU = torch.device("cpu")


def test_model_preprocessing_follows_timms_pretrained_config():
    # timm 1.0.31: resnet50 (a1_in1k) is 224px, crop_pct 0.95, bicubic; floor(224 / 0.95) = 235.
    spec = resolve_input(ModelConfig("resnet50", pretrained=True), DataConfig(), 32)
    assert spec == InputSpec(224, 235, 0.95, "bicubic", IMAGENET_MEAN, IMAGENET_STD, "rrc", "model")
    # The torchvision weights: crop_pct 0.875, bilinear; floor(224 / 0.875) = 256.
    tv = resolve_input(ModelConfig("resnet50.tv_in1k"), DataConfig(preprocess="model"), 32)
    assert (tv.size, tv.stored_size, tv.interpolation) == (224, 256, "bilinear")
    # --image-size overrides the input size: floor(160 / 0.95) = 168.
    small = resolve_input(ModelConfig("resnet50", pretrained=True), DataConfig(image_size=160), 32)
    assert (small.size, small.stored_size) == (160, 168)


def test_dataset_preprocessing_is_the_datasets_own_size_without_a_margin():
    pretrained = ModelConfig("resnet50", pretrained=True)
    spec = resolve_input(pretrained, DataConfig(preprocess="dataset"), 32)
    assert spec == InputSpec(
        32, 32, 1.0, "bilinear", IMAGENET_MEAN, IMAGENET_STD, "translate", "dataset"
    )
    # Without --pretrained, auto is dataset; --aug picks the scheme whatever the source.
    plain = resolve_input(ModelConfig("test_resnet"), DataConfig(image_size=24, aug="rrc"), 96)
    assert (plain.size, plain.stored_size, plain.preprocess, plain.aug) == (
        24,
        24,
        "dataset",
        "rrc",
    )
    with pytest.raises(UnknownModelError):
        resolve_input(ModelConfig("resnet50.no_such_tag"), DataConfig(), 32)
    with pytest.raises(UnknownModelError):
        resolve_input(ModelConfig("no_such_model"), DataConfig(), 32)


def test_new_options_change_the_hash_only_when_set():
    default = build_config("finetune", {}, {})
    assert build_config("finetune", {}, {"preprocess": "auto", "aug": "auto"}).hash() == (
        default.hash()
    )
    assert build_config("finetune", {}, {"aug": "rrc"}).hash() != default.hash()
    assert build_config("finetune", {}, {"preprocess": "model"}).hash() != default.hash()


def test_files_are_decoded_with_the_requested_interpolation(tmp_path):
    pixels = torch.randint(0, 256, (30, 40, 3), generator=torch.Generator().manual_seed(0))
    image = Image.fromarray(pixels.to(torch.uint8).numpy())
    for mode in ("bilinear", "bicubic"):
        # torchvision's eval resize: shorter side to 13 (antialiased), centre crop 13.
        expected = TF.pil_to_tensor(
            TF.center_crop(TF.resize(image, 13, InterpolationMode(mode), antialias=True), 13)
        )
        assert torch.equal(square_uint8(image, 13, mode), expected)
    assert not torch.equal(square_uint8(image, 13, "bilinear"), square_uint8(image, 13, "bicubic"))
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "test" / "a").mkdir(parents=True)
    image.save(tmp_path / "train" / "a" / "x.png")
    image.save(tmp_path / "test" / "a" / "x.png")
    data = get_dataset(f"folder:{tmp_path}", "test", image_size=13, interpolation="bicubic")
    assert torch.equal(data.image(0), square_uint8(image, 13, "bicubic"))


def test_centre_crop_is_the_central_window():
    images = torch.arange(2 * 3 * 11 * 12).view(2, 3, 11, 12)
    # (11 - 6) / 2 = 2.5 rounds to 2 (as torchvision rounds), (12 - 6) / 2 = 3.
    assert torch.equal(center_crop(images, 6), images[..., 2:8, 3:9])
    assert torch.equal(center_crop(images, 6), TF.center_crop(images, [6, 6]))
    assert torch.equal(center_crop(images[..., :11], 11), images[..., :11])


def test_rrc_of_the_whole_image_at_its_own_size_is_the_identity():
    images = torch.rand(4, 3, 16, 16)
    out = random_resized_crop(
        images, 16, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0)
    )
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_rrc_resizes_each_box_as_torchvision_does():
    images = torch.rand(6, 3, 20, 20)
    boxes = rrc_boxes(6, 20, torch.Generator().manual_seed(5))
    out = random_resized_crop(images, 12, torch.Generator().manual_seed(5))
    for image, box, got in zip(images, boxes.int().tolist(), out):
        top, left, height, width = box
        expected = TF.resized_crop(
            image, top, left, height, width, [12, 12], InterpolationMode.BILINEAR, antialias=False
        )
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_rrc_boxes_lie_in_the_image_within_the_scale_and_ratio_ranges():
    side = 64
    top, left, height, width = rrc_boxes(4000, side, torch.Generator().manual_seed(1)).T
    assert bool((top >= 0).all() and (left >= 0).all())
    assert bool((top + height <= side).all() and (left + width <= side).all())
    area, ratio = height * width / side**2, width / height
    # Sides are rounded to whole pixels (the smallest boxes are about 18px a side).
    assert 0.08 * 0.9 <= float(area.min()) < 0.1 and float(area.max()) == 1.0
    assert 0.75 * 0.94 <= float(ratio.min()) < 0.8 and 1.25 < float(ratio.max()) <= 4 / 3 * 1.06
    # Placements are uniform: the mean relative position of partial boxes is about 1/2.
    partial = height < side
    assert float((top[partial] / (side - height[partial])).mean()) == pytest.approx(0.5, abs=0.03)
    # An aspect ratio that never fits falls back to the whole image, as torchvision does.
    whole = rrc_boxes(5, side, torch.Generator().manual_seed(1), scale=(1, 1), ratio=(2, 2))
    assert whole.tolist() == [[0, 0, side, side]] * 5


def _reference_translate_flip(images, generator):
    """Today's training preparation, one image at a time: normalise, shift by (dy, dx) in a
    reflect-padded copy, flip where a uniform draw is below 1/2."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    x = (images.float() / 255 - mean) / std
    n, _, h, w = x.shape
    s = h // 8
    offsets = torch.randint(0, 2 * s + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    padded = torch.nn.functional.pad(x, (s,) * 4, mode="reflect")
    out = torch.stack(
        [padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.T.tolist())]
    )
    return torch.where(flips[:, None, None, None], out.flip(3), out)


def test_dataset_preprocessing_prepares_images_as_before():
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    spec = resolve_input(ModelConfig("test_resnet"), DataConfig(image_size=16), 32)
    prep = BatchPrep(
        MEAN, STD, CPU, augment=True, flip=True, channels_last=False, size=spec.size, aug=spec.aug
    )
    got = prep(images, torch.Generator().manual_seed(7))
    expected = _reference_translate_flip(images, torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    plain = BatchPrep(MEAN, STD, CPU, augment=True, flip=True, channels_last=False)
    assert torch.equal(plain(images, torch.Generator().manual_seed(7)), got)


@pytest.mark.parametrize("aug", ["translate", "rrc"])
@pytest.mark.parametrize("scheme", [None, "random"])
def test_a_batch_prepared_in_parts_equals_the_batch_prepared_whole(aug, scheme):
    images = torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8)
    shuffle = BlockShuffle(16, 4, scheme=scheme, seed=2) if scheme else None
    prep = BatchPrep(
        MEAN,
        STD,
        CPU,
        augment=True,
        flip=True,
        channels_last=True,
        shuffle=shuffle,
        size=16,
        aug=aug,
    )
    g = torch.Generator()
    whole = prep(images, g.manual_seed(3))
    first = prep(images[:4], g.manual_seed(3), part=(0, 8))
    second = prep(images[4:], g.manual_seed(3), part=(4, 8))
    assert torch.equal(torch.cat([first, second]), whole)
    # Without the part, the second half draws as a batch of its own and differs.
    assert not torch.equal(prep(images[4:], g.manual_seed(3)), whole[4:])
    if scheme:  # evaluation under the random scheme draws from the shuffle's own generator
        evaluation = prep(images)
        parts = [prep(images[:4], part=(0, 8)), prep(images[4:], part=(4, 8))]
        assert torch.equal(torch.cat(parts), evaluation)


def test_a_run_with_model_preprocessing_and_rrc_is_deterministic(tmp_path):
    # test_resnet's timm config: crop_pct 0.95, bilinear; at 32px images are stored at 33.
    config = fast_config(epochs=1, image_size=32, preprocess="model")
    for name in ("a", "b"):
        engine.train(config, tmp_path / name, command="test")
    a, b = (
        load_file(str(tmp_path / "a/final.safetensors")),
        load_file(str(tmp_path / "b/final.safetensors")),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "a/config.json").read_text())
    assert record["data"]["image_size"] == 33
    assert record["data"]["input"] == {
        "size": 32,
        "stored_size": 33,
        "crop_pct": 0.95,
        "interpolation": "bilinear",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "aug": "rrc",
        "preprocess": "model",
    }
    # The probes decode at 33px and centre-crop 32px, as the run's evaluation did.
    run = load_run(tmp_path / "a")
    options = ProbeOptions(examples=4, device="cpu")
    runtime = options.runtime()
    data = probe_data(run, runtime, options)
    images, _ = next(data.batches.iterate(data.order, 4))
    assert images.shape[-1] == 33
    expected = (images[..., 0:32, 0:32].float() / 255 - 0.5) / 0.5  # round(1 / 2) = 0
    torch.testing.assert_close(eval_prep(run, runtime)(images), expected, atol=1e-5, rtol=0)


def test_runs_recorded_before_the_input_spec_are_read_as_dataset_preprocessing():
    record = {"config": {"model": {"name": "test_resnet"}}, "data": {"image_size": 24}}
    assert recorded_input(record) == InputSpec(
        24, 24, 1.0, "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "translate", "dataset"
    )
