"""Issues 24 and 29: bundling a trained run as a named model (tools/bundle_model.py), its
provenance free of machine paths, ``from_hparams(source="gass-base")`` and the CLI's default."""

import json
from pathlib import Path

import pytest
import torch

from gass_modules.inference.separator import GASSSeparator
from gass_modules.lobes.tdanet import TDANetSTFT
from gass_modules.model_folder import pretrained
from gass_modules.model_folder.folder import save_model_folder
from tests.conftest import load_tool

ROOT = Path(__file__).resolve().parents[2]
bundle_model = load_tool("bundle_model")


@pytest.mark.parametrize("folder", sorted(p.parent for p in
                                          (ROOT / "gass_modules" / "model_folder"
                                           / "pretrained").glob("*/PROVENANCE.md")),
                         ids=lambda p: p.name)
def test_bundled_provenance_names_no_machine_path(folder):
    """Every bundled model's PROVENANCE.md names the recipe and the corpus key, no machine path."""
    text = (folder / "PROVENANCE.md").read_text()
    assert bundle_model.absolute_paths(text) == []
    assert "recipes/GASS/separation/hparams/" in text and "content key" in text


def test_absolute_path_finder_on_known_text():
    text = ("run `/work/runs/x` and /tmp; not 28/80, 3.85 / 3.09, over/under-sep., ~/.cache/g, "
            "https://arxiv.org/abs/2310.00140, 0.1 s/update, ./recipes/GASS")
    assert bundle_model.absolute_paths(text) == ["/work/runs/x", "/tmp"]


def _tiny_run(tmp_path: Path, updates: int = 7) -> Path:
    """A finished run of a tiny 16-kHz TDANet-STFT: model/, eval/, hyperparams.yaml and a corpus
    folder with corpus.json (not shipped: all under tmp_path)."""
    torch.manual_seed(0)
    separator = TDANetSTFT(num_sources=4, sample_rate=16000, n_fft=64, hop_length=16,
                           bottleneck_channels=8, hidden_channels=16, depth=2, num_blocks=1,
                           num_heads=2, features="mag", mask_type="magnitude",
                           mask_activation="sigmoid")
    run = tmp_path / "gass_base_run"
    save_model_folder(separator, run / "model")
    (run / "eval").mkdir()
    (run / "eval" / "headline.json").write_text(json.dumps(
        {"updates": updates, "parameters": sum(p.numel() for p in separator.parameters())}))
    (run / "eval" / "summary.md").write_text("| sources | SI-SNRi model |\n| 2 | 1.00 |\n")
    corpus = tmp_path / "full-16000"
    corpus.mkdir()
    (corpus / "corpus.json").write_text(json.dumps(
        {"key": "abc123", "subset": "full", "sample_rate": 16000, "minutes": 381.2}))
    (run / "hyperparams.yaml").write_text(f"data_folder: {corpus}\nseed: 1\n")
    return run


def test_bundles_a_run_end_to_end_with_portable_provenance(tmp_path, monkeypatch):
    run = _tiny_run(tmp_path, updates=0)  # evaluated apart from its training: headline says 0
    dest = tmp_path / "pretrained" / "gass_base"
    command = (f"cd {ROOT}/recipes/GASS/separation && python train.py hparams/gass_base.yaml "
               "--data_folder=~/.cache/gass/demo_corpus/full-16000")
    with pytest.raises(ValueError, match="pass the run's update count"):
        bundle_model.bundle("gass-base", run, command, dest)
    assert not dest.exists()  # nothing half-written
    assert bundle_model.main(["gass-base", str(run), "--command", command, "--dest", str(dest),
                              "--device", "NVIDIA H100 (lent), 4.0 min", "--updates",
                              "1500"]) == 0
    text = (dest / "PROVENANCE.md").read_text()
    assert bundle_model.absolute_paths(text) == []
    assert text.startswith("# GASS-base: provenance")
    assert "cd ./recipes/GASS/separation && python train.py hparams/gass_base.yaml" in text
    assert "content key `abc123`" in text and "16000 Hz" in text and "1500 updates" in text
    assert "NVIDIA H100" in text and "recipes/GASS/separation/hparams/gass_base.yaml" in text
    # the bundled folder loads by name once it is in the package's folder
    monkeypatch.setattr(pretrained, "ROOT", tmp_path / "pretrained")
    assert pretrained.bundled_models_present()[0] == "gass-base"
    assert pretrained.default_model() == "gass-base"
    model = GASSSeparator.from_hparams(source="gass-base", run_opts={"device": "cpu"})
    original = GASSSeparator.from_hparams(source=run / "model", run_opts={"device": "cpu"})
    mix = torch.randn(1, 16000)
    assert model.sample_rate == 16000
    assert torch.equal(model.separate_batch(mix), original.separate_batch(mix))
    # the CLI's default (no --model) is the best bundled folder; --model gass-mini the small one
    assert pretrained.choose_model(None)[0] == str(tmp_path / "pretrained" / "gass_base")
    assert pretrained.choose_model("gass-mini") == ("gass-mini", None)


def test_gass_base_missing_names_the_bundling_command(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "ROOT", tmp_path)  # an install without gass_base
    (tmp_path / "gass_mini").mkdir()
    (tmp_path / "gass_mini" / "separator.ckpt").write_bytes(b"")
    assert pretrained.default_model() == "gass-mini"
    assert pretrained.choose_model(None)[0] == str(tmp_path / "gass_mini")
    with pytest.raises(FileNotFoundError, match="tools/bundle_model.py gass-base RUN_FOLDER"):
        GASSSeparator.from_hparams(source="gass-base")


def test_streaming_defaults_to_the_bundled_causal_model(tmp_path, monkeypatch, capsys):
    """``gass-separate --stream`` without ``--model`` takes the best causal bundled model, never
    a non-causal one (which cannot stream); without one in the install it says how it gets
    there; without ``--stream`` the causal one is never the default."""
    from gass_modules.inference import cli

    monkeypatch.setattr(pretrained, "ROOT", tmp_path)
    for folder in ("gass_mini", "gass_mini_causal"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "separator.ckpt").write_bytes(b"")
    assert pretrained.default_model() == "gass-mini"
    assert pretrained.default_model(causal=True) == "gass-mini-causal"
    assert pretrained.choose_model(None, causal=True)[0] == str(tmp_path / "gass_mini_causal")
    (tmp_path / "gass_mini_causal" / "separator.ckpt").unlink()  # an install without it
    assert pretrained.default_model(causal=True) == "gass-mini-causal"
    with pytest.raises(FileNotFoundError, match="bundle_model.py gass-mini-causal"):
        pretrained.choose_model(None, causal=True)
    assert cli.main(["a.wav", "--stream", "--out", str(tmp_path / "out")]) == 2
    assert "gass_mini_causal.yaml" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_refuses_machine_paths_and_oversized_or_unfinished_runs(tmp_path, monkeypatch):
    run = _tiny_run(tmp_path)
    dest = tmp_path / "out"
    with pytest.raises(ValueError, match="paths of this machine: \\['/opt/x/train.py'\\]"):
        bundle_model.bundle("gass-base", run, "python /opt/x/train.py", dest)
    with pytest.raises(ValueError, match="missing \\['eval/summary.md'\\]"):
        (run / "eval" / "summary.md").unlink()
        bundle_model.bundle("gass-base", run, "python train.py", dest)
    run = _tiny_run(tmp_path / "again")
    monkeypatch.setitem(bundle_model.MODELS, "gass-base", ("GASS-base", 1000, "r.yaml"))
    with pytest.raises(ValueError, match="more than the 0 MB gass-base may"):
        bundle_model.bundle("gass-base", run, "python train.py", dest)
    assert not dest.exists()
    assert bundle_model.main(["gass-base", str(tmp_path / "nope"), "--command", "x"]) == 1


def test_gass_mini_wrapper_keeps_its_command(tmp_path):
    """tools/bundle_gass_mini.py RUN --command ... still bundles as gass-mini."""
    wrapper = load_tool("bundle_gass_mini")
    run = _tiny_run(tmp_path)
    dest = tmp_path / "gass_mini"
    assert wrapper.main([str(run), "--command", "python train.py hparams/gass_mini.yaml",
                         "--dest", str(dest)]) == 0
    assert (dest / "PROVENANCE.md").read_text().startswith("# GASS-mini: provenance")
    assert {p.name for p in dest.iterdir()} == {"hyperparams.yaml", "separator.ckpt",
                                                "PROVENANCE.md"}


def test_bundling_never_replaces_files_it_did_not_write(tmp_path, capsys):
    """#27, third probe: ``--dest`` as the run's own model folder gave a SameFileError
    traceback, a file a FileExistsError traceback, and a user's folder lost its
    ``hyperparams.yaml``; each is refused with status 1 and nothing is written."""
    run = _tiny_run(tmp_path, updates=10)
    user = tmp_path / "user"
    user.mkdir()
    (user / "hyperparams.yaml").write_text("mine")
    (tmp_path / "file").write_text("x")
    command = "python train.py hparams/gass_base.yaml"
    for dest, why in ((run / "model", "the run's own model folder"), (tmp_path / "file",
                      "is a file"), (user, "holds files that no bundling wrote")):
        assert bundle_model.main(["gass-base", str(run), "--command", command, "--dest",
                                  str(dest)]) == 1
        assert why in capsys.readouterr().err
    assert (user / "hyperparams.yaml").read_text() == "mine"
    assert sorted(p.name for p in user.iterdir()) == ["hyperparams.yaml"]
