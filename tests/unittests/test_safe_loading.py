"""Issue 17 item 3: model folders are loaded without running code from them by default."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gass_modules.cli import main
from gass_modules.inference import GASSSeparator
from gass_modules.lobes.base import Separator
from gass_modules.model_folder import save_model_folder
from gass_modules.safe_hparams import (
    UntrustedCodeError,
    load_model_description,
    register_separator,
)
from tests.doubles import ScaledCopies

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path) -> Path:
    return save_model_folder(ScaledCopies([0.25, 0.75], 8000), tmp_path / "model")


def poison(folder: Path, marker: Path) -> None:
    """The issue's malicious folder: a key that runs a shell command when built."""
    text = (folder / "hyperparams.yaml").read_text()
    (folder / "hyperparams.yaml").write_text(text + f"pwned: !apply:os.system [touch {marker}]\n")


def test_malicious_folder_is_refused_and_nothing_runs(folder, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    poison(folder, marker)
    with pytest.raises(UntrustedCodeError, match=r"!apply:os.system.*trust_code=True.*"
                                                 r"--trust-model-code"):
        GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert main(["x.wav", "--model", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "--trust-model-code" in capsys.readouterr().err
    export = subprocess.run([sys.executable, str(ROOT / "tools" / "export.py"), str(folder),
                             "--out", str(tmp_path / "m.pt2")], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert export.returncode == 1 and "--trust-model-code" in export.stderr
    assert not marker.exists()
    # the opt-in is what it says: full hyperpyyaml, which runs the command
    sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"}, trust_code=True)
    assert marker.exists() and sep.mods.separator.gains.tolist() == [0.25, 0.75]


@pytest.mark.parametrize("yaml_text,what", [
    ("x: !name:os.system\n", "!name:os.system"),
    ("x: !module:os\n", "!module:os"),
    ("x: !new:subprocess.Popen [[touch, f]]\n", "!new:subprocess.Popen"),
    ("x: !!python/object/apply:os.system [touch f]\n", "python/object/apply:os.system"),
    ("x: !include:other.yaml\n", "!include:other.yaml"),
    ("a: 1\nx: !ref <a> + 1\n", "!ref <a> \\+ 1"),
    ("x: !copy <sample_rate>\n", "!copy"),
])
def test_other_code_paths_are_refused(folder, yaml_text, what):
    path = folder / "hyperparams.yaml"
    path.write_text(path.read_text() + yaml_text)
    with pytest.raises(UntrustedCodeError, match=f"(?s){what}.*--trust-model-code"):
        GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})


def test_folders_exported_before_the_module_split_still_load(folder):
    # the load hook lived in gass_modules.inference before issue 16; such folders stay loadable
    path = folder / "hyperparams.yaml"
    text = path.read_text()
    assert "gass_modules.model_folder.load_separator_checkpoint" in text
    path.write_text(text.replace("gass_modules.model_folder.load_separator_checkpoint",
                                 "gass_modules.inference.load_separator_checkpoint"))
    sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert sep.mods.separator.gains.tolist() == [0.25, 0.75]


def test_a_changed_pretrainer_hook_or_separator_class_is_refused(folder):
    path = folder / "hyperparams.yaml"
    text = path.read_text()
    path.write_text(text.replace("gass_modules.model_folder.load_separator_checkpoint",
                                 "os.system"))
    with pytest.raises(UntrustedCodeError, match="pretrainer.*--trust-model-code"):
        GASSSeparator.from_hparams(source=folder)
    path.write_text(text.replace("!new:tests.doubles.ScaledCopies",
                                 "!new:torch.nn.Linear"))
    with pytest.raises(UntrustedCodeError, match="torch.nn.Linear is not a registered"):
        GASSSeparator.from_hparams(source=folder)


class _Doubler(Separator):
    """A user's separator: output 0 is 2x, output 1 is 0."""

    def __init__(self, sample_rate: int, num_sources: int = 2) -> None:
        super().__init__(num_sources=num_sources, sample_rate=sample_rate, stride=1)
        self.scale = torch.nn.Parameter(torch.tensor([2.0, 0.0]))

    def separate_padded(self, mix):
        return mix.unsqueeze(-1) * self.scale


def test_registered_user_class_and_overrides_load_safely(tmp_path):
    folder = save_model_folder(_Doubler(8000), tmp_path / "m", chunk_seconds=3.0)
    with pytest.raises(UntrustedCodeError, match="_Doubler is not a registered"):
        GASSSeparator.from_hparams(source=folder)
    register_separator(_Doubler)
    sep = GASSSeparator.from_hparams(source=folder, overrides={"chunk_seconds": 2.0})
    assert sep.chunking() == (2.0, 0.25)
    assert sep.separate_batch(torch.ones(1, 4))[0, :, 0].tolist() == [2.0] * 4
    with pytest.raises(KeyError, match="no_such_key"):
        GASSSeparator.from_hparams(source=folder, overrides={"no_such_key": 1})


def test_every_shipped_card_is_on_the_allow_list():
    """The model cards build with the safe loader (the folders recipes export use them)."""
    for card in sorted((ROOT / "hparams" / "models").glob("*.yaml")):
        text = card.read_text().replace("num_blocks: 16", "num_blocks: 1")
        text = text.replace("num_blocks: 10", "num_blocks: 1")
        built = load_model_description(text, where=card.name)
        assert isinstance(built["separator"], Separator), card.name
        assert built["separator"].num_sources == built["num_sources"], card.name
