"""Every top-level key of every yaml under hparams/ and recipes/ is used.

As SpeechBrain's ``check_yaml``: a key counts as used when another key of the same file refers to
it (``!ref <key>``, ``<key[...]>``, ``<key.attr>``), or when the Python that consumes the file reads
it (``hparams["key"]``, ``hparams.key``, ``self.hparams.key``, ``"key"`` for the mixer's tables).
Model cards are consumed through the contract keys (docs/architecture.md), which recipes include.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
YAMLS = sorted(
    p for d in ("hparams", "recipes") for p in (ROOT / d).rglob("*.yaml") if ".venv" not in p.parts
)
CARD_CONTRACT = {"sample_rate", "num_sources", "separator"}
TOP_KEY = re.compile(r"^([A-Za-z_][\w]*)\s*:", re.MULTILINE)


def top_level_keys(text: str) -> list[str]:
    """Top-level mapping keys of a hyperpyyaml text (no parsing: tags need not resolve)."""
    return TOP_KEY.findall(text)


def consumers(path: Path, root: Path = ROOT) -> list[Path]:
    """The Python files that read the yaml at ``path``."""
    rel = path.relative_to(root)
    package = sorted((root / "gass_modules").rglob("*.py"))
    if rel.parts[0] == "recipes":
        # recipes/<Benchmark>/<task>/hparams/x.yaml -> recipes/<Benchmark>/<task>/*.py
        task_dir = path.parent.parent if path.parent.name == "hparams" else path.parent
        return sorted(task_dir.glob("*.py")) + package
    return package + sorted((root / "tools").rglob("*.py"))


def unused_keys(path: Path, root: Path = ROOT) -> list[str]:
    """Top-level keys of ``path`` that nothing reads."""
    text = path.read_text()
    rel = path.relative_to(root)
    code = "\n".join(p.read_text() for p in consumers(path, root))
    unused = []
    for key in top_level_keys(text):
        if rel.parts[:2] == ("hparams", "models") and key in CARD_CONTRACT:
            continue
        in_yaml = re.search(rf"<{key}(?:[>\[.])", text)
        in_code = re.search(rf"""(?:\.{key}\b|["']{key}["'])""", code)
        if not (in_yaml or in_code):
            unused.append(key)
    return unused


def unused_key_report(paths: list[Path], root: Path = ROOT) -> list[str]:
    """One line per yaml of ``paths`` that has unused keys, naming them."""
    return [f"{path.relative_to(root)}: {keys}" for path in paths
            if (keys := unused_keys(path, root))]


def test_every_key_is_used():
    """No dead hyperparameters: each top-level key is referenced or read (the failure lists
    every yaml with unused keys)."""
    report = unused_key_report(YAMLS)
    assert not report, "unused keys (use or remove them):\n" + "\n".join(report)


def test_checker_flags_unused(tmp_path):
    """The checker catches an unused key and accepts a referenced or code-read one."""
    (tmp_path / "hparams" / "models").mkdir(parents=True)
    (tmp_path / "recipes" / "X" / "separation" / "hparams").mkdir(parents=True)
    card = tmp_path / "hparams" / "models" / "probe.yaml"
    card.write_text("width: 8\nseparator: !new:torch.nn.Linear\n  in_features: !ref <width>\n"
                    "  out_features: 4\nforgotten: 3\n")
    assert unused_keys(card, tmp_path) == ["forgotten"]
    recipe = tmp_path / "recipes" / "X" / "separation" / "hparams" / "r.yaml"
    recipe.write_text("lr: 0.1\nepochs: 2\n")
    (recipe.parent.parent / "train.py").write_text("print(hparams['lr'])\n")
    assert unused_keys(recipe, tmp_path) == ["epochs"]
    assert unused_key_report([card, recipe], tmp_path) == [
        "hparams/models/probe.yaml: ['forgotten']",
        "recipes/X/separation/hparams/r.yaml: ['epochs']"]


def test_cards_define_the_contract():
    """Every model card defines sample_rate, num_sources and separator (docs/architecture.md)."""
    for card in sorted((ROOT / "hparams" / "models").glob("*.yaml")):
        keys = set(top_level_keys(card.read_text()))
        assert CARD_CONTRACT <= keys, f"{card.name} lacks {CARD_CONTRACT - keys}"
