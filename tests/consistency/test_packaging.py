"""Packaging: gass installs as a plugin into an existing SpeechBrain environment (issue 29).

Fast checks (the source tree):

* ``install_requires`` holds compatible ranges, each with a floor and a ceiling, and the exact
  lock (``requirements.txt``, what ``make``/CI build) satisfies every declared range;
* every third-party module that ``gass_modules`` imports is declared (an optional one, imported
  through :func:`gass_modules.optional.import_optional`, in an extra), and every run-time
  requirement is imported somewhere: nothing the library does not use is forced on a user;
* the version has one source (``gass_modules.__version__``).

Slow checks, on one wheel and one sdist built per session (``python -m build``, module fixture):

* their metadata carry the ranges, the version, the licence and the entry points;
* the wheel holds the bundled models and every model card, byte for byte the repository's
  ``hparams/``, and is at most 40 MB;
* installed (offline, from the built wheel only) into a fresh venv overlaying an environment that
  satisfies the ranges, it installs gass_modules and nothing else, and ``pip check`` is clean;
* from that venv, outside the repository, a SpeechBrain-style yaml builds every card by
  ``!include:`` of the installed package's file, and the bundled model separates a file.
"""

from __future__ import annotations

import ast
import email
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import gass_modules
from gass_modules.model_folder import cards

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gass_modules"
MAX_WHEEL_BYTES = 40 * 1024 * 1024
LICENCE = "Apache-2.0"


def setup_literals() -> tuple[list[str], dict[str, list[str]]]:
    """``INSTALL_REQUIRES`` and ``EXTRAS_REQUIRE`` as written in setup.py (read, not run)."""
    found = {}
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("INSTALL_REQUIRES", "EXTRAS_REQUIRE"):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    return found["INSTALL_REQUIRES"], found["EXTRAS_REQUIRE"]


INSTALL_REQUIRES, EXTRAS_REQUIRE = setup_literals()


def lock() -> dict[str, str]:
    """requirements.txt as canonical name -> pinned version."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"requirements.txt is the exact lock; {line!r} is not"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


# ------------------------------------------------------------------------------- the ranges


@pytest.mark.parametrize("line", INSTALL_REQUIRES + sum(EXTRAS_REQUIRE.values(), []))
def test_each_requirement_is_a_range_the_lock_satisfies(line):
    """A floor and a ceiling (``>=`` and ``<``: the next major, or the next minor of a 0.x
    package), and the lock's pin inside them."""
    req = Requirement(line)
    operators = {spec.operator for spec in req.specifier}
    if req.name not in ("pytest", "pytest-timeout", "ruff", "build"):  # test tools: floors only
        assert operators == {">=", "<"}, f"{line!r}: want a range '>=oldest,<next major'"
    pinned = lock().get(canonicalize_name(req.name))
    if pinned is not None:
        assert req.specifier.contains(pinned, prereleases=True), (
            f"requirements.txt pins {req.name}=={pinned}, outside the declared {line!r}")


def test_the_run_time_requirements_are_what_the_library_imports():
    """Every third-party module imported by ``gass_modules`` is declared: at module level or in
    a function, in ``install_requires``; through ``import_optional``, in an extra. And every
    ``install_requires`` entry is imported somewhere, so nothing unused is forced on a user (the
    demo corpus's MIDI test tool, benchmarks' psutil and the lock's sentencepiece are not)."""
    direct, optional = set(), set()
    for file in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                direct.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                direct.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_optional"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                optional.add(node.args[0].value.split(".")[0])
    third_party = lambda names: {n for n in names  # noqa: E731
                                 if n not in sys.stdlib_module_names and n != "gass_modules"}
    owners = importlib.metadata.packages_distributions()

    def distributions(modules: set[str]) -> set[str]:
        missing = sorted(m for m in modules if m not in owners)
        assert not missing, f"imported but not installed here: {missing}"
        return {canonicalize_name(owners[m][0]) for m in modules}

    required = {canonicalize_name(Requirement(r).name) for r in INSTALL_REQUIRES}
    extras = {canonicalize_name(Requirement(r).name) for r in sum(EXTRAS_REQUIRE.values(), [])}
    used = distributions(third_party(direct))
    wanted = distributions(third_party(optional) - third_party(direct))
    assert used - required == set(), (
        f"imported by gass_modules, not in setup.py's INSTALL_REQUIRES: {sorted(used - required)}"
        " (add a range '>=oldest,<next major', or import it with optional.import_optional and "
        "declare it in an extra)")
    assert wanted - extras == set(), f"optional imports in no extra: {sorted(wanted - extras)}"
    assert required - used == set(), f"required but never imported: {sorted(required - used)}"


def test_version_has_one_source():
    """setup.py reads ``gass_modules.__version__`` (no second literal); the installed (editable)
    metadata agrees (the built wheel's is checked below)."""
    setup_py = (ROOT / "setup.py").read_text()
    assert "version=read_version()" in setup_py and gass_modules.__version__ not in setup_py
    assert importlib.metadata.version("gass_modules") == gass_modules.__version__


def test_cards_of_a_checkout_are_the_repository_hparams():
    """In a checkout (and an editable install) the cards are read from the repository's
    ``hparams/``: no second copy exists in the package folder."""
    assert cards.folder() == ROOT / "hparams"
    assert not (PACKAGE / "hparams").exists()
    assert cards.names() == sorted(p.stem for p in (ROOT / "hparams/models").glob("*.yaml"))
    with pytest.raises(ValueError, match="kind must be one of"):
        cards.names("recipes")
    with pytest.raises(ValueError, match="no model card named '../mixer/gass'"):
        cards.path("../mixer/gass")


# ------------------------------------------------------------- the wheel and the sdist (slow)


def pip_env() -> dict[str, str]:
    """An environment for pip that reads no configuration: no index, no extra find-links."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1")
    return env


def run(*command, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Runs a command and fails the test with its output when it fails."""
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, (f"{' '.join(map(str, command))} failed ({done.returncode}):\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """One sdist and one wheel built from it (``python -m build``, the build backend of this
    environment: offline, no isolation), once per test session."""
    src = tmp_path_factory.mktemp("src")  # a copy, so the build leaves nothing in the checkout
    for name in ("gass_modules", "hparams"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, src, cwd=src)
    (wheel,) = out.glob("gass_modules-*.whl")
    (sdist,) = out.glob("gass_modules-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist, "folder": out}


def stack_site() -> Path:
    """The site folder of the environment the library runs in (where torch is installed)."""
    return Path(importlib.metadata.distribution("torch").locate_file(""))


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory) -> dict:
    """A fresh venv overlaying that environment, the wheel installed into it (offline, from the
    built wheel alone), and the dry-run report that preceded the install."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .stdout.strip())
    (site / "gass_overlay.pth").write_text(f"import site; site.addsitedir({str(stack_site())!r})\n")
    pip = [sys.executable, "-m", "pip", "--python", python]
    report = venv / "report.json"
    run(*pip, "install", "--dry-run", "--quiet", "--report", report, "--find-links",
        dists["folder"], "gass_modules", env=pip_env())
    run(*pip, "install", "--quiet", "--find-links", dists["folder"], "gass_modules",
        env=pip_env())
    return {"python": python, "site": site, "pip": pip,
            "report": json.loads(report.read_text())}


def wheel_metadata(wheel: Path) -> email.message.Message:
    """The wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name))


@pytest.mark.slow
def test_wheel_and_sdist_metadata(dists):
    """Name, version (``gass_modules.__version__``), licence, the declared ranges and extras,
    and the ``gass-separate`` entry point, in the wheel; the sdist's PKG-INFO agrees."""
    meta = wheel_metadata(dists["wheel"])
    assert canonicalize_name(meta["Name"]) == "gass-modules"
    assert meta["Version"] == gass_modules.__version__
    assert meta["License"] == LICENCE and "LICENSE" in meta.get_all("License-File")
    expected = {str(Requirement(r)) for r in INSTALL_REQUIRES}
    for extra, reqs in EXTRAS_REQUIRE.items():
        expected |= {f'{Requirement(r)}; extra == "{extra}"' for r in reqs}
    assert {str(Requirement(r)) for r in meta.get_all("Requires-Dist")} == expected
    assert set(meta.get_all("Provides-Extra")) == set(EXTRAS_REQUIRE)
    with zipfile.ZipFile(dists["wheel"]) as zf:
        (entry,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        assert "gass-separate = gass_modules.inference.cli:main" in zf.read(entry).decode()
    with tarfile.open(dists["sdist"]) as tf:
        (info,) = [m for m in tf.getmembers() if m.name.count("/") == 1
                   and m.name.endswith("/PKG-INFO")]
        pkg_info = email.message_from_bytes(tf.extractfile(info).read())
    assert pkg_info["Version"] == gass_modules.__version__ and pkg_info["License"] == LICENCE


@pytest.mark.slow
def test_wheel_holds_the_models_and_cards_and_is_small(dists):
    """The bundled model folders and every card and mixer table, byte for byte the
    repository's ``hparams/`` (no second copy: the build maps it in); ≤ 40 MB; no tests,
    recipes or tools. The sdist carries ``hparams/`` and the licence, so it builds the same."""
    size = dists["wheel"].stat().st_size
    assert size <= MAX_WHEEL_BYTES, f"the wheel is {size / 2**20:.1f} MB, over 40 MB"
    with zipfile.ZipFile(dists["wheel"]) as zf:
        names = set(zf.namelist())
        for card in sorted((ROOT / "hparams").glob("*/*.yaml")):
            inside = f"gass_modules/hparams/{card.parent.name}/{card.name}"
            assert inside in names, f"{inside} missing from the wheel"
            assert zf.read(inside) == card.read_bytes()
        for model in (PACKAGE / "model_folder" / "pretrained").iterdir():
            if model.is_dir() and (model / "separator.ckpt").is_file():
                for part in ("hyperparams.yaml", "separator.ckpt", "PROVENANCE.md"):
                    assert zf.read(f"gass_modules/model_folder/pretrained/{model.name}/{part}") == (
                        model / part).read_bytes()
    assert not {n for n in names if n.split("/")[0] in ("tests", "recipes", "tools", "hparams")}
    with tarfile.open(dists["sdist"]) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"LICENSE", "setup.py", "hparams/models/tdanet_stft.yaml",
            "gass_modules/model_folder/pretrained/gass_mini/separator.ckpt"} <= members


@pytest.mark.slow
def test_installing_into_a_satisfying_environment_changes_nothing(installed):
    """``pip install --dry-run --report`` of the wheel into a venv overlaying an environment
    that satisfies the ranges would install gass_modules and nothing else (no torch, numpy or
    SpeechBrain replaced), the real install agrees, and ``pip check`` is clean."""
    planned = [(canonicalize_name(item["metadata"]["name"]), item["metadata"]["version"])
               for item in installed["report"]["install"]]
    assert planned == [("gass-modules", gass_modules.__version__)], planned
    done = run(*installed["pip"], "check", env=pip_env())
    assert "No broken requirements found" in done.stdout


@pytest.mark.slow
def test_installed_package_builds_every_card_by_include_outside_the_repository(installed,
                                                                              tmp_path):
    """From the installed wheel, with the working folder outside the repository: the cards
    and the bundled model come from site-packages; a SpeechBrain-style recipe yaml in a temp
    folder builds every card by ``!include:`` of ``cards.path(name)`` (with the recipe's own
    ``num_sources`` overriding the card's, as the repository's recipes do), ``python -m
    gass_modules.model_folder.cards`` prints the paths, and the bundled GASS-mini separates a
    file."""
    script = textwrap.dedent('''
        import json, sys, numpy as np, soundfile as sf, torch
        from hyperpyyaml import load_hyperpyyaml
        import gass_modules
        from gass_modules.model_folder import cards
        from gass_modules.inference.separator import GASSSeparator
        torch.set_num_threads(1)
        out = {"package": gass_modules.__file__, "folder": str(cards.folder()), "built": {}}
        for name in cards.names():
            recipe = (f"num_spks: 2\\n"
                      f"model: !include:{cards.path(name)}\\n"
                      f"    num_sources: !ref <num_spks>\\n"
                      f"modules:\\n    separator: !ref <model[separator]>\\n")
            with open(f"{name}_train.yaml", "w") as f:
                f.write(recipe)
            with open(f"{name}_train.yaml") as f:
                hparams = load_hyperpyyaml(f)
            sep = hparams["modules"]["separator"]
            out["built"][name] = [type(sep).__name__, sep.num_sources]
        sf.write("mix.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
        est = GASSSeparator.from_hparams(source="gass-mini").separate_file("mix.wav")
        out["separated"] = list(est.shape)
        print(json.dumps(out))
    ''')
    done = run(installed["python"], "-c", script, cwd=tmp_path,
               env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""})
    out = json.loads(done.stdout.strip().splitlines()[-1])
    site = installed["site"]
    assert Path(out["package"]).parent == site / "gass_modules"
    assert Path(out["folder"]) == site / "gass_modules" / "hparams"
    assert sorted(out["built"]) == cards.names()
    assert all(value[1] == 2 for value in out["built"].values()), out["built"]
    assert out["separated"] == [1, 8000, 4]
    listed = run(installed["python"], "-m", "gass_modules.model_folder.cards",
                 cwd=tmp_path).stdout.split()
    assert listed == [str(site / "gass_modules/hparams/models" / f"{n}.yaml")
                      for n in cards.names()]
