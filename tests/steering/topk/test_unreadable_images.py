"""Unreadable images in a top-k collection are skipped and counted; the rest is collected as if they were
absent, a resume reads on past them, and a source with none readable is one error before the model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from steering.topk import (
    EncoderSpec, FolderSource, RunningTopK, TopKConfig, TopKError, collect_shard, collect_topk, main,
)
from tests.steering.topk.hostile_images import BAD, clean_copy, write_hostile_folder

N_BAD = len(BAD) + 2  # and good_03_zz_bad.png, zz_last.gif
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # bad_big.png: refused


@pytest.fixture(scope="module")
def world(tiny_world):
    from steering.models import load_vlm
    from steering.sae import load_sae

    vlm, sae = load_vlm(tiny_world[0]), load_sae(tiny_world[1])
    return sae, EncoderSpec.from_vlm(vlm, sae)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(hostile folder, its good images alone)."""
    root = tmp_path_factory.mktemp("hostile")
    hostile = write_hostile_folder(root / "hostile")
    return hostile, clean_copy(hostile, root / "clean")


def by_name(result) -> dict[str, torch.Tensor]:
    """The top images of every latent by name (ids differ between the folders), with the statistics."""
    names = [[result.names[i] if i >= 0 else "" for i in row] for row in result.ids.tolist()]
    return {"names": names, "scores": result.scores, "maps": result.maps, "freq": result.image_frequency,
            "patch": result.patch_frequency, "max": result.max_activation}


def assert_same_collection(a, b) -> None:
    x, y = by_name(a), by_name(b)
    assert x["names"] == y["names"]
    for key in ("scores", "maps", "freq", "patch", "max"):
        assert torch.equal(x[key], y[key]), key


def test_unreadable_images_are_skipped_and_the_rest_collected(world, folders, tmp_path) -> None:
    sae, spec = world
    hostile, clean = folders
    cfg = TopKConfig(k=3, batch_size=3)
    result = collect_topk(spec, sae, FolderSource(hostile), tmp_path / "hostile", cfg, progress=False)
    expected = collect_topk(spec, sae, FolderSource(clean), tmp_path / "clean", cfg, progress=False)
    assert result.meta["n_images"] == 8 and result.meta["skipped"] == N_BAD
    assert_same_collection(result, expected)
    assert result.unreadable() == ("skipped 8 unreadable images (e.g. bad_big.png: too large (12000x10000 pixels); "
                                   "bad_bomb.png: too large (400000000 pixels); bad_empty.png: empty file; ...)")
    assert expected.unreadable() is None


def test_every_kind_of_unreadable_file_has_its_reason(folders) -> None:
    from steering.topk import UnreadableImage

    source = FolderSource(folders[0])
    for name, reason in BAD.items():
        with pytest.raises(UnreadableImage) as caught:
            source.load(source.names.index(name))
        assert caught.value.reason == reason and caught.value.name == name


def test_a_resume_reads_on_past_unreadable_images(world, folders, tmp_path) -> None:
    sae, spec = world
    cfg = TopKConfig(k=3, batch_size=3, checkpoint_every=1)
    source = FolderSource(folders[0])
    for stop in (1, 3):  # after a batch of unreadable images only, then after good ones too
        assert collect_topk(spec, sae, source, tmp_path / "cut", cfg, progress=False, max_batches=stop) is None
    resumed = collect_topk(spec, sae, source, tmp_path / "cut", cfg, progress=False)
    whole = collect_topk(spec, sae, source, tmp_path / "whole", cfg, progress=False)
    assert resumed.meta["skipped"] == whole.meta["skipped"] == N_BAD
    assert resumed.meta["skipped_examples"] == whole.meta["skipped_examples"]
    assert_same_collection(resumed, whole)


def test_shards_merge_to_one_pass_with_unreadable_images(world, folders) -> None:
    """As Ray actors collect them: the first shard holds unreadable images only."""
    sae, spec = world
    cfg = TopKConfig(k=3, batch_size=3)
    source = FolderSource(folders[0])
    one, _ = collect_shard(spec, sae, source, 0, len(source), cfg)
    merged, _ = collect_shard(spec, sae, source, 0, 6, cfg)
    assert merged.n_images == 0 and merged.skipped == list(range(6))
    for a, b in ((6, 12), (12, len(source))):
        merged.merge(RunningTopK.from_state_dict(collect_shard(spec, sae, source, a, b, cfg)[0].state_dict()))
    assert merged.skipped == one.skipped and merged.n_seen == len(source)
    for name, tensor in one.state_dict().items():
        assert torch.equal(merged.state_dict()[name], tensor), name


def test_no_readable_image_is_one_error(world, folders, tmp_path) -> None:
    sae, spec = world
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in BAD:
        (bad / name).write_bytes((folders[0] / name).read_bytes())
    source = FolderSource(bad)
    with pytest.raises(TopKError, match=r"none of the 6 images under .* can be read \(bad_big.png: too large"):
        source.check_readable()
    with pytest.raises(TopKError, match="none of the 6 images can be read"):
        collect_topk(spec, sae, source, tmp_path / "out", TopKConfig(k=3, batch_size=4), progress=False)


def test_cli_warns_once_and_refuses_what_it_cannot_use(tiny_world, folders, tmp_path, capsys) -> None:
    model = ["--model", str(tiny_world[0]), "--sae", str(tiny_world[1]), "--device", "cpu", "--quiet"]
    assert main(["--images", str(folders[0]), "--out", str(tmp_path / "a"), "--k", "2", *model]) == 0
    out = capsys.readouterr()
    assert "over 8 images" in out.out and "Traceback" not in out.err
    assert [line for line in out.err.splitlines() if "unreadable" in line] == [
        "warning: skipped 8 unreadable images (e.g. bad_big.png: too large (12000x10000 pixels); "
        "bad_bomb.png: too large (400000000 pixels); bad_empty.png: empty file; ...)"]
    a_file = folders[0] / "good_00.png"
    assert main(["--images", str(a_file), "--out", str(tmp_path / "b"), *model]) == 2
    assert capsys.readouterr().out.strip() == (f"error: --images {a_file} is a file, not a folder: pass the folder "
                                               "that holds the images (searched recursively)")
