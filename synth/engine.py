"""The public engine: :class:`Synthesizer` ties the front end, the GPT and the SoVITS stages.

>>> tts = Synthesizer.from_files("voice.ckpt", "voice.pth", hubert_dir="chinese-hubert-base",
...                              bert_dir="chinese-roberta-wwm-ext-large")
>>> rate, wave = tts.synthesize("Hello there.", "en", "ref.wav", prompt_text="...", prompt_language="en")

Randomness: sentence ``i`` of a request samples its GPT tokens from its own generator seeded
``seed + i``, exactly the draws the original makes after ``torch.manual_seed(seed + i)`` for
that sentence alone. The SoVITS prior's noise comes by default from a second, per-frame source
(:class:`~synth.sovits.PriorNoise`, also keyed by ``seed + i``), so that streaming and one-shot
synthesis use the same noise; ``prior_noise="original"`` draws it as the original does instead.
So a request is deterministic under a seed, and batching sentences does not change what each draws.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synth.audio import Reference, load_reference, spectrogram
from synth.checkpoints import load_gpt, load_sovits
from synth.errors import CheckpointError, CorruptCheckpointError, TextError
from synth.features import BertFeatures, SSLEncoder
from synth.gpt import GPTConfig, Text2SemanticDecoder
from synth.sampling import SamplingParams
from synth.sovits import NoiseSource, OriginalPriorNoise, PriorNoise, SoVITSConfig, SynthesizerTrn
from synth.text.frontend import PhoneSequence, check_language, phones_and_bert, prepare_prompt_text, split_sentences

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class PreparedReference:
    """What a reference clip contributes: prompt tokens [P], style vector [1, gin, 1]."""

    prompt_tokens: torch.Tensor
    style: torch.Tensor
    seconds: float


@dataclass(frozen=True)
class SentencePlan:
    """One sentence ready for the GPT: its phones, and the prompt text's phones in front."""

    text: str
    target: PhoneSequence
    gpt_ids: torch.Tensor
    gpt_bert: torch.Tensor


def _load_strict(
    module: torch.nn.Module, weights: dict[str, torch.Tensor], source: Path, ignore_prefixes: tuple[str, ...] = ()
) -> None:
    """Copy ``weights`` into ``module``; every parameter must be present with its shape."""
    expected = module.state_dict()
    weights = {k: v for k, v in weights.items() if not k.startswith(ignore_prefixes)}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CorruptCheckpointError(
            f"{source}: weights do not match the GPT-SoVITS v2 architecture "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
        )
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CorruptCheckpointError(
                f"{source}: weight {name} has shape {tuple(tensor.shape)}, "
                f"the config implies {tuple(expected[name].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CorruptCheckpointError(f"{source}: weight {name} holds NaN or infinite values")
    module.load_state_dict(weights, strict=True)


@dataclass(frozen=True)
class _Job:
    """A request ready to decode: its sentences, the reference's style [1, gin, 1] and the GPT's
    prompt tokens [P] (empty in reference-free mode), each sentence's generator and prior noise,
    and the silence [S] after each sentence."""

    plans: list[SentencePlan]
    style: torch.Tensor
    prompt: torch.Tensor
    generators: list[torch.Generator]
    noises: list[NoiseSource]
    pause: np.ndarray


class Synthesizer:
    """GPT-SoVITS v2 text-to-speech with one voice (a GPT and a SoVITS file)."""

    def __init__(
        self,
        gpt: Text2SemanticDecoder,
        sovits: SynthesizerTrn,
        ssl: SSLEncoder,
        bert_dir: str | os.PathLike[str] | None,
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        self.gpt, self.sovits, self.ssl = gpt, sovits, ssl
        # The 1.3 GB BERT is loaded on the first Chinese sentence, not before (English-only use never pays it).
        self.bert_dir = bert_dir
        self._bert: BertFeatures | None = None
        self.device = device
        self.precision = precision
        self.sample_rate = sovits.cfg.sampling_rate
        self._references: OrderedDict[str, PreparedReference] = OrderedDict()
        self._lock = threading.Lock()
        self._warned_no_bert = False

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_files(
        cls,
        gpt_path: str | os.PathLike[str],
        sovits_path: str | os.PathLike[str],
        *,
        hubert_dir: str | os.PathLike[str],
        bert_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
    ) -> Synthesizer:
        """Load a voice.

        ``precision``: ``fp32`` (default) computes exactly what the original computes; ``bf16`` runs
        the GPT in bfloat16; ``int8`` runs it with int8 weights (one scale per row), with float32
        activations through the native decode step on a CPU, bf16 ones otherwise (fastest on a
        CPU, whose token-by-token decoding is bound by reading the weights). The two fast modes
        change the numerics slightly; BENCHMARKS.md gives their effect on the tokens."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        device = torch.device(device)
        gpt_ckpt = load_gpt(gpt_path)
        sovits_ckpt = load_sovits(sovits_path)
        gpt = Text2SemanticDecoder(GPTConfig.from_checkpoint_config(gpt_ckpt.config))
        _load_strict(gpt, gpt_ckpt.weights, gpt_ckpt.path)
        sovits = SynthesizerTrn(SoVITSConfig.from_checkpoint_config(sovits_ckpt.config))
        _load_strict(sovits, sovits_ckpt.weights, sovits_ckpt.path, ignore_prefixes=("enc_q.",))
        del gpt_ckpt, sovits_ckpt
        gpt.eval().to(device)
        sovits.eval().to(device)
        if precision == "bf16":
            gpt.to(torch.bfloat16)
        elif precision == "int8":
            gpt.quantize_int8()  # fp32 activations through the native step on a CPU, else bf16
        # fp32 only: a bf16 matrix-vector product over the transposed layout takes a slow generic
        # path on CPUs without native bf16 (30x slower on an AVX2 EPYC: 4 ms instead of 0.13 ms).
        if device.type == "cpu" and precision == "fp32" and not gpt.use_native_kernels():
            gpt.store_weights_transposed()
        sovits.fold_weight_norm()
        ssl = SSLEncoder(hubert_dir, device)
        if bert_dir is not None and not (Path(bert_dir) / "config.json").is_file():
            raise CheckpointError(
                f"BERT folder {bert_dir} has no config.json; point it at chinese-roberta-wwm-ext-large"
            )
        return cls(gpt, sovits, ssl, bert_dir, device, precision)

    # ------------------------------------------------------------------ reference

    def prepare_reference(self, reference) -> PreparedReference:
        """Prompt tokens and style vector of a clip (a WAV path or ``(rate, samples)``); cached."""
        ref = load_reference(reference, self.sample_rate)
        key = hashlib.sha256(ref.audio_model.tobytes()).hexdigest()
        with self._lock:
            if key in self._references:
                self._references.move_to_end(key)
                return self._references[key]
        prepared = self._prepare(ref)
        with self._lock:
            self._references[key] = prepared
            while len(self._references) > 16:
                self._references.popitem(last=False)
        return prepared

    @torch.no_grad()
    def _prepare(self, ref: Reference) -> PreparedReference:
        tail = int(self.sample_rate * 0.3)  # as the original: 0.3 s at the model rate, appended at 16 kHz
        ssl = self.ssl.features(ref.audio_16k, tail)
        tokens = self.sovits.extract_latent(ssl)[0]
        cfg = self.sovits.cfg
        audio = torch.from_numpy(ref.audio_model).to(self.device).unsqueeze(0)
        spec = spectrogram(audio, cfg.filter_length, cfg.hop_length, cfg.win_length)
        return PreparedReference(prompt_tokens=tokens, style=self.sovits.style(spec), seconds=ref.seconds)

    # ------------------------------------------------------------------ text

    @property
    def bert(self) -> BertFeatures | None:
        """The BERT model, loaded on first use (None when no folder was given)."""
        if self._bert is None and self.bert_dir is not None:
            with self._lock:
                if self._bert is None:
                    self._bert = BertFeatures(self.bert_dir, self.device)
        return self._bert

    def _bert_features(self, text: str, word2ph: list[int]) -> torch.Tensor:
        if self.bert is None:
            if not self._warned_no_bert:
                log.warning("no BERT folder given: Chinese text gets zero BERT features (flatter prosody)")
                self._warned_no_bert = True
            return torch.zeros(1024, sum(word2ph))
        return self.bert.phone_features(text, word2ph)

    def plan(
        self, text: str, language: str, prompt_text: str = "", prompt_language: str | None = None
    ) -> list[SentencePlan]:
        """Split ``text`` into sentences and prepare each for the GPT (prompt phones first)."""
        language = check_language(language)
        prompt_language = check_language(prompt_language or language)
        if not isinstance(text, str) or not text.strip():
            raise TextError("text is empty; give at least one word to speak")
        sentences = split_sentences(text, language)
        if not sentences:
            raise TextError(f"nothing to pronounce in {text!r}; give words, not only punctuation")
        prompt = None
        prompt_text = prepare_prompt_text(prompt_text or "", prompt_language)
        if prompt_text:
            prompt = phones_and_bert(prompt_text, prompt_language, self._bert_features)
        plans = []
        for sentence in sentences:
            target = phones_and_bert(sentence, language, self._bert_features)
            ids = (prompt.ids if prompt else []) + target.ids
            bert = torch.cat([prompt.bert, target.bert], 1) if prompt else target.bert
            plans.append(SentencePlan(sentence, target, torch.tensor(ids, dtype=torch.long), bert))
        return plans

    # ------------------------------------------------------------------ synthesis

    def _job(
        self,
        text: str,
        language: str,
        reference,
        prompt_text: str,
        prompt_language: str | None,
        seed: int,
        prior_noise: str,
        pause_s: float,
    ) -> _Job:
        """What :meth:`synthesize` and :meth:`stream` start from (their arguments of the same names)."""
        plans = self.plan(text, language, prompt_text, prompt_language)
        ref = self.prepare_reference(reference)
        generators = self._generators(seed, len(plans))
        return _Job(
            plans=plans,
            style=ref.style,
            prompt=ref.prompt_tokens if prompt_text.strip() else ref.prompt_tokens[:0],
            generators=generators,
            noises=self._prior_noise(prior_noise, seed, generators),
            pause=np.zeros(int(self.sample_rate * pause_s), dtype=np.float32),
        )

    def _generators(self, seed: int, count: int) -> list[torch.Generator]:
        return [torch.Generator(device=self.device).manual_seed(int(seed) + i) for i in range(count)]

    def _prior_noise(self, kind: str, seed: int, generators: list[torch.Generator]) -> list[NoiseSource]:
        """The prior's noise source of each sentence (sentence i: seed + i; see ``synthesize``)."""
        channels = self.sovits.cfg.inter_channels
        if kind == "frames":
            return [PriorNoise(int(seed) + i, channels, self.device) for i in range(len(generators))]
        if kind == "original":
            return [OriginalPriorNoise(gen, channels, self.device) for gen in generators]
        raise ValueError(f"prior_noise must be 'frames' or 'original', got {kind!r}")

    @torch.no_grad()
    def semantic_tokens(
        self,
        plans: list[SentencePlan],
        prompt_tokens: torch.Tensor,
        params: SamplingParams,
        generators: list[torch.Generator],
        max_semantic_tokens: int,
        min_semantic_tokens: int = 0,
        use_cache: bool = True,
        on_token: Callable[[int], None] | None = None,
    ) -> list[torch.Tensor]:
        """Run the GPT on a batch of sentences -> new semantic tokens of each, [T_i] int64."""
        dtype = self.gpt.bert_proj.weight.dtype
        out: list[list[int]] = [[] for _ in plans]
        steps = self.gpt.generate(
            [p.gpt_ids for p in plans],
            [p.gpt_bert.to(dtype) for p in plans],
            prompt_tokens,
            params,
            generators,
            max_semantic_tokens,
            min_semantic_tokens,
            use_cache=use_cache,
        )
        for step in steps:
            finished = set(step.finished)
            for row, token in zip(step.rows, step.tokens, strict=True):
                if row not in finished:  # the stopping step's token is dropped, as the original does
                    out[row].append(token)
            if on_token is not None:
                on_token(len(step.rows))
        # The original never returns an empty sequence ("bad zero prediction" -> one 0 token).
        return [torch.tensor(tokens or [0], dtype=torch.long) for tokens in out]

    def _prior(
        self,
        tokens: list[torch.Tensor],
        plans: list[SentencePlan],
        style: torch.Tensor,
        noises: list[NoiseSource],
        speed: float,
        noise_scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Sample the SoVITS prior of a batch -> z_p [B, C, T'], mask [B, 1, T'], frames per row."""
        device = self.device
        codes = torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True).to(device)
        code_lengths = torch.tensor([t.numel() for t in tokens], device=device)
        text = torch.nn.utils.rnn.pad_sequence([torch.tensor(p.target.ids) for p in plans], batch_first=True).to(device)
        text_lengths = torch.tensor([len(p.target.ids) for p in plans], device=device)
        m_p, logs_p, y_mask, lengths = self.sovits.decode_latent(codes, code_lengths, text, text_lengths, style, speed)
        noise = torch.zeros_like(m_p)
        for i, source in enumerate(noises):
            noise[i, :, : lengths[i]] = source.take(lengths[i])
        return m_p + noise * torch.exp(logs_p) * noise_scale, y_mask, lengths

    @torch.no_grad()
    def vocode(
        self,
        tokens: list[torch.Tensor],
        plans: list[SentencePlan],
        style: torch.Tensor,
        noises: list[NoiseSource],
        speed: float = 1.0,
        noise_scale: float = 0.5,
    ) -> list[np.ndarray]:
        """SoVITS decode of a batch: tokens [T_i] + sentence phones -> float32 waveforms."""
        z_p, y_mask, lengths = self._prior(tokens, plans, style, noises, speed, noise_scale)
        return [_normalised(w) for w in self.sovits.flow_and_vocode(z_p, y_mask, style, lengths)]

    def synthesize(
        self,
        text: str,
        language: str,
        reference,
        *,
        prompt_text: str = "",
        prompt_language: str | None = None,
        seed: int = 0,
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        speed: float = 1.0,
        max_semantic_tokens: int = 1500,
        min_semantic_tokens: int = 0,
        noise_scale: float = 0.5,
        pause_s: float = 0.3,
        batch_size: int = 8,
        prior_noise: str = "frames",
        on_token: Callable[[int], None] | None = None,
    ) -> tuple[int, np.ndarray]:
        """Speak ``text`` in the reference's voice -> (sample rate, float32 mono waveform).

        ``reference``: WAV path or ``(rate, samples)``, 3 to 10 s. ``prompt_text``: its transcript
        (empty = reference-free mode: the GPT gets no prompt tokens). Sentences are decoded in
        batches of ``batch_size`` and joined with ``pause_s`` of silence after each, as the original.
        ``max_semantic_tokens`` bounds each sentence (25 tokens = 1 s); ``min_semantic_tokens``
        forbids EOS before that many.

        ``prior_noise``: how the SoVITS prior's noise is drawn. ``"frames"`` (default) draws it
        frame by frame (:class:`~synth.sovits.PriorNoise`), so that :meth:`stream` can use the
        same noise; ``"original"`` draws it as the original does (``randn`` over the whole
        ``[C, T]`` prior from the sentence's generator, after the GPT's draws), which reproduces
        the original's waveform for a given seed.
        """
        params = SamplingParams(
            top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=repetition_penalty
        )
        _check_knobs(speed, max_semantic_tokens, noise_scale)
        job = self._job(text, language, reference, prompt_text, prompt_language, seed, prior_noise, pause_s)
        pieces: list[np.ndarray] = []
        for start in range(0, len(job.plans), max(1, batch_size)):
            group = slice(start, start + batch_size)
            tokens = self.semantic_tokens(
                job.plans[group],
                job.prompt,
                params,
                job.generators[group],
                max_semantic_tokens,
                min_semantic_tokens,
                on_token=on_token,
            )
            for wave in self.vocode(tokens, job.plans[group], job.style, job.noises[group], speed, noise_scale):
                pieces += [wave, job.pause]
        return self.sample_rate, np.concatenate(pieces).astype(np.float32)

    def stream(
        self,
        text: str,
        language: str,
        reference,
        *,
        prompt_text: str = "",
        prompt_language: str | None = None,
        seed: int = 0,
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        speed: float = 1.0,
        max_semantic_tokens: int = 1500,
        min_semantic_tokens: int = 0,
        noise_scale: float = 0.5,
        pause_s: float = 0.3,
        chunk_tokens: int = 25,
        exact: bool = False,
        prior_noise: str = "frames",
        on_token: Callable[[int], None] | None = None,
        first_chunk_tokens: int | None = None,
    ) -> Iterator[np.ndarray]:
        """Like :meth:`synthesize`, but yields float32 chunks as semantic tokens arrive.

        The GPT draws the same tokens, and the SoVITS prior the same noise, as :meth:`synthesize`
        with the same arguments; each sentence is followed by a chunk of ``pause_s`` silence.

        ``exact=False`` (default, low latency): every ``chunk_tokens`` tokens (25 = 1 s) the
        sentence so far goes through SoVITS and its audio is released, less the last
        ``HOLD_FRAMES`` latent frames (about 1 s of audio), which wait for more right-hand
        context; consecutive pieces are cross-faded. ``first_chunk_tokens`` (default
        ``chunk_tokens``) sizes the first piece of each sentence apart: a smaller one comes sooner.
        The SoVITS encoders attend over the whole sentence, so audio made from part of it differs
        somewhat from :meth:`synthesize`'s (docs/synth.md gives the measured size). A stream
        cannot rescale audio it has released: where the original scales a sentence peaking above
        1 down to peak 1, each piece here is scaled by the highest peak seen so far in its sentence.

        ``exact=True``: each sentence's audio is released, in pieces of ``chunk_tokens``, once its
        last token is known; joined, it equals :meth:`synthesize` with ``batch_size=1`` (float
        tolerance with other batch sizes). First audio comes after the first sentence's tokens.
        ``prior_noise="original"`` (see :meth:`synthesize`) needs ``exact=True``.
        """
        params = SamplingParams(
            top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=repetition_penalty
        )
        _check_knobs(speed, max_semantic_tokens, noise_scale)
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
        if prior_noise == "original" and not exact:
            raise ValueError(
                "prior_noise='original' draws the noise of a whole sentence at once, which a "
                "low-latency stream cannot wait for: use exact=True or prior_noise='frames'"
            )
        job = self._job(text, language, reference, prompt_text, prompt_language, seed, prior_noise, pause_s)
        dtype = self.gpt.bert_proj.weight.dtype
        for i, plan in enumerate(job.plans):
            sentence = _SentenceStream(
                self, plan, job.style, job.noises[i], speed, noise_scale, chunk_tokens, exact, first_chunk_tokens
            )
            steps = self.gpt.generate(
                [plan.gpt_ids],
                [plan.gpt_bert.to(dtype)],
                job.prompt,
                params,
                [job.generators[i]],
                max_semantic_tokens,
                min_semantic_tokens,
            )
            try:
                for step in steps:
                    if on_token is not None:
                        on_token(1)
                    if not step.finished:  # the stopping step's token is dropped, as in synthesize
                        yield from sentence.add(step.tokens[0])
            finally:
                steps.close()
            yield from sentence.finish()
            yield job.pause.copy()


# Latent frames (50 per second at speed 1) that a low-latency stream holds back until they have
# right-hand context: the SoVITS encoders attend over the whole sentence, so no margin makes the
# released frames final; 48 keeps the measured error small (docs/synth.md) for about 1 s of delay.
HOLD_FRAMES = 48
VOCODER_CONTEXT = 16  # frames either side of a generator window (its receptive field is about 12)
FLOW_CONTEXT = 32  # frames either side of a flow window (4 couplings of 4 convolutions of width 5)
CROSSFADE_FRAMES = 2  # frames over which consecutive low-latency pieces are blended


class _SentenceStream:
    """Turns one sentence's semantic tokens, as they arrive, into audio pieces (see Synthesizer.stream)."""

    def __init__(
        self,
        tts: Synthesizer,
        plan: SentencePlan,
        style: torch.Tensor,
        noise: NoiseSource,
        speed: float,
        noise_scale: float,
        chunk_tokens: int,
        exact: bool,
        first_chunk_tokens: int | None = None,
    ) -> None:
        self.tts, self.plan, self.style, self.noise = tts, plan, style, noise
        self.speed, self.noise_scale, self.chunk_tokens, self.exact = speed, noise_scale, chunk_tokens, exact
        self.first_chunk_tokens = chunk_tokens if first_chunk_tokens is None else first_chunk_tokens
        # Entered around each SoVITS piece (synth.batching's VocoderGate takes turns between streams).
        self.gate: Callable[[], AbstractContextManager] = nullcontext
        self.spf = tts.sovits.cfg.samples_per_frame
        self.tokens: list[int] = []
        self.emitted = 0  # latent frames released
        self.tail: torch.Tensor | None = None  # audio of frames past `emitted` from the last piece, to blend
        self.peak = 1.0  # the highest peak released so far (pieces are scaled by it when above 1)

    def add(self, token: int) -> Iterator[np.ndarray]:
        self.tokens.append(token)
        # A piece once ``chunk_tokens`` tokens' worth of frames wait beyond those held back
        # (``first_chunk_tokens`` for the first piece).
        chunk = self.chunk_tokens if self.emitted else self.first_chunk_tokens
        if not self.exact and (
            2 * len(self.tokens) - HOLD_FRAMES * self.speed - self.emitted * self.speed >= 2 * chunk
        ):
            yield from self._release(final=False)

    def finish(self) -> Iterator[np.ndarray]:
        if not self.tokens:
            self.tokens = [0]  # as synthesize: never an empty sentence
        if self.exact:
            with self.gate():
                wave = self.tts.vocode(
                    [torch.tensor(self.tokens)], [self.plan], self.style, [self.noise], self.speed, self.noise_scale
                )[0]
            step = max(1, round(2 * self.chunk_tokens / self.speed)) * self.spf
            for start in range(0, wave.shape[0], step):
                yield wave[start : start + step]
        else:
            # (A sentence that ends before its first piece is vocoded whole: split there, the second
            # piece's flow and generator windows would cover most of the first's again, about twice the
            # SoVITS work of the sentence for 30 % less wait.)
            yield from self._release(final=True)

    def _release(self, final: bool) -> Iterator[np.ndarray]:
        """Vocode frames [emitted, end) of the sentence so far; the flow and the generator see a window only."""
        with self.gate():
            piece = self._piece(final)
        if piece is not None:
            yield piece

    @torch.no_grad()
    def _piece(self, final: bool) -> np.ndarray | None:
        sovits = self.tts.sovits
        z_p, mask, lengths = self.tts._prior(
            [torch.tensor(self.tokens)], [self.plan], self.style, [self.noise], self.speed, self.noise_scale
        )
        frames = lengths[0]
        end = frames if final else frames - HOLD_FRAMES
        if end <= self.emitted:
            return None
        stop = end if final else min(frames, end + CROSSFADE_FRAMES)
        lo = max(0, self.emitted - VOCODER_CONTEXT - FLOW_CONTEXT)
        hi = min(frames, stop + VOCODER_CONTEXT + FLOW_CONTEXT)
        z = sovits.flow.reverse(z_p[:, :, lo:hi], mask[:, :, lo:hi], self.style) * mask[:, :, lo:hi]
        # The generator on frames [emitted, stop) with VOCODER_CONTEXT frames either side.
        v_lo, v_hi = max(lo, self.emitted - VOCODER_CONTEXT), min(hi, stop + VOCODER_CONTEXT)
        wave = sovits.dec(z[:, :, v_lo - lo : v_hi - lo], self.style)[0, 0]
        piece = wave[(self.emitted - v_lo) * self.spf : (stop - v_lo) * self.spf]
        if self.tail is not None:
            n = min(self.tail.shape[0], piece.shape[0])
            ramp = torch.linspace(0.0, 1.0, n + 2, dtype=piece.dtype, device=piece.device)[1:-1]
            piece[:n] = self.tail[:n] * (1 - ramp) + piece[:n] * ramp
        cut = (end - self.emitted) * self.spf
        self.tail = None if final else piece[cut:]
        self.emitted = end
        piece = piece[:cut]
        self.peak = max(self.peak, float(piece.abs().max()))
        return (piece / self.peak).float().cpu().numpy()


def _normalised(wave: torch.Tensor) -> np.ndarray:
    """As the original: a waveform peaking above 1 is scaled down to peak at 1."""
    peak = wave.abs().max()
    if peak > 1:
        wave = wave / peak
    return wave.float().cpu().numpy()


def _check_knobs(speed: float, max_tokens: int, noise_scale: float) -> None:
    if not 0.25 <= speed <= 4.0:
        raise ValueError(f"speed must be between 0.25 and 4, got {speed}")
    if max_tokens < 1:
        raise ValueError(f"max_semantic_tokens must be at least 1, got {max_tokens}")
    if noise_scale < 0:
        raise ValueError(f"noise_scale must not be negative, got {noise_scale}")


__all__ = ["Synthesizer", "PreparedReference", "SentencePlan", "PRECISIONS"]
