"""Structured model cards (#16 item 4): a separator describes itself, the model folder is written
from the built object and loaded from that description through the safe loader's allow-list.

Values are checked: the description equals the constructor call, a folder reloads the same
outputs (bit for bit on the CPU) for every card in hparams/models, and folders written the old way
(card text plus appended keys, e.g. the bundled GASS-mini) still load with the same outputs.
"""

import logging
import warnings
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references

from gass_modules.inference.separator import GASSSeparator
from gass_modules.lobes.base import Separator, SeparatorDescription
from gass_modules.lobes.bsrnn import BSRNN
from gass_modules.model_folder.folder import ModelCard, describe_separator, save_model_folder
from gass_modules.model_folder.pretrained import bundled_model_folder
from gass_modules.model_folder.safe_hparams import UntrustedCodeError, load_model_description
from tests.doubles import ScaledCopies

ROOT = Path(__file__).resolve().parents[2]
CARDS = sorted((ROOT / "hparams" / "models").glob("*.yaml"))


def outputs(separator: torch.nn.Module, length: int = 3000) -> torch.Tensor:
    """The separator's output for a fixed noise input (eval mode, no gradients)."""
    mix = torch.randn(2, length, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return separator.eval()(mix)


@pytest.mark.parametrize("card", [  # the paper-size music card (105 M parameters): ~8 s
    pytest.param(card, marks=pytest.mark.slow) if card.stem == "bs_roformer_music" else card
    for card in CARDS], ids=lambda p: p.stem)
def test_every_card_round_trips_from_the_object(tmp_path, card):
    """Build the card, save the folder from the object (no card text), load it safely: same
    description, same tensors, same outputs."""
    torch.manual_seed(0)
    model = load_hyperpyyaml(card.read_text())["separator"].eval()
    with torch.no_grad():  # "trained" weights: the folder must carry them, not a fresh init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    folder = save_model_folder(model, tmp_path / card.stem)
    text = (folder / "hyperparams.yaml").read_text()
    assert f"!new:{type(model).__module__}.{type(model).__name__}" in text
    loaded = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert loaded.mods.separator.describe() == model.describe()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.mods.separator.state_dict()[key], value), key
    torch.testing.assert_close(outputs(loaded.mods.separator), outputs(model), atol=0, rtol=0)


def test_description_records_the_constructor_call():
    model = BSRNN(num_sources=2, sample_rate=8000, n_fft=128, hop_length=32,
                  band_plan=((0, 1000), (1000, float("inf"))), feature_dim=8, hidden_dim=8,
                  num_blocks=1)
    assert model.describe() == SeparatorDescription(
        "gass_modules.lobes.bsrnn.BSRNN",
        {"num_sources": 2, "sample_rate": 8000, "n_fft": 128, "hop_length": 32,
         "band_plan": [[0, 1000], [1000, float("inf")]], "feature_dim": 8, "hidden_dim": 8,
         "num_blocks": 1, "mask_hidden_dim": None, "causal": False},
        # defaults included, tuples as lists
        8000, 2)
    # the recorded arguments are a copy: changing the description changes nothing recorded
    model.describe().arguments["num_blocks"] = 5
    assert model.describe().arguments["num_blocks"] == 1
    # a subclass records its own constructor, not the base class's
    assert ScaledCopies([1.0, 2.0], 16000).describe().arguments == {"gains": [1.0, 2.0],
                                                                   "sample_rate": 16000}
    # recording does not change how a wrong call fails
    with pytest.raises(TypeError, match="missing 2 required positional arguments"):
        ScaledCopies()


def test_the_written_card_is_data_for_both_loaders(tmp_path):
    """The dumped yaml loads with the safe loader and with SpeechBrain's full hyperpyyaml
    (trust_code=True), giving the same separator; ``inf`` band edges survive."""
    model = BSRNN(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
                  band_plan=[(0, 1000), (1000, float("inf"))], feature_dim=4, hidden_dim=4,
                  num_blocks=1)
    folder = save_model_folder(model, tmp_path / "m", order="fixed", chunk_seconds=3.0,
                               overlap=0.5)
    text = (folder / "hyperparams.yaml").read_text()
    safe = load_model_description(text)
    assert (safe["sample_rate"], safe["num_sources"], safe["order"],
            safe["chunk_seconds"], safe["chunk_overlap"]) == (8000, 2, "fixed", 3.0, 0.5)
    assert safe["separator"].describe() == model.describe()
    trusted = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"},
                                         trust_code=True)
    assert trusted.order == "fixed" and trusted.chunking() == (3.0, 0.5)
    assert trusted.mods.separator.describe() == model.describe()
    # SpeechBrain's interface runs the same weights (float32 rounding apart)
    torch.testing.assert_close(outputs(trusted.mods.separator), outputs(model), atol=1e-6,
                               rtol=1e-5)


# Each layout of a model folder: (how it records the order, the load hook's path, the order it
# means). Before #16 the hook lived in gass_modules.inference, from #16 to 1.x in
# gass_modules.model_folder, since 2.0 in gass_modules.model_folder.folder; before ``order`` the
# folder said ``fixed_order: true|false``. Old paths are spelled from OLD: a script that rewrites
# the package's import paths must not rewrite these records of the past.
OLD = "gass_modules"
LAYOUTS = {
    "before #16": ("fixed_order: false", f"{OLD}.inference.load_separator_checkpoint",
                   "aligned"),
    "after #16, before order": ("fixed_order: true",
                                f"{OLD}.model_folder.load_separator_checkpoint", "fixed"),
    "1.x, order, text card": ("order: aligned", f"{OLD}.model_folder.load_separator_checkpoint",
                              "aligned"),
    "2.0": ("order: fixed", "gass_modules.model_folder.folder.load_separator_checkpoint",
            "fixed"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_folders_written_the_old_way_still_load(tmp_path, layout):
    """The pre-#16 writer: the recipe's card text with references resolved, plus keys appended
    as text (anchors, a comment line), the output order as ``fixed_order:`` (before ``order``)
    or ``order:``, the load hook at its path of the time. Such a folder loads unchanged, with the
    same outputs; ``fixed_order`` with a warning naming how to re-save the folder."""
    order_key, hook, expected = LAYOUTS[layout]
    card = (ROOT / "hparams" / "models" / "bsrnn_small.yaml").read_text()
    old_keys = f"""
# ---- model folder keys, written by gass_modules.model_folder.folder.save_model_folder ----
chunk_seconds: 10.0
chunk_overlap: 0.25
{order_key}
modules:
    separator: !ref <separator>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        separator: !ref <separator>
    custom_hooks:
        separator: !name:{hook}
"""
    text = resolve_references(card.rstrip("\n") + "\n" + old_keys).getvalue()
    assert "&id001" in text  # the old format's shared node
    torch.manual_seed(0)  # the separator alone: the hook's old path need not import today
    model = load_hyperpyyaml(card)["separator"].eval()
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "hyperparams.yaml").write_text(text)
    torch.save(model.state_dict(), folder / "separator.ckpt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    notes = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert loaded.order == expected
    assert len(notes) == ("fixed_order" in order_key), notes
    assert all("written before gass 2.0.0" in n and "save_model_folder" in n for n in notes)
    torch.testing.assert_close(outputs(loaded.mods.separator), outputs(model), atol=0, rtol=0)
    # saving it again writes the structured card, which loads with the same outputs
    again = save_model_folder(loaded.mods.separator, tmp_path / "new", order=loaded.order)
    rewritten = (again / "hyperparams.yaml").read_text()
    assert "&id001" not in rewritten and "fixed_order" not in rewritten
    assert f"order: {expected}" in rewritten and f"{OLD}.inference" not in rewritten
    reloaded = GASSSeparator.from_hparams(source=again, run_opts={"device": "cpu"})
    torch.testing.assert_close(outputs(reloaded.mods.separator), outputs(model), atol=0, rtol=0)


def test_the_bundled_old_format_model_loads_and_rewrites_identically(tmp_path):
    """GASS-mini ships in the old format: it loads as before, and its structured card (written
    from the loaded object) gives bit-identical outputs."""
    folder = bundled_model_folder("gass-mini")
    assert "# ---- model folder keys" in (folder / "hyperparams.yaml").read_text()
    mini = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    model = mini.mods.separator
    assert model.describe().class_path == "gass_modules.lobes.tdanet.TDANetSTFT"
    again = GASSSeparator.from_hparams(source=save_model_folder(model, tmp_path / "m"),
                                       run_opts={"device": "cpu"})
    torch.testing.assert_close(outputs(again.mods.separator, 8000), outputs(model, 8000),
                               atol=0, rtol=0)


def test_a_moved_separator_class_loads_through_the_table_of_moves(tmp_path, monkeypatch):
    """A folder naming a separator class by a path it had in an earlier layout builds the class
    at its current path (``safe_hparams.FORMER_PATHS``, chains followed); an unknown path is
    still refused."""
    from gass_modules.model_folder import safe_hparams

    model = ScaledCopies([0.25, 0.75], 8000)
    folder = save_model_folder(model, tmp_path / "m")
    text = (folder / "hyperparams.yaml").read_text()
    monkeypatch.setattr(safe_hparams, "FORMER_PATHS", {
        **safe_hparams.FORMER_PATHS, "tests.oldest.ScaledCopies": "tests.older.ScaledCopies",
        "tests.older.ScaledCopies": "tests.doubles.ScaledCopies"})
    (folder / "hyperparams.yaml").write_text(text.replace("!new:tests.doubles.ScaledCopies",
                                                          "!new:tests.oldest.ScaledCopies"))
    loaded = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert type(loaded.mods.separator) is ScaledCopies
    assert loaded.mods.separator.gains.tolist() == [0.25, 0.75]
    (folder / "hyperparams.yaml").write_text(text.replace("!new:tests.doubles.ScaledCopies",
                                                          "!new:tests.nowhere.ScaledCopies"))
    with pytest.raises(UntrustedCodeError, match="tests.nowhere.ScaledCopies is not a regis"):
        GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    monkeypatch.setattr(safe_hparams, "FORMER_PATHS", {"a.B": "c.D", "c.D": "a.B"})
    with pytest.raises(ValueError, match="cycle"):
        safe_hparams.current_path("a.B")


def test_saving_leaves_the_random_state_alone(tmp_path):
    """Building the separator again (the check before writing) does not draw from torch's RNG,
    so a recipe's randomness after the export is the same with or without it."""
    model = ScaledCopies([0.5, 0.5], 8000)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    save_model_folder(model, tmp_path / "m")
    assert torch.equal(torch.rand(4), expected)


class _Gains(Separator):
    """A separator of this test module (not registered): ``g_s * x``."""

    def __init__(self, gains: list[float], sample_rate: int = 8000) -> None:
        super().__init__(len(gains), sample_rate, stride=1)
        self.gains = torch.nn.Parameter(torch.tensor(gains))

    def separate_padded(self, mix: torch.Tensor) -> torch.Tensor:
        return mix.unsqueeze(-1) * self.gains


class _Grows(_Gains):
    """Changes its architecture after construction: its recorded arguments build another."""

    def grow(self) -> "_Grows":
        self.extra = torch.nn.Linear(2, 2)
        return self


class _TakesATensor(_Gains):
    """Takes a tensor, which a model folder cannot record as data."""

    def __init__(self, gains: torch.Tensor) -> None:
        super().__init__(gains.tolist())


def test_what_cannot_be_described_fails_at_save_time(tmp_path, caplog):
    with pytest.raises(ValueError, match=r"\{'gains': 'Tensor'\} are not plain yaml data"):
        save_model_folder(_TakesATensor(torch.ones(2)), tmp_path / "a")
    with pytest.raises(ValueError, match="built again from the arguments it recorded does not "
                                         "match.*unexpected keys.*extra.*override describe"):
        save_model_folder(_Grows([1.0]).grow(), tmp_path / "b")

    class Local(_Gains):
        pass

    with pytest.raises(TypeError, match="defined inside a function"):
        save_model_folder(Local([1.0]), tmp_path / "c")
    linear = torch.nn.Linear(2, 2)
    linear.num_sources, linear.sample_rate = 2, 8000
    with pytest.raises(TypeError, match="cannot describe itself.*subclass"):
        save_model_folder(linear, tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")
    # an unregistered class is written, with a warning that loading needs register_separator
    with caplog.at_level(logging.WARNING, logger="gass_modules.model_folder.folder"):
        save_model_folder(_Gains([1.0]), tmp_path / "e")
    assert "register_separator" in caplog.text


def test_model_card_checks_its_values():
    description = describe_separator(ScaledCopies([1.0], 8000))
    with pytest.raises(ValueError, match="overlap"):
        ModelCard(description, chunk_overlap=0.9)
    with pytest.raises(ValueError, match="order must be one of"):
        ModelCard(description, order="yes")
    with pytest.raises(ValueError, match="overrides apply to a model card"):
        save_model_folder(ScaledCopies([1.0], 8000), "unused", overrides={"sample_rate": 8000})
