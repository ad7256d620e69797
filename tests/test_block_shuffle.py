"""Block shuffle (Neyshabur et al. 2020): a permutation of whole blocks, the identity at the
image size, one fixed permutation per seed and grid or a fresh one per image; in the engine,
applied after normalisation and augmentation, and bit-identical to no option when intact."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from conftest import fast_config
from safetensors.torch import load_file

from finetune import engine
from finetune.config import LATER_FIELDS, build_config
from finetune.data.augment import BatchPrep
from finetune.data.block_shuffle import BlockShuffle, fixed_permutation, shuffle_blocks
from finetune.errors import ConfigError

SIZE = 8


def _images(n: int = 5, c: int = 3, size: int = SIZE) -> torch.Tensor:
    """Distinct float values, so every block can be told from every other."""
    return torch.randperm(n * c * size * size).float().view(n, c, size, size)


def _blocks(image: torch.Tensor, b: int) -> list[torch.Tensor]:
    """The b x b blocks of one (C, H, W) image, row by row (a plain loop: the reference)."""
    g = image.shape[-1] // b
    return [image[:, r * b : (r + 1) * b, c * b : (c + 1) * b] for r in range(g) for c in range(g)]


def _mapping(before: torch.Tensor, after: torch.Tensor, b: int) -> list[int]:
    """For each block of ``after``, the index of the equal block of ``before``; fails when a
    block of ``after`` is not a whole block of ``before``."""
    source = _blocks(before, b)
    found = []
    for block in _blocks(after, b):
        matches = [k for k, s in enumerate(source) if torch.equal(s, block)]
        assert len(matches) == 1, "an output block is not one input block"
        found.append(matches[0])
    return found


@pytest.mark.parametrize("scheme", ["fixed", "random"])
@pytest.mark.parametrize("b", [1, 2, 4])
def test_shuffle_permutes_the_pixels_of_each_image_and_channel(scheme, b):
    x = _images()
    y = BlockShuffle(SIZE, b, scheme=scheme)(x, torch.Generator().manual_seed(3))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.equal(y, x)
    flat_x, flat_y = x.flatten(2), y.flatten(2)
    assert torch.equal(flat_x.sort(dim=2).values, flat_y.sort(dim=2).values)


@pytest.mark.parametrize("scheme", ["fixed", "random"])
@pytest.mark.parametrize("b", [2, 4])
def test_shuffle_moves_whole_blocks_one_to_one(scheme, b):
    x = _images()
    y = BlockShuffle(SIZE, b, scheme=scheme)(x, torch.Generator().manual_seed(1))
    for i in range(len(x)):
        mapping = _mapping(x[i], y[i], b)
        assert sorted(mapping) == list(range((SIZE // b) ** 2))


@pytest.mark.parametrize("scheme", ["fixed", "random"])
def test_block_of_the_image_size_is_the_identity(scheme):
    x = _images()
    shuffle = BlockShuffle(SIZE, SIZE, scheme=scheme)
    assert shuffle.identity
    assert torch.equal(shuffle(x, torch.Generator().manual_seed(0)), x)
    assert torch.equal(shuffle(x), x)


def test_output_block_k_is_input_block_perm_k_as_documented():
    # 4x4 image, 2x2 blocks numbered row by row: block k covers rows 2*(k//2), cols 2*(k%2).
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = shuffle_blocks(x, 2, torch.tensor([3, 2, 1, 0]))
    expected = torch.tensor([[10.0, 11, 8, 9], [14, 15, 12, 13], [2, 3, 0, 1], [6, 7, 4, 5]]).view(
        1, 1, 4, 4
    )
    assert torch.equal(y, expected)


def test_fixed_scheme_is_one_permutation_for_every_image_and_call_chosen_by_the_seed():
    x, b = _images(), 2
    shuffle = BlockShuffle(SIZE, b, seed=0)
    first, second = shuffle(x), shuffle(x, torch.Generator().manual_seed(9))
    assert torch.equal(first, second)  # calls and generators do not matter
    mappings = {tuple(_mapping(x[i], first[i], b)) for i in range(len(x))}
    assert len(mappings) == 1  # the same for every image
    (mapping,) = mappings
    assert list(mapping) != sorted(mapping)  # not the identity
    # Another object with the same seed and grid: the same; a new seed: another one.
    assert torch.equal(BlockShuffle(SIZE, b, seed=0)(x), first)
    other = BlockShuffle(SIZE, b, seed=1)(x)
    assert tuple(_mapping(x[0], other[0], b)) != mapping
    # A function of the seed and the grid only: 4x4 grids of 16px and 32px images agree.
    assert torch.equal(BlockShuffle(16, 4, seed=5).perm, BlockShuffle(32, 8, seed=5).perm)
    assert torch.equal(fixed_permutation(16, 5), fixed_permutation(16, 5))


def test_fixed_permutation_is_never_the_identity_on_a_small_grid():
    for seed in range(200):
        perm = fixed_permutation(4, seed)
        assert sorted(perm.tolist()) == [0, 1, 2, 3]
        assert perm.tolist() != [0, 1, 2, 3]


def test_random_scheme_differs_between_images_and_calls_and_is_seeded():
    x, b = _images(n=6), 2
    shuffle = BlockShuffle(SIZE, b, scheme="random", seed=0)
    generator = torch.Generator().manual_seed(0)
    a, c = shuffle(x, generator), shuffle(x, generator)
    mappings = [tuple(_mapping(x[i], a[i], b)) for i in range(len(x))]
    assert len(set(mappings)) > 1  # images get their own permutations
    assert not torch.equal(a, c)  # and a fresh one at every call
    assert torch.equal(shuffle(x, torch.Generator().manual_seed(0)), a)  # reproducible
    # Without a generator (evaluation) every call is the same: a function of the config.
    assert torch.equal(shuffle(x), shuffle(x))
    assert torch.equal(BlockShuffle(SIZE, b, scheme="random", seed=0)(x), shuffle(x))


def test_memory_format_is_kept_and_values_do_not_depend_on_it():
    x = _images()
    for scheme in ("fixed", "random"):
        shuffle = BlockShuffle(SIZE, 2, scheme=scheme)
        plain = shuffle(x)
        last = shuffle(x.contiguous(memory_format=torch.channels_last))
        assert plain.is_contiguous()
        assert last.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(last, plain)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_gives_the_cpu_result():
    x = _images()
    shuffle_cpu, shuffle_gpu = BlockShuffle(SIZE, 2), BlockShuffle(SIZE, 2, device="cuda")
    assert torch.equal(shuffle_gpu(x.cuda()).cpu(), shuffle_cpu(x))
    random_gpu = BlockShuffle(SIZE, 2, scheme="random", device="cuda")
    y = random_gpu(x.cuda(), torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(y.cpu().flatten(2).sort(2).values, x.flatten(2).sort(2).values)


@pytest.mark.parametrize(
    "b, message", [(3, "does not divide the image size 8px"), (0, "at least 1")]
)
def test_bad_block_sizes_are_config_errors(b, message):
    with pytest.raises(ConfigError, match=message):
        BlockShuffle(SIZE, b)


def test_config_validates_block_size_and_scheme():
    with pytest.raises(ConfigError, match="--block-shuffle 3 does not divide --image-size 16"):
        build_config("finetune", {}, {"image_size": 16, "block_shuffle": 3})
    with pytest.raises(ConfigError, match="--block-shuffle must be positive"):
        build_config("finetune", {}, {"block_shuffle": 0})
    with pytest.raises(ConfigError, match="--shuffle-scheme must be one of fixed, random"):
        build_config("finetune", {}, {"shuffle_scheme": "sometimes"})


def test_a_block_not_dividing_the_datasets_own_size_is_refused_before_writing(tmp_path):
    # synthetic:near is 32px by default; 5 does not divide it.
    config = fast_config(image_size=None, block_shuffle=5)
    with pytest.raises(ConfigError, match="does not divide the image size 32px"):
        engine.train(config, tmp_path / "run", command="test")
    assert not (tmp_path / "run").exists()


def test_hash_of_a_config_without_the_shuffle_is_the_hash_it_had_before():
    # Before the block-shuffle fields (and the later ones) existed the hash was the SHA-256
    # of the sorted JSON.
    config = build_config("finetune", {}, {"seed": 4})
    old = config.to_dict()
    for section, names in LATER_FIELDS.items():
        for name in names:
            del old[section][name]
    blob = json.dumps(old, sort_keys=True, separators=(",", ":"))
    assert config.hash() == hashlib.sha256(blob.encode()).hexdigest()
    assert build_config("finetune", {}, {"seed": 4, "block_shuffle": 4}).hash() != config.hash()
    assert build_config("finetune", {}, {"seed": 4, "shuffle_seed": 1}).hash() != config.hash()


def test_batch_prep_shuffles_after_normalising_and_augmenting_in_training_and_evaluation():
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    common = dict(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25), device=torch.device("cpu"))
    shuffle = BlockShuffle(16, 4, seed=2)
    kwargs = dict(augment=True, flip=True, channels_last=False)
    plain, shuffled = BatchPrep(**common, **kwargs), BatchPrep(**common, **kwargs, shuffle=shuffle)
    seed = 11
    expected = shuffle_blocks(plain(images, torch.Generator().manual_seed(seed)), 4, shuffle.perm)
    assert torch.equal(shuffled(images, torch.Generator().manual_seed(seed)), expected)
    # Evaluation (no generator, no augmentation) uses the very same permutation.
    plain_eval = BatchPrep(**common, augment=False, flip=False, channels_last=True)
    shuffled_eval = BatchPrep(
        **common, augment=False, flip=False, channels_last=True, shuffle=shuffle
    )
    out = shuffled_eval(images)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, shuffle_blocks(plain_eval(images), 4, shuffle.perm))


def _final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final.safetensors"))


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("plain") / "run"
    engine.train(fast_config(), run, command="test")
    return run


def test_block_of_the_image_size_trains_bit_identically_to_no_shuffle(plain_run, tmp_path):
    result = engine.train(fast_config(block_shuffle=16), tmp_path / "intact", command="test")
    assert result.status == "completed"
    a, b = _final(plain_run), _final(tmp_path / "intact")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_shuffled_run_trains_and_records_its_option(plain_run, tmp_path):
    run = tmp_path / "b4"
    result = engine.train(fast_config(block_shuffle=4), run, command="test")
    assert result.status == "completed"
    assert 0.0 <= result.summary["test_acc"] <= 1.0
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["data"]["block_shuffle"] == 4
    assert record["config"]["data"]["shuffle_scheme"] == "fixed"
    a, b = _final(plain_run), _final(run)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the images did change


def test_a_run_with_the_random_scheme_is_reproducible(tmp_path):
    config = fast_config(block_shuffle=4, shuffle_scheme="random", epochs=1)
    engine.train(config, tmp_path / "a", command="test")
    engine.train(config, tmp_path / "b", command="test")
    a, b = _final(tmp_path / "a"), _final(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_source_fisher_sees_the_source_images_unshuffled(source_run, tmp_path):
    """The Fisher of l2sp_fisher is estimated on the source task; the target's block
    shuffle must not reach the source images, so it is the same with and without it."""
    common = dict(init=str(source_run), sp="l2sp_fisher", l2sp=0.1, fisher_batches=2,
                  epochs=1, image_size=32)
    engine.train(fast_config(**common), tmp_path / "plain", command="test")
    engine.train(fast_config(**common, block_shuffle=4), tmp_path / "shuffled", command="test")
    plain = load_file(str(tmp_path / "plain" / "fisher.safetensors"))
    shuffled = load_file(str(tmp_path / "shuffled" / "fisher.safetensors"))
    assert plain.keys() == shuffled.keys()
    assert all(torch.equal(plain[k], shuffled[k]) for k in plain)
