"""What differs between the oldest declared versions (SpeechBrain 1.0.3, torch 2.6) and the lock.

Part of the compatibility subset (``make compat``, tests/conftest.py): run on both lines.

* ``export_separator`` is refused on a torch older than the one its export is tested with, with
  a message naming the version (torch 2.6 cannot trace the STFT encoders or the BLSTM);
* the fetch options keep SpeechBrain local on both lines (1.1's ``FetchConfig``, 1.0's none);
* a model folder loads with the trusted loader (``from_hparams(trust_code=True)``, SpeechBrain's
  own ``Pretrained.from_hparams``), and a checkpoint transfers through SpeechBrain's
  ``Pretrainer`` twice into one ``collect_in`` (the second call replaces the link).
"""

import sys

import pytest
import speechbrain
import torch

from gass_modules.inference.separator import GASSSeparator
from gass_modules.lobes.base import EXPORT_MIN_TORCH, export_separator
from gass_modules.lobes.tdanet import TDANetSTFT
from gass_modules.model_folder.folder import save_model_folder
from gass_modules.optional import fetch_options
from gass_modules.training.transfer import transfer_from_checkpoint
from tests.doubles import ScaledCopies


@pytest.mark.skipif(torch.__version__ >= EXPORT_MIN_TORCH,
                    reason="export works here (tests/unittests/test_separator_contract.py)")
def test_export_is_refused_on_old_torch():
    """Old torch: a RuntimeError that names the needed torch, not a tracer error."""
    with pytest.raises(RuntimeError, match=f"needs torch>={EXPORT_MIN_TORCH}.*eager separation"):
        export_separator(ScaledCopies([1.0, 0.5], 8000))


def test_fetch_options_keep_speechbrain_local():
    """SpeechBrain 1.1: ``FetchConfig(allow_network=False)``; 1.0: no option (a local folder is
    read in place there)."""
    options = fetch_options(overwrite=True, allow_network=False)
    if speechbrain.__version__.startswith("1.0."):
        assert options == {}
        with pytest.raises(ValueError, match="fetch_config needs speechbrain>=1.1"):
            fetch_options(object())
    else:
        config = options["fetch_config"]
        assert config.allow_network is False and config.overwrite is True


def small_stft(seed: int) -> TDANetSTFT:
    torch.manual_seed(seed)
    return TDANetSTFT(num_sources=2, sample_rate=8000, n_fft=64, hop_length=16,
                      bottleneck_channels=8, hidden_channels=16, depth=2, num_blocks=1,
                      num_heads=2).eval()


def test_trusted_loading_and_transfer_on_this_speechbrain(tmp_path):
    """``from_hparams(trust_code=True)`` goes through SpeechBrain's ``Pretrained.from_hparams``
    (fetch options of this SpeechBrain), and gives the saved weights; two transfers into one
    ``collect_in`` each load their own source (the link is replaced, not reused)."""
    first, second = small_stft(0), small_stft(1)
    save_model_folder(first, tmp_path / "a")
    save_model_folder(second, tmp_path / "b")
    loaded = GASSSeparator.from_hparams(source=tmp_path / "a", trust_code=True,
                                        savedir=tmp_path / "saved")
    mix = torch.randn(1, 800)
    torch.testing.assert_close(loaded.separate_batch(mix), first(mix), atol=1e-5, rtol=1e-4)
    target = small_stft(2)
    for source, expected in ((tmp_path / "a", first), (tmp_path / "b", second)):
        report = transfer_from_checkpoint(target, source, collect_in=tmp_path / "collect")
        assert not report.reinitialised and not report.unused
        torch.testing.assert_close(target(mix), expected(mix), atol=1e-6, rtol=0)


def test_missing_extras_are_named(monkeypatch, tmp_path, capsys):
    """Without matplotlib (extra ``[plots]``), ``gass-separate --plot`` stops before separating
    anything, with status 2 and the extra's name; without museval (extra ``[musdb]``) MUSDB cSDR
    says which extra to install. (``sys.modules[name] = None`` makes the import fail.)"""
    from gass_modules.evaluation import benchmark_metrics
    from gass_modules.inference.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "a.wav"), "--plot", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and not (tmp_path / "out").exists()
    assert "pip install 'gass_modules[plots]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "museval", None)
    monkeypatch.setitem(sys.modules, "museval.metrics", None)
    benchmark_metrics._museval_metrics.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"MUSDB18 cSDR: museval.metrics is not installed; "
                                              r"pip install 'gass_modules\[musdb\]'"):
            benchmark_metrics.musdb_csdr(torch.ones(1, 400, 1), torch.ones(1, 400, 1), 200, 200)
    finally:
        benchmark_metrics._museval_metrics.cache_clear()
