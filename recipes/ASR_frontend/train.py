#!/usr/bin/env python3
"""Recipe: GASS as an ASR front end, with a WER table on clean, mixed and separated speech.

1. ``prepare.py`` synthesises English speech with transcripts and test mixtures of it with the
   demo corpus's music and sound events;
2. a sentencepiece tokenizer (``speechbrain.tokenizers.SentencePiece``) is trained on the
   training transcripts;
3. a small CTC ASR (CRDNN) is trained on the clean training speech (``sb.Brain``);
4. the test utterances are transcribed in one pass as

   * ``clean``: the speech alone;
   * ``mixture``: speech + interference;
   * ``gass``: the mixture through :class:`gass_modules.asr.frontend.GASSFrontEnd` (separation,
     then the stream picked by the intonation score);
   * ``gass_oracle_pick``: the same separation, the output closest to the speech (SI-SNR)
     picked with knowledge of the reference: what a perfect selection would give;
   * ``irm``: the ideal ratio mask of speech vs interference (an upper bound);
   * ``irm_pick``: the two IRM streams (speech, interference) ranked by the front end's own
     criterion: the intonation pick on a near-perfect separation;

   and ``SeparateThenTranscribe`` (the separator's ``separate_to_files`` + the trained ASR
   wrapped as a SpeechBrain ``EncoderASR``) transcribes the mixture files, every active stream
   of each;
5. the WER table (SpeechBrain's ``ErrorRateStats``) is printed and written to ``wer_file``.

Usage::

    python train.py hparams/crdnn_ctc.yaml --data_folder=<demo corpus folder> \\
        [--separator_folder=<GASS model folder, or gass-mini (the default)>]

With ``--separator_folder=null`` an untrained separator is used (for smoke tests; its rows are
marked "untrained").

Authors
 * gass developers 2026
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataio import read_audio
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.inference.ASR import EncoderASR
from speechbrain.nnet.containers import LengthsCapableSequential
from speechbrain.utils.distributed import run_on_main

from gass_modules.asr.frontend import GASSFrontEnd
from gass_modules.asr.transcribe import SeparateThenTranscribe
from gass_modules.inference.separator import GASSSeparator
from gass_modules.metrics import si_snr
from gass_modules.model_folder.folder import save_model_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import prepare_asr_frontend  # noqa: E402

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("clean", "mixture", "gass", "gass_oracle_pick", "irm", "irm_pick")
LABELS = {
    "clean": "clean speech",
    "mixture": "mixture (speech + music/sfx)",
    "gass": "GASS + intonation pick (GASSFrontEnd)",
    "gass_oracle_pick": "GASS + oracle pick (best SI-SNR stream)",
    "irm": "IRM oracle (upper bound)",
    "irm_pick": "IRM streams + intonation pick",
    "separate_then_transcribe": "SeparateThenTranscribe, top stream (files)",
}


class FrontEndASR(sb.Brain):
    """CTC ASR whose test stage transcribes every input condition of a mixture in one batch.

    ``self.frontend`` (a :class:`GASSFrontEnd`) must be set before testing.
    """

    frontend: GASSFrontEnd | None = None

    def transcribe_logits(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """Waveforms ``[B, T]`` -> CTC log-probabilities ``[B, N, V]``.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` waveforms at ``sample_rate``.
        wav_lens : torch.Tensor
            ``[B]`` relative lengths.

        Returns
        -------
        torch.Tensor
            ``[B, N, V]`` log-probabilities.
        """
        feats = self.hparams.compute_features(wavs)  # [B, N, n_mels]
        feats = self.modules.normalize(feats, wav_lens)
        return self.hparams.log_softmax(self.modules.ctc_lin(self.modules.enc(feats)))

    def compute_forward(self, batch, stage):
        """Log-probabilities of the clean input (train/valid) or of every condition (test)."""
        batch = batch.to(self.device)
        if stage != sb.Stage.TEST:
            wavs, wav_lens = batch.sig
            if stage == sb.Stage.TRAIN:
                wavs = self.hparams.speed_perturb(wavs)
            return {"clean": self.transcribe_logits(wavs, wav_lens)}, wav_lens
        return self.test_conditions(batch)

    def test_conditions(self, batch) -> tuple[dict, torch.Tensor]:
        """Builds the five test inputs of a batch of mixtures and transcribes them together.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            ``mix_sig``, ``speech_sig``, ``noise_sig`` (all ``[B, T]``, one length each).

        Returns
        -------
        tuple
            ``({system: log-probs [B, N, V]}, wav_lens)``.
        """
        mix, wav_lens = batch.mix_sig
        speech, noise = batch.speech_sig.data, batch.noise_sig.data
        selection = self.frontend.select(mix, wav_lens)
        sources = selection.sources  # [B, T, S]
        match = si_snr(speech[..., None].expand_as(sources), sources)  # [B, S]
        oracle_pick = match.argmax(-1)  # [B]
        picked = sources.gather(2, oracle_pick.to(sources.device)[:, None, None].expand(
            -1, sources.shape[1], 1))[..., 0]  # [B, T]
        irm_streams = self.hparams.oracle(mix, torch.stack([speech, noise], -1))  # [B, T, 2]
        irm = irm_streams[..., 0]
        irm_selection = self.frontend.select_among(mix, irm_streams, wav_lens)
        self.irm_agree += int((irm_selection.indices[:, 0] == 0).sum())
        irm_picked = irm_selection.streams[..., 0]  # [B, T]
        inputs = {"clean": speech, "mixture": mix, "gass": selection.streams[..., 0],
                  "gass_oracle_pick": picked, "irm": irm, "irm_pick": irm_picked}
        self.pick_agree += int((selection.indices[:, 0].cpu() == oracle_pick.cpu()).sum())
        self.pick_total += mix.shape[0]
        for name, wav in inputs.items():
            self.input_snr[name].extend(si_snr(speech[..., None], wav[..., None])[:, 0].tolist())
        stacked = torch.cat([inputs[s] for s in SYSTEMS])  # [5B, T]
        logits = self.transcribe_logits(stacked, wav_lens.repeat(len(SYSTEMS)))
        return dict(zip(SYSTEMS, logits.chunk(len(SYSTEMS)))), wav_lens

    def compute_objectives(self, predictions, batch, stage):
        """CTC loss of the clean input; at valid/test, greedy decoding and WER per condition."""
        outputs, wav_lens = predictions
        tokens, tokens_lens = batch.tokens
        loss = self.hparams.ctc_cost(outputs["clean"], tokens, wav_lens, tokens_lens)
        if stage != sb.Stage.TRAIN:
            targets = [words.split() for words in batch.wrd]
            for name, logits in outputs.items():
                hyps = self.hparams.greedy_decode(logits, wav_lens)
                words = [self.tokenizer.decode_ids(h).split() for h in hyps]
                self.wer[name].append(batch.id, words, targets)
        return loss

    def on_stage_start(self, stage, epoch=None):
        """Fresh WER statistics (and selection counters) per stage."""
        names = SYSTEMS if stage == sb.Stage.TEST else ("clean",)
        self.wer = {name: self.hparams.error_rate_computer() for name in names}
        self.pick_agree, self.pick_total, self.irm_agree = 0, 0, 0
        self.input_snr = {name: [] for name in names}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs losses and WER, anneals the learning rate, checkpoints; writes the test table."""
        stats = {"loss": stage_loss}
        if stage != sb.Stage.TRAIN:
            stats["WER"] = self.wer["clean"].summarize("error_rate")
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
        elif stage == sb.Stage.VALID:
            old_lr, new_lr = self.hparams.lr_annealing(stage_loss)
            sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            self.hparams.train_logger.log_stats({"epoch": epoch, "lr": old_lr},
                                                train_stats=self.train_stats, valid_stats=stats)
            self.checkpointer.save_and_keep_only(meta={"WER": stats["WER"]}, min_keys=["WER"])
        else:
            self.hparams.train_logger.log_stats({"Epoch loaded": self.hparams.epoch_counter
                                                 .current}, test_stats=stats)
            for name, wer in self.wer.items():
                with open(Path(self.hparams.output_folder) / f"wer_{name}.txt", "w") as f:
                    wer.write_stats(f)


def dataio_prep(hparams: dict, tokenizer) -> dict[str, DynamicItemDataset]:
    """SpeechBrain datasets: ``train``/``valid`` (clean ``sig``) and ``test_mix`` (``mix_sig``,
    ``speech_sig``, ``noise_sig``), all with ``wrd`` and ``tokens``.

    Arguments
    ---------
    hparams : dict
        The loaded recipe.
    tokenizer : sentencepiece.SentencePieceProcessor
        Encodes ``wrd``.

    Returns
    -------
    dict
        Datasets by name.
    """
    folder = hparams["asr_folder"]
    datasets = {}
    for name in ("train", "valid", "test_mix"):
        ds = DynamicItemDataset.from_csv(f"{folder}/{name}.csv",
                                         replacements={"data_root": folder})
        if name == "train" and hparams["sorting"] in ("ascending", "descending"):
            ds = ds.filtered_sorted(sort_key="duration",
                                    reverse=hparams["sorting"] == "descending")
        datasets[name] = ds
    audio = {"train": ("wav",), "valid": ("wav",), "test_mix": ("mix", "speech", "noise")}
    for name, ds in datasets.items():
        if name == "test_mix":
            for column in audio[name]:
                sb.dataio.dataset.add_dynamic_item([ds], read_audio, takes=[column],
                                                   provides=f"{column}_sig")
        else:
            sb.dataio.dataset.add_dynamic_item([ds], read_audio, takes=["wav"], provides="sig")

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("tokens")
    def text_pipeline(wrd):
        return torch.LongTensor(tokenizer.encode_as_ids(wrd))

    sb.dataio.dataset.add_dynamic_item(list(datasets.values()), text_pipeline)
    for name, ds in datasets.items():
        signals = ("mix_sig", "speech_sig", "noise_sig") if name == "test_mix" else ("sig",)
        keys = ["id", "wrd", "tokens", *signals]
        sb.dataio.dataset.set_output_keys([ds], keys)
    return datasets


def load_separator(hparams: dict, device: str) -> tuple[GASSSeparator, bool]:
    """The GASS model folder, or an untrained separator saved as a model folder (smoke tests).

    Arguments
    ---------
    hparams : dict
        The loaded recipe (``separator_folder``, ``fallback_card``, ``fallback_overrides``).
    device : str
        Where to run it.

    Returns
    -------
    tuple
        ``(separator, trained)``.
    """
    folder = hparams["separator_folder"]
    trained = folder is not None
    if not trained:
        card = ROOT / "hparams" / "models" / f"{hparams['fallback_card']}.yaml"
        with open(card, encoding="utf-8") as f:
            built = load_hyperpyyaml(f, hparams["fallback_overrides"])
        folder = Path(hparams["save_folder"]) / "untrained_separator"
        logger.warning(f"--separator_folder=null: using an UNTRAINED {card.stem} separator "
                       "(smoke test; its WER rows mean nothing)")
        run_on_main(save_model_folder, args=[built["separator"], folder],
                    kwargs={"card": card, "overrides": hparams["fallback_overrides"],
                            "overwrite": True})
    separator = GASSSeparator.from_hparams(source=folder, run_opts={"device": device},
                                           trust_code=bool(hparams.get("trust_model_code")))
    return separator, trained


def encoder_asr(hparams: dict, tokenizer, device: str) -> EncoderASR:
    """The trained modules wrapped as a SpeechBrain ``EncoderASR`` interface.

    Arguments
    ---------
    hparams : dict
        The loaded recipe (its trained modules).
    tokenizer : sentencepiece.SentencePieceProcessor
        The recipe's tokenizer.
    device : str
        Device of the modules.

    Returns
    -------
    EncoderASR
        With ``transcribe_batch(wavs, wav_lens)``.
    """
    encoder = LengthsCapableSequential(
        compute_features=hparams["compute_features"], normalize=hparams["normalize"],
        enc=hparams["enc"], ctc_lin=hparams["ctc_lin"], log_softmax=hparams["log_softmax"])
    return EncoderASR(modules={"encoder": encoder},
                      hparams={"tokenizer": tokenizer,
                               "decoding_function": hparams["greedy_decode"]},
                      run_opts={"device": device}, freeze_params=True)


def separate_then_transcribe(hparams: dict, separator: GASSSeparator, asr: EncoderASR,
                             test_csv: str, limit: int | None = None) -> sb.utils.metric_stats \
        .ErrorRateStats:
    """Runs ``SeparateThenTranscribe`` on the mixture files; WER of the top stream.

    Every active stream's transcript is written to ``transcripts_file`` (json).

    Arguments
    ---------
    hparams : dict
        The loaded recipe.
    separator : GASSSeparator
        The separator.
    asr : EncoderASR
        The trained ASR.
    test_csv : str
        ``test_mix.csv``.
    limit : int, optional
        Only the first ``limit`` mixtures.

    Returns
    -------
    ErrorRateStats
        WER of the most speech-like stream of each mixture.
    """
    stt = SeparateThenTranscribe(separator, asr, asr_sample_rate=hparams["sample_rate"],
                                 activity_db=hparams["activity_db"],
                                 speech_threshold=hparams["speech_threshold"])
    data = DynamicItemDataset.from_csv(test_csv, replacements={"data_root":
                                                               hparams["asr_folder"]})
    wer = hparams["error_rate_computer"]()
    report = []
    for k, item in enumerate(data.data.values()):
        if limit is not None and k >= limit:
            break
        uid = data.data_ids[k]
        streams = stt.transcribe_file(item["mix"])
        hyp = streams[0].text.split() if streams else []
        wer.append([uid], [hyp], [item["wrd"].split()])
        report.append({"id": uid, "reference": item["wrd"],
                       "streams": [vars(s) for s in streams]})
    with open(hparams["transcripts_file"], "w") as f:
        json.dump(report, f, indent=1)
    return wer


def wer_table(wers: dict, snrs: dict, pick_agree: int, pick_total: int, irm_agree: int,
              trained: bool) -> str:
    """The markdown WER table.

    Arguments
    ---------
    wers : dict
        ``ErrorRateStats`` per system.
    snrs : dict
        SI-SNR (dB) of each system's ASR input against the speech, per utterance.
    pick_agree, pick_total : int
        Mixtures where the intonation pick is the oracle pick, and mixtures.
    irm_agree : int
        Mixtures where the intonation pick among the IRM streams is the speech stream.
    trained : bool
        Whether the separator was trained (rows are marked otherwise).

    Returns
    -------
    str
        The table and the selection line.
    """
    lines = ["| ASR input | WER % | ins | del | sub | words | SI-SNR vs speech (dB) |",
             "|---|---|---|---|---|---|---|"]
    for name, wer in wers.items():
        s = wer.summarize()
        label = LABELS[name]
        if not trained and name.startswith(("gass", "separate")):
            label += " [untrained separator]"
        snr = snrs.get(name)
        snr_cell = f"{sum(snr) / len(snr):.1f}" if snr else "-"
        lines.append(f"| {label} | {s['WER']:.2f} | {s['insertions']} | {s['deletions']} | "
                     f"{s['substitutions']} | {s['num_scored_tokens']} | {snr_cell} |")
    share = 100 * pick_agree / max(1, pick_total)
    lines.append(f"\nIntonation pick = oracle pick in {pick_agree}/{pick_total} mixtures "
                 f"({share:.1f} %) after GASS, in {irm_agree}/{pick_total} "
                 f"({100 * irm_agree / max(1, pick_total):.1f} %) among the IRM streams.")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Prepares, trains the tokenizer and the ASR, evaluates every condition, writes the table.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (hparams file, run options, overrides).
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides)
    logger.info(f"seeded with {hparams['global_seed']}")
    run_on_main(prepare_asr_frontend, kwargs={
        "asr_folder": hparams["asr_folder"], "data_folder": hparams["data_folder"],
        "num_train": hparams["num_train"], "num_valid": hparams["num_valid"],
        "num_test": hparams["num_test"], "sample_rate": hparams["sample_rate"],
        "seed": hparams["seed"], "digit_fraction": hparams["digit_fraction"],
        "sir_range": tuple(hparams["sir_range"]), "num_workers": hparams["prep_workers"]})
    tokenizer = hparams["tokenizer"]().sp  # trains it on the first run
    datasets = dataio_prep(hparams, tokenizer)

    asr = FrontEndASR(modules=hparams["modules"], opt_class=hparams["opt_class"],
                      hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    asr.tokenizer = tokenizer
    asr.fit(hparams["epoch_counter"], datasets["train"], datasets["valid"],
            train_loader_kwargs=hparams["train_dataloader_opts"],
            valid_loader_kwargs=hparams["valid_dataloader_opts"])

    separator, trained = load_separator(hparams, asr.device)
    asr.frontend = hparams["gass_frontend"](separator=separator)
    asr.evaluate(datasets["test_mix"], min_key="WER",
                 test_loader_kwargs=hparams["test_dataloader_opts"])
    wers = dict(asr.wer)
    limit = 2 if asr.debug else None
    interface = encoder_asr(hparams, tokenizer, asr.device)
    wers["separate_then_transcribe"] = separate_then_transcribe(
        hparams, separator, interface, f"{hparams['asr_folder']}/test_mix.csv", limit)
    table = wer_table(wers, asr.input_snr, asr.pick_agree, asr.pick_total, asr.irm_agree,
                      trained)
    Path(hparams["wer_file"]).write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
