"""Installs ``gass_modules``: General Audio Source Separation for SpeechBrain."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements() -> list[str]:
    """Reads the pinned stack from requirements.txt (comments and blank lines skipped).

    Returns
    -------
    list of str
        The requirement specifiers.
    """
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


setup(
    name="gass_modules",
    version="0.1.0",
    description="General Audio Source Separation (GASS) as a SpeechBrain plugin toolkit",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["gass_modules", "gass_modules.*"]),
    # the bundled GASS-mini model folder (gass_modules/pretrained/gass_mini, about 2 MB)
    package_data={"gass_modules.pretrained": ["*/hyperparams.yaml", "*/separator.ckpt",
                                              "*/PROVENANCE.md"]},
    install_requires=read_requirements(),
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6"],
    },
    entry_points={"console_scripts": ["gass-separate=gass_modules.cli:main"]},
)
