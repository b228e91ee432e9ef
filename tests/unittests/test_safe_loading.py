"""Issue 17 item 3: model folders are loaded without running code from them by default."""

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gass_modules.inference.cli import main
from gass_modules.inference.separator import GASSSeparator
from gass_modules.lobes.base import Separator
from gass_modules.model_folder import safe_hparams
from gass_modules.model_folder.folder import save_model_folder
from gass_modules.model_folder.safe_hparams import (
    UntrustedCodeError,
    load_model_description,
    register_separator,
    registered_separators,
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
    # the load hook lived in gass_modules.inference.separator before issue 16; such folders stay
    # loadable
    path = folder / "hyperparams.yaml"
    text = path.read_text()
    assert "gass_modules.model_folder.folder.load_separator_checkpoint" in text
    old = "gass_modules"  # spelled apart: a script rewriting import paths must leave it alone
    path.write_text(text.replace("gass_modules.model_folder.folder.load_separator_checkpoint",
                                 f"{old}.inference.load_separator_checkpoint"))
    sep = GASSSeparator.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert sep.mods.separator.gains.tolist() == [0.25, 0.75]


def test_a_changed_pretrainer_hook_or_separator_class_is_refused(folder):
    path = folder / "hyperparams.yaml"
    text = path.read_text()
    path.write_text(text.replace("gass_modules.model_folder.folder.load_separator_checkpoint",
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


@contextlib.contextmanager
def restored_separator_registry():
    """Classes given to ``register_separator`` inside are forgotten on leaving: the allow-list
    is process-wide, and a class left registered by one test would let every later test load
    folders that must be refused (its dict is swapped for a copy, then put back)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(safe_hparams, "_registered", dict(safe_hparams._registered))
        yield


@pytest.fixture
def separator_registry():
    """A test may register separators: they are unregistered after it."""
    with restored_separator_registry():
        yield


def test_the_registry_fixture_restores_the_allow_list():
    before = registered_separators()
    with restored_separator_registry():
        register_separator(_Doubler)
        assert f"{_Doubler.__module__}._Doubler" in registered_separators()
    assert registered_separators() == before
    assert f"{_Doubler.__module__}._Doubler" not in registered_separators()


def test_registered_user_class_and_overrides_load_safely(tmp_path, separator_registry):
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


# ----------------------------------------------------------------------------- issue 27

GASS_MINI_CARD = (ROOT / "gass_modules" / "model_folder" / "pretrained" / "gass_mini"
                  / "hyperparams.yaml")


def billion_laughs(levels: int = 9) -> str:
    """The alias bomb: ``levels`` anchors of nine aliases to the previous one (9^levels values
    in a few hundred bytes)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly(folder):
    """Item 8: a 'billion laughs' hyperparams.yaml (9^9 values in ~500 bytes) is refused in
    well under a second, through the loader and the CLI (it hung in safe_hparams._check)."""
    import time

    bomb = billion_laughs()
    assert len(bomb) < 600
    start = time.perf_counter()
    with pytest.raises(ValueError, match="expands to more than 100000 values"):
        load_model_description(bomb)
    assert time.perf_counter() - start < 1.0
    text = (folder / "hyperparams.yaml").read_text()
    (folder / "hyperparams.yaml").write_text(text + bomb)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="billion laughs"):
        GASSSeparator.from_hparams(source=folder)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("text,message", [
    ("a: &a [1, *a]\n", "refers to itself"),
    ("a: &a {b: *a}\n", "refers to itself"),
    ("a: " + "[" * 100 + "]" * 100 + "\n", "nested too deeply"),
])
def test_self_referencing_and_deep_yaml_get_clear_errors(text, message):
    """Item 17: a self-referencing yaml (an alias inside its own anchor) or absurd nesting is a
    clear ValueError, not 'maximum recursion depth exceeded'."""
    with pytest.raises(ValueError, match=message):
        load_model_description(text)


def test_huge_dimensions_are_refused_before_building():
    """Item 11: dimensions that would allocate hundreds of GB (or overflow) are refused from a
    size estimate (a build on the meta device) with a message naming the class and the
    dimensions to check, not a raw allocator error."""
    card = GASS_MINI_CARD.read_text()
    for hidden in (200_000, 2_000_000_000):
        huge = card.replace("hidden_channels: 192", f"hidden_channels: {hidden}")
        with pytest.raises(ValueError, match=r"TDANetSTFT \(line 3\) would need .* for its "
                                             r"parameters alone.*check its dimensions"):
            load_model_description(huge)
    hparams = load_model_description(card)  # the real card still builds
    assert sum(p.numel() for p in hparams["separator"].parameters()) < 10_000_000


# ------------------------------------------------ item 18: loading through SpeechBrain's fetch


def serve(folder: Path):
    """An HTTP server on 127.0.0.1 serving ``folder`` (a thread); returns (server, base URL)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def hub_cache(cache: Path, repo: str, folder: Path) -> None:
    """A Hugging Face hub cache holding ``folder``'s files as ``repo`` at revision main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = cache / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("hyperparams.yaml", "separator.ckpt"):
        (snapshot / name).write_bytes((folder / name).read_bytes())


def test_from_hparams_fetches_like_speechbrain(folder, tmp_path):
    """Item 18: local folders, bundled names, URLs (a server on 127.0.0.1) and hub ids (a local
    hub cache, network off) all load through SpeechBrain's fetch; savedir is honoured (links
    or downloads land there); the safe loader still refuses code from a fetched folder."""
    from speechbrain.utils.fetching import FetchConfig

    x = torch.randn(1, 4000)
    expected = ScaledCopies([0.25, 0.75], 8000)(x)

    def check(sep):
        torch.testing.assert_close(sep.separate_batch(x), expected)

    saved = tmp_path / "saved_local"
    check(GASSSeparator.from_hparams(source=folder, savedir=saved))
    assert (saved / "hyperparams.yaml").is_symlink() and (saved / "separator.ckpt").exists()

    bundled = GASSSeparator.from_hparams(source="gass-mini", savedir=tmp_path / "saved_mini")
    assert bundled.num_sources == 4 and (tmp_path / "saved_mini" / "separator.ckpt").exists()

    server, url = serve(folder.parent)
    try:
        downloads = tmp_path / "saved_url"
        check(GASSSeparator.from_hparams(source=f"{url}/{folder.name}", savedir=downloads))
        assert not (downloads / "hyperparams.yaml").is_symlink()
        assert (downloads / "separator.ckpt").read_bytes() == (
            folder / "separator.ckpt").read_bytes()
        with pytest.raises(ValueError, match="pass savedir="):
            GASSSeparator.from_hparams(source=f"{url}/{folder.name}")
        # gass-separate -m URL downloads into $GASS_CACHE/models/<hash> (no savedir to pass)
        audio = tmp_path / "in.wav"
        import soundfile
        soundfile.write(audio, x[0].numpy(), 8000, subtype="FLOAT")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("GASS_CACHE", str(tmp_path / "cache"))
            assert main([str(audio), "-m", f"{url}/{folder.name}", "-o", str(tmp_path / "o")]) == 0
        assert len(list((tmp_path / "cache" / "models").glob("*/separator.ckpt"))) == 1
        with pytest.raises(FileNotFoundError, match="cannot fetch hyperparams.yaml"):
            GASSSeparator.from_hparams(source=f"{url}/missing", savedir=tmp_path / "nothing")
        marker = tmp_path / "PWNED"
        evil = tmp_path / "served" / "evil"
        evil.mkdir(parents=True)
        (evil / "separator.ckpt").write_bytes((folder / "separator.ckpt").read_bytes())
        (evil / "hyperparams.yaml").write_text((folder / "hyperparams.yaml").read_text()
                                               + f"pwned: !apply:os.system [touch {marker}]\n")
    finally:
        server.shutdown()
    server, url = serve(tmp_path / "served")
    try:
        with pytest.raises(UntrustedCodeError):
            GASSSeparator.from_hparams(source=f"{url}/evil", savedir=tmp_path / "saved_evil")
    finally:
        server.shutdown()
    assert not marker.exists()

    cache = tmp_path / "hub"
    hub_cache(cache, "someone/gass-test", folder)
    offline = FetchConfig(allow_network=False, huggingface_cache_dir=str(cache))
    check(GASSSeparator.from_hparams(source="someone/gass-test", fetch_config=offline))
    hub_saved = tmp_path / "saved_hub"
    check(GASSSeparator.from_hparams(source="someone/gass-test", fetch_config=offline,
                                     savedir=hub_saved))
    assert (hub_saved / "separator.ckpt").exists()
    with pytest.raises(FileNotFoundError, match="cannot fetch hyperparams.yaml from "
                                                "someone/other"):
        GASSSeparator.from_hparams(source="someone/other", fetch_config=offline)


def test_a_reference_to_no_key_is_a_value_error_naming_the_line():
    """A mistyped ``!ref <shparator>`` in a folder's yaml is refused as a ValueError naming the
    file's line and the reference (found by the fuzz test's byte flips), like every other bad
    card, not a KeyError."""
    card = GASS_MINI_CARD.read_text().replace("separator: *id001", "separator: !ref <shparator>")
    assert "<shparator>" in card
    with pytest.raises(ValueError, match=r"line \d+: !ref <shparator> names no key"):
        load_model_description(card)
