"""Bounded disk use and manifests: fp32 folders beyond keep_full_weights go, the active one and GGUFs stay."""

import json

from loop import artifacts
from store.db import session
from store.tables import Generation
from tests.helpers import add_generation, make_workspace


def test_prune_keeps_the_newest_and_the_active(tmp_path):
    cfg = make_workspace(tmp_path, model={"keep_full_weights": 2})
    for gen in range(5):
        folder = artifacts.weights_dir(cfg, gen)
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"w")
        gguf = artifacts.gguf_path(cfg, gen)
        gguf.write_bytes(b"g")
        add_generation(cfg, gen, gen - 1 if gen else None, "promoted" if gen == 1 else "rejected",
                       weights_path=str(folder), gguf_path=str(gguf))
    with session(cfg.db_url) as s:
        doomed = artifacts.prune_weights(cfg, s)
    assert sorted(doomed) == [artifacts.weights_dir(cfg, 0), artifacts.weights_dir(cfg, 2)]
    assert all(folder.exists() for folder in doomed), "nothing is deleted before the store stops naming it"
    artifacts.delete_folders(doomed)
    kept = {g for g in range(5) if artifacts.weights_dir(cfg, g).exists()}
    assert kept == {1, 3, 4}
    assert all(artifacts.gguf_path(cfg, g).exists() for g in range(5))
    with session(cfg.db_url) as s:
        assert s.get(Generation, 2).weights_path is None and s.get(Generation, 1).weights_path


def test_manifest_hashes_every_file(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "dataset.jsonl").write_text("{}\n")
    (tmp_path / "model.f16.gguf").write_bytes(b"x")
    path = artifacts.write_manifest(tmp_path, {"train": {"steps": 3}}, gen=1)
    m = json.loads(path.read_text())
    assert m["gen"] == 1 and m["config"]["train"]["steps"] == 3
    assert set(m["files"]) == {"job/dataset.jsonl", "model.f16.gguf"}
    assert m["files"]["model.f16.gguf"] == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
