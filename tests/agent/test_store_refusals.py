"""Only runs create stores, and a store of another world is refused in words (issue 31, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.session import open_store
from agent.store.store import Store, StoreError, is_store
from agent.world import ChoiceError, WorldSpec

HELD = {"model": "/home/ann/models/toy/model", "revision": "local-b7d516984aab", "sae": "planted/seed-3",
        "sae_revision": "local-6099b8a3adaa", "layer": 3}


def test_a_folder_that_is_not_a_store_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no store at .*typo: check the path"):
        Store(tmp_path / "typo", create=False)
    assert not (tmp_path / "typo").exists()
    parent = tmp_path / "parent"
    parent.mkdir()
    with pytest.raises(StoreError) as caught:
        Store(parent, create=False)
    assert "is not a store (it has no main/cache.db)" in str(caught.value) and "\n" not in str(caught.value)
    assert list(parent.iterdir()) == []
    with Store(tmp_path / "made"):  # a run creates one
        pass
    assert is_store(tmp_path / "made") and not is_store(parent)
    with Store(tmp_path / "made", create=False) as again:
        assert again.id and again.id == Store(tmp_path / "made").id


def test_open_store_for_reading_refuses_a_folder_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "parent").mkdir()
    with pytest.raises(ChoiceError, match="is not a store") as caught:
        open_store(tmp_path / "parent", WorldSpec(), existing=True)
    assert caught.value.field == "store" and list((tmp_path / "parent").iterdir()) == []


def test_the_refusal_names_the_world_in_words_and_the_hashes_last(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as store:
        store.bind_world(HELD)
        with pytest.raises(StoreError) as caught:
            store.bind_world(HELD | {"sae": "planted/seed-4", "sae_revision": "local-0f2a00000000"})
        line = str(caught.value)
        assert "holds records of model 'toy/model', SAE 'planted/seed-3', layer 3, not of SAE 'planted/seed-4'" in line
        assert line.endswith("pass another --store (sae_revision='local-6099b8a3adaa', not 'local-0f2a00000000')")
        with pytest.raises(StoreError) as caught:  # retrained in place: the same name, other files
            store.check_world(HELD | {"sae_revision": "local-111111111111"})
        assert "not of SAE 'planted/seed-3' as its files are now" in str(caught.value)
        assert str(caught.value).index("local-") > str(caught.value).index("pass another --store")


def test_a_store_of_another_world_is_refused_when_a_model_is_named(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as store:
        store.bind_world({"model": "org/other", "revision": None, "sae": "org/sae", "sae_revision": None, "layer": 1})
    with pytest.raises(ChoiceError, match="holds records of model 'org/other', SAE 'org/sae', layer 1, "
                                          "not of model 'org/model'") as caught:
        open_store(tmp_path / "s", WorldSpec(model="org/model", sae="org/sae"), existing=True, match=True)
    assert caught.value.field == "store"
    # naming no model takes the store's world; naming the same one is fine
    open_store(tmp_path / "s", WorldSpec(), existing=True, match=True).close()
    open_store(tmp_path / "s", WorldSpec(model="org/other", sae="org/sae"), existing=True, match=True).close()
