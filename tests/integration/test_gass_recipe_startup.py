"""Issue 17 item 7: the GASS recipe validates its manifests before building anything."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gass_modules.dataio.manifest import Manifest
from gass_modules.training.gass_recipe import ManifestError, check_manifests

ROOT = Path(__file__).resolve().parents[2]
GASS = ROOT / "recipes" / "GASS" / "separation"
HPARAMS = str(GASS / "hparams" / "tdanet_wav.yaml")


@pytest.mark.parametrize("data_folder", [None, "missing", "empty"])
def test_missing_or_empty_data_folder_is_a_message_not_a_traceback(tmp_path, data_folder):
    argv = [sys.executable, str(GASS / "train.py"), HPARAMS, f"--output_folder={tmp_path / 'o'}"]
    if data_folder == "empty":
        (tmp_path / "empty").mkdir()
    if data_folder:
        argv.append(f"--data_folder={tmp_path / data_folder}")
    proc = subprocess.run(argv, cwd=GASS, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "--data_folder" in proc.stderr and "make_manifest" in proc.stderr
    if data_folder == "empty":
        assert "train: expected the manifest at" in proc.stderr


def test_every_bad_row_is_reported_before_training(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, 0.1 * np.ones(8000, np.float32), 8000)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    rows = [("ok", good, 8000), ("gone", tmp_path / "gone.wav", 8000),
            ("empty", tmp_path / "empty.wav", 10), ("corrupt", tmp_path / "corrupt.wav", 10),
            ("long", good, 9000)]
    manifest = Manifest([r[0] for r in rows], [str(r[1]) for r in rows], [r[2] for r in rows],
                        [8000] * 5, [1] * 5, ["speech"] * 5, ["g"] * 5)
    for split in ("train", "valid", "test"):
        manifest.to_csv(tmp_path / f"{split}.csv")
    with pytest.raises(ManifestError) as caught:
        check_manifests([HPARAMS, f"--data_folder={tmp_path}"], workers=2)
    message = str(caught.value)
    assert message.count("row 'gone'") == 3 and "missing: no such file" in message
    assert "row 'empty'" in message and "row 'corrupt'" in message
    assert "frames past the end: the manifest says 9000 frames, the file holds 8000" in message
    assert "row 'ok'" not in message
    assert message.startswith("12 problem(s)")


def tiny_recipe(folder: Path) -> Path:
    """A recipe yaml with an output folder and an included card (what load_recipe needs)."""
    (folder / "card.yaml").write_text("sample_rate: 8000\nnum_sources: 2\n")
    (folder / "train.yaml").write_text(f"output_folder: {folder / 'exp'}\nlr: 0.1\n"
                                       "model: !include:card.yaml\n")
    return folder / "train.yaml"


def test_second_training_into_one_output_folder_is_refused(tmp_path):
    """Issue 27 item 4: while a training holds its output folder, a second one into the same
    folder is refused with a clear message (it used to crash one run and resume the other from
    the first one's checkpoint); the lock goes with the holder, even killed."""
    from gass_modules.training.recipe import load_recipe

    recipe = tiny_recipe(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from gass_modules.training.recipe import load_recipe\n"
         f"load_recipe([{str(recipe)!r}])\nprint('locked', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        lines = iter(holder.stdout.readline, "")
        assert any(line.strip() == "locked" for line in lines)  # after SpeechBrain's log lines
        with pytest.raises(RuntimeError, match="another training is running in .*exp.*another "
                                               "output_folder"):
            load_recipe([str(recipe)])
    finally:
        holder.kill()
        holder.wait()
    hparams, _, _ = load_recipe([str(recipe)])  # the holder is gone: the folder is free
    assert Path(hparams["output_folder"]) == tmp_path / "exp"
    load_recipe([str(recipe)])  # this process may run a second recipe into it


def test_an_option_given_twice_is_a_usage_error(tmp_path, capsys):
    """Issue 27 item 17: --lr 1 --lr 2 is a usage error naming the option, not ruamel's
    duplicate-key traceback."""
    from gass_modules.training.recipe import load_recipe

    recipe = tiny_recipe(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        load_recipe([str(recipe), "--lr", "1", "--lr=2"])
    assert exit_info.value.code == 2
    assert "--lr given more than once" in capsys.readouterr().err


def test_a_model_folder_is_never_an_output_folder(tmp_path):
    """#27, third probe: ``--output_folder=<a model folder>`` (e.g. the one given as
    ``--pretrained_path``) had SpeechBrain write the recipe over the folder's
    ``hyperparams.yaml``: the model folder no longer loaded. Refused, nothing written."""
    from gass_modules.model_folder.folder import save_model_folder
    from gass_modules.training.recipe import load_recipe
    from tests.doubles import ScaledCopies

    recipe = tiny_recipe(tmp_path)
    model = save_model_folder(ScaledCopies([0.5, 0.5], 8000), tmp_path / "model")
    card = (model / "hyperparams.yaml").read_bytes()
    with pytest.raises(RuntimeError, match="is a model folder .*another output_folder"):
        load_recipe([str(recipe), f"--output_folder={model}"])
    assert (model / "hyperparams.yaml").read_bytes() == card
    assert sorted(p.name for p in model.iterdir()) == ["hyperparams.yaml", "separator.ckpt"]
