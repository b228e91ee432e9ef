"""Exports the separator of a GASS model folder with ``torch.export`` (and ONNX when available).

::

    .venv/bin/python tools/export.py MODEL_DIR --out FILE.pt2 [--onnx FILE.onnx]
                                     [--max-seconds 600] [--trust-model-code]

The model folder is loaded safely (no code from its ``hyperparams.yaml`` runs; see
:mod:`gass_modules.model_folder.safe_hparams`); ``--trust-model-code`` loads it with full
hyperpyyaml, for
folders from a trusted source only.

The program is the separator's core, exported by ``gass_modules.lobes.base.export_separator``:
it takes ``[B, stride * k]`` mixtures at the model's rate with a dynamic batch ``B`` and length
multiple ``k`` (pad with zeros to a multiple of ``stride`` and crop the output back, as
``Separator.forward`` does). It is saved with ``torch.export.save``; ``gass.json`` in the file's
extra files records ``sample_rate``, ``num_sources`` and ``stride``. Load it with::

    program = torch.export.load("FILE.pt2")
    est = program.module()(padded_mix)          # [B, stride * k] -> [B, stride * k, S]

Before saving, the program is run on lengths other than the traced one and compared with the
eager separator; a mismatch is an error. ONNX (``--onnx``) needs the ``onnx`` and ``onnxscript``
packages (not part of the pinned stack: ``pip install onnx onnxscript``); the ONNX graph is checked
with ``onnxruntime`` when that is installed too. With torch 2.11, onnx 1.23 and onnxscript 0.7,
TDANet-Wav converts (onnxruntime matches eager to 1e-6); TDANet-STFT does not (``torch.onnx`` has
no complex dtypes) and neither does BSRNN (a data-dependent guard in the translation): they export
to ``.pt2`` only, and the error says why.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import torch

from gass_modules.inference.separator import GASSSeparator
from gass_modules.lobes.base import Separator, export_separator


def check_program(program: torch.export.ExportedProgram, separator: Separator,
                  multiples: tuple[int, ...] = (3, 5), batch: int = 2, seed: int = 0) -> float:
    """Largest absolute difference between the exported program and the eager separator.

    Arguments
    ---------
    program : torch.export.ExportedProgram
        The exported core (``export_separator``).
    separator : Separator
        The eager model (eval mode).
    multiples : tuple of int
        Lengths to test, in multiples of ``stride`` (the program was traced at 2).
    batch : int
        Batch size of the test inputs.
    seed : int
        Seed of the random test mixtures.

    Returns
    -------
    float
        ``max |program(x) - separator.separate_padded(x)|`` over the test inputs.
    """
    generator = torch.Generator().manual_seed(seed)
    device = next(separator.parameters(), torch.zeros(())).device
    worst = 0.0
    with torch.no_grad():
        for k in multiples:
            mix = torch.randn(batch, separator.stride * k, generator=generator).to(device)
            exported = program.module()(mix)  # [B, L, S]
            eager = separator.separate_padded(mix)  # [B, L, S]
            if exported.shape != eager.shape:
                raise RuntimeError(f"exported program returns {tuple(exported.shape)} for input "
                                   f"{tuple(mix.shape)}, eager {tuple(eager.shape)}")
            worst = max(worst, float((exported - eager).abs().max()))
    return worst


def export_onnx(program: torch.export.ExportedProgram, separator: Separator,
                path: Path) -> str:
    """Writes the program as ONNX (dynamic batch and length) and checks it when possible.

    Arguments
    ---------
    program : torch.export.ExportedProgram
        The exported core.
    separator : Separator
        The eager model, for the check with onnxruntime.
    path : pathlib.Path
        Where to write the ``.onnx`` file.

    Returns
    -------
    str
        What was done, for the report.
    """
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"ONNX skipped: {' and '.join(missing)} not installed (pip install onnx "
                "onnxscript; they are not part of the pinned stack)")
    onnx_program = torch.onnx.export(program, dynamo=True)
    onnx_program.save(str(path))
    if importlib.util.find_spec("onnxruntime") is None:
        return f"ONNX written to {path} (not run: onnxruntime not installed)"
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    generator = torch.Generator().manual_seed(1)
    device = next(separator.parameters(), torch.zeros(())).device
    error = 0.0
    for batch, k in ((1, 3), (2, 5)):  # lengths and batches other than the traced [2, 2 * stride]
        mix = torch.randn(batch, separator.stride * k, generator=generator)
        with torch.no_grad():
            eager = separator.separate_padded(mix.to(device)).cpu()
        (out,) = session.run(None, {name: mix.numpy()})
        error = max(error, float((torch.from_numpy(out) - eager).abs().max()))
    return f"ONNX written to {path}; onnxruntime vs eager max |error| = {error:.2e}"


def export_model_folder(model_dir: str | Path, out: str | Path, onnx: str | Path | None = None,
                        max_seconds: float = 600.0, atol: float = 1e-4,
                        trust_code: bool = False) -> dict:
    """Loads a model folder, exports its separator, checks it against eager and saves it.

    Arguments
    ---------
    model_dir : str or pathlib.Path
        The model folder (``hyperparams.yaml`` + ``separator.ckpt``).
    out : str or pathlib.Path
        The ``.pt2`` file to write.
    onnx : str or pathlib.Path, optional
        Also write an ONNX file there (needs onnx and onnxscript).
    max_seconds : float
        Longest input (in seconds at the model's rate) the program accepts.
    atol : float
        Largest allowed absolute difference with eager (relative to the output's scale).
    trust_code : bool
        Load the folder with full hyperpyyaml, which runs any code it names (trusted folders
        only; default: the safe loader).

    Returns
    -------
    dict
        ``file``, ``sample_rate``, ``num_sources``, ``stride``, ``max_samples``,
        ``max_abs_error``, ``onnx`` (what was done) and ``onnx_error`` (why ONNX failed).
    """
    interface = GASSSeparator.from_hparams(source=model_dir, run_opts={"device": "cpu"},
                                           trust_code=trust_code)
    separator = interface.mods.separator.eval()
    if not isinstance(separator, Separator):
        raise TypeError(f"{model_dir}: the separator is a {type(separator).__name__}, not a "
                        "gass_modules.lobes.base.Separator; only those export with a dynamic "
                        "length")
    if not math.isfinite(max_seconds) or max_seconds <= 0:
        raise ValueError(f"max_seconds must be a positive number, got {max_seconds}")
    max_multiple = max(3, math.ceil(max_seconds * separator.sample_rate / separator.stride))
    program = export_separator(separator, max_multiple=max_multiple)
    error = check_program(program, separator)
    with torch.no_grad():
        scale = float(separator.separate_padded(torch.ones(1, separator.stride * 3)).abs().max())
    if error > atol * max(1.0, scale):
        raise RuntimeError(f"the exported program differs from eager by {error:.3e} (allowed "
                           f"{atol:.1e}); the separator probably branches on the input length")
    meta = {"sample_rate": separator.sample_rate, "num_sources": separator.num_sources,
            "stride": separator.stride, "max_samples": separator.stride * max_multiple}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, out, extra_files={"gass.json": json.dumps(meta)})
    report = {"file": str(out), **meta, "max_abs_error": error, "onnx": None, "onnx_error": None}
    if onnx is not None:
        try:
            report["onnx"] = export_onnx(program, separator, Path(onnx))
        except Exception as err:  # e.g. torch.onnx has no complex dtypes (STFT-domain models)
            lines = [ln for ln in str(err).splitlines() if ln.strip()]
            causes = [ln for ln in lines if ln.startswith("<class")]  # torch.onnx's summary
            report["onnx_error"] = f"{type(err).__name__}: " + " | ".join(
                causes or lines[:1])[:1000]
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring).

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when the export failed, does not match eager, or ONNX was asked for and
        failed (the ``.pt2`` file is written before ONNX is tried).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", help="model folder (hyperparams.yaml + separator.ckpt)")
    parser.add_argument("--out", required=True, help="the .pt2 file to write")
    parser.add_argument("--onnx", default=None, help="also write an ONNX file there")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="longest input the program accepts (default 600 s)")
    parser.add_argument("--trust-model-code", action="store_true",
                        help="load the model folder with full hyperpyyaml, which can run any "
                             "code written in its hyperparams.yaml (trusted folders only)")
    args = parser.parse_args(argv)
    try:
        report = export_model_folder(args.model_dir, args.out, args.onnx, args.max_seconds,
                                     trust_code=args.trust_model_code)
    except Exception as err:
        print(f"export failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"wrote {report['file']}: {report['num_sources']} sources at {report['sample_rate']} "
          f"Hz, inputs [B, {report['stride']} * k] up to {report['max_samples']} samples; "
          f"max |exported - eager| = {report['max_abs_error']:.2e}")
    if report["onnx"]:
        print(report["onnx"])
    if report["onnx_error"]:
        print(f"ONNX export failed (the .pt2 file was written): {report['onnx_error']}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
