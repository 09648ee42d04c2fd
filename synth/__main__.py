"""Command line: ``python -m synth say ...`` speaks; ``python -m synth info FILE`` describes a model file;
``python -m synth train RECORDINGS --transcripts FILE --out VOICE_DIR`` fine-tunes a voice (docs/training.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from synth.errors import SynthError


@click.group()
def main() -> None:
    """GPT-SoVITS v2 speech synthesis."""


@main.command()
@click.option("--gpt", "gpt_path", required=True, type=click.Path(dir_okay=False), help="GPT weights (.ckpt)")
@click.option("--sovits", "sovits_path", required=True, type=click.Path(dir_okay=False), help="SoVITS weights (.pth)")
@click.option(
    "--hubert", "hubert_dir", required=True, type=click.Path(file_okay=False), help="chinese-hubert-base folder"
)
@click.option(
    "--bert",
    "bert_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="chinese-roberta-wwm-ext-large folder (needed for good Chinese)",
)
@click.option("--ref", "reference", required=True, type=click.Path(dir_okay=False), help="reference WAV, 3-10 s")
@click.option("--ref-text", "prompt_text", default="", help="transcript of the reference (empty: reference-free)")
@click.option("--ref-lang", "prompt_language", default=None, help="language of the transcript (default: --lang)")
@click.option("--text", required=True, help="what to say")
@click.option(
    "--lang",
    "language",
    default="zh",
    show_default=True,
    help="zh, en, ja, ko, yue, all_zh, all_ja, all_ko, all_yue, auto or auto_yue",
)
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="output WAV")
@click.option("--seed", default=0, show_default=True)
@click.option("--top-k", default=15, show_default=True)
@click.option("--top-p", default=1.0, show_default=True)
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--repetition-penalty", default=1.35, show_default=True)
@click.option("--speed", default=1.0, show_default=True)
@click.option(
    "--max-tokens",
    "max_semantic_tokens",
    default=1500,
    show_default=True,
    help="semantic tokens per sentence at most (25 = 1 s)",
)
@click.option("--precision", type=click.Choice(["fp32", "bf16", "int8"]), default="fp32", show_default=True)
@click.option("--device", default="cpu", show_default=True)
def say(
    gpt_path,
    sovits_path,
    hubert_dir,
    bert_dir,
    reference,
    prompt_text,
    prompt_language,
    text,
    language,
    out_path,
    seed,
    top_k,
    top_p,
    temperature,
    repetition_penalty,
    speed,
    max_semantic_tokens,
    precision,
    device,
) -> None:
    """Speak TEXT in the voice of the model and reference clip, into a WAV file."""
    from tqdm import tqdm

    from synth.audio import write_wav
    from synth.engine import Synthesizer

    try:
        tts = Synthesizer.from_files(
            gpt_path, sovits_path, hubert_dir=hubert_dir, bert_dir=bert_dir, device=device, precision=precision
        )
        plans = tts.plan(text, language, prompt_text, prompt_language)
        with tqdm(total=len(plans) * max_semantic_tokens, unit="tok", desc="semantic tokens", leave=False) as bar:
            rate, wave = tts.synthesize(
                text,
                language,
                reference,
                prompt_text=prompt_text,
                prompt_language=prompt_language,
                seed=seed,
                top_k=top_k,
                top_p=top_p,
                temperature=temperature,
                repetition_penalty=repetition_penalty,
                speed=speed,
                max_semantic_tokens=max_semantic_tokens,
                on_token=bar.update,
            )
        write_wav(out_path, rate, wave)
    except (SynthError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out_path}: {wave.shape[0] / rate:.2f} s at {rate} Hz, {len(plans)} sentence(s)")


@main.command()
@click.option(
    "--lang",
    "language",
    default="auto",
    show_default=True,
    help="zh, en, ja, ko, yue, all_zh, all_ja, all_ko, all_yue, auto or auto_yue",
)
@click.argument("text", nargs=-1, required=True)
def phones(language: str, text: tuple[str, ...]) -> None:
    """Print the phones the front end gives TEXT, one sentence a line (what to check when a word sounds wrong)."""
    import logging

    from synth.text.frontend import phones_and_bert, split_sentences

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")  # dropped characters, to stderr
    try:
        for sentence in split_sentences(" ".join(text), language):
            click.echo(" ".join(phones_and_bert(sentence, language, None).phones))
    except SynthError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("path", type=click.Path())
def info(path: str) -> None:
    """Describe a GPT-SoVITS model file: kind, version, parameters, config, languages."""
    from synth.checkpoints import read_checkpoint, sovits_version, to_plain
    from synth.text.frontend import NOT_INSTALLED, SUPPORTED

    try:
        raw = read_checkpoint(path)
    except SynthError as exc:
        raise click.ClickException(str(exc)) from None
    payload = raw.payload if isinstance(raw.payload, dict) else {}
    weights = payload.get("weight") if isinstance(payload.get("weight"), dict) else {}
    config = to_plain(payload.get("config", {}))
    count = sum(int(t.numel()) for t in weights.values())
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in weights.values()})
    if any(k.startswith("model.ar_") for k in weights):
        kind = "GPT (text to semantic tokens)"
        phones = weights.get("model.ar_text_embedding.word_embeddings.weight")
        version = "v2" if phones is not None and phones.shape[0] == 732 else "v1"
        shape = config.get("model", {})
        detail = (
            f"layers {shape.get('n_layer')}, width {shape.get('hidden_dim')}, heads {shape.get('head')}, "
            f"phones {shape.get('phoneme_vocab_size')}, semantic vocabulary {shape.get('vocab_size')}"
        )
    else:
        kind = "SoVITS (semantic tokens to waveform)"
        version = sovits_version(raw.version_mark, weights)
        shape = config.get("model", {}) if isinstance(config, dict) else {}
        data = config.get("data", {}) if isinstance(config, dict) else {}
        detail = (
            f"hidden {shape.get('hidden_channels')}, layers {shape.get('n_layers')}, "
            f"upsampling {shape.get('upsample_rates')}, {data.get('sampling_rate')} Hz"
        )
    supported = version == "v2"
    click.echo(f"file:       {Path(path)}")
    click.echo(f"kind:       {kind}")
    click.echo(f"version:    {version}{'' if supported else '  (not supported by this engine: v2 only)'}")
    click.echo(f"parameters: {count:,} ({', '.join(dtypes) or 'none'})")
    click.echo(f"shape:      {detail}")
    click.echo(f"info:       {payload.get('info', '')}")
    missing = f" (not installed: {', '.join(NOT_INSTALLED)})" if NOT_INSTALLED else ""
    click.echo(f"languages:  {', '.join(SUPPORTED)}{missing}")
    if not supported:
        sys.exit(2)


@main.command()
@click.argument("recordings", type=click.Path(file_okay=False))
@click.option(
    "--transcripts", default=None, type=click.Path(dir_okay=False), help=".list file: path|speaker|language|text"
)
@click.option(
    "--asr-model",
    default=None,
    type=click.Path(),
    help="instead of --transcripts: a Whisper model folder on disk to transcribe the recordings (with --language)",
)
@click.option("--language", default=None, help="the recordings' language for --asr-model: zh, en, ja, ko or yue")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="the voice folder to write (must not exist)")
@click.option(
    "--base",
    envvar="VOICEMARKET_WEIGHTS",
    required=True,
    type=click.Path(file_okay=False),
    help="GPT-SoVITS pretrained_models folder (default: $VOICEMARKET_WEIGHTS)",
)
@click.option("--s2-epochs", default=8, show_default=True, help="SoVITS epochs (the web UI's default for v2)")
@click.option("--s1-epochs", default=15, show_default=True, help="GPT epochs (the web UI's default)")
@click.option("--batch-size", type=int, default=None, help="both stages (default: the web UI's, from memory)")
@click.option("--min-seconds", default=30.0, show_default=True, help="least usable speech to train on")
@click.option("--name", default=None, help="voice name (default: the --out folder's name)")
@click.option("--preview-text", default=None, help="what the new voice says as its preview")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 on a busy machine)")
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML of further settings (s2: {...}, s1: {...}; docs/training.md); the options above win",
)
def train(
    recordings,
    transcripts,
    asr_model,
    language,
    out_dir,
    base,
    s2_epochs,
    s1_epochs,
    batch_size,
    min_seconds,
    name,
    preview_text,
    device,
    threads,
    settings_file,
) -> None:
    """Fine-tune a voice from RECORDINGS (about a minute of speech) into a folder `ape run mint` packs."""
    import logging

    from click.core import ParameterSource
    from tqdm import tqdm

    from synth.train import Progress, train_voice
    from synth.train.pipeline import command_settings
    from synth.train.s2 import default_batch_size

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    def memory_batch_size() -> int:
        memory = None
        if device.startswith("cuda"):
            import torch

            memory = torch.cuda.get_device_properties(torch.device(device)).total_memory / 1024**3
        return default_batch_size(memory)

    options = dict(s2_epochs=s2_epochs, s1_epochs=s1_epochs, batch_size=batch_size, min_seconds=min_seconds)
    ctx = click.get_current_context()
    given = {k: v for k, v in options.items() if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT}
    try:
        settings = command_settings(
            settings_file, {**given, "name": name, "preview_text": preview_text}, memory_batch_size
        )
    except SynthError as exc:
        raise click.ClickException(str(exc)) from None
    bars: list[tqdm] = []

    def start(stage: str, total: int) -> None:
        bars.append(tqdm(total=total, desc=stage, unit="step" if stage != "features" else "clip"))

    def advance(row: dict) -> None:
        bars[-1].update(1)
        if row:
            bars[-1].set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("loss_mel", "loss_kl", "loss")})

    def done() -> None:
        if bars:
            bars[-1].close()

    try:
        from synth.train.asr import command_transcripts

        transcripts = command_transcripts(recordings, transcripts, asr_model, language, out_dir, device, click.echo)
        result = train_voice(
            recordings,
            transcripts,
            out_dir,
            base,
            settings,
            device=device,
            progress=Progress(start=start, advance=advance, done=done),
            report=click.echo,
        )
    except SynthError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted: run the same command again to resume from the last epoch") from None
    click.echo(f"wrote {result.folder}: {result.gpt.name}, {result.sovits.name}, reference.wav, voice.yaml")
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    click.echo(f"time: {timing}")
    if result.preview is not None:
        click.echo(f"listen: {result.preview}")
    click.echo(f"mint it: ape run mint {result.folder} ...")


if __name__ == "__main__":
    main()
