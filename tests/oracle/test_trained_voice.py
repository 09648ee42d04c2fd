"""A voice fine-tuned by `python -m synth train` (the tiny trial: random tiny base, espeak-ng recordings) is
minted the creator's way (its folder packed, sealed to the operator, registered, offered, by
voicemarket.market.minting.mint_voice, what `ape run mint` runs) and the oracle serves it: its voice loader
fetches, opens and loads the trained bundle and speaks with the trained reference clip and transcript; in
the deep test a buyer's on-chain request is fulfilled by the oracle's real processes with audio.

The tiny trial runs once per test session (tests/synth/test_train_voice.py checks the same run)."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import yaml

from oracle.router import RouterClient
from oracle.runtime import make_store
from oracle.serve import synthesis_kwargs
from oracle.voices import VoiceCache
from oracle_helpers import OPERATOR_INDEX, Oracle, wait_for
from synth.train.tiny import TinyModel, TinyTraining, train_tiny_voice
from voicemarket.content.multiformats import CID
from voicemarket.dev.sandbox import LICENCE_PRICE, PublishedVoice, TinyVoiceFiles, account_key
from voicemarket.market import chain as vm
from voicemarket.market.minting import mint_voice, parse_offers
from voicemarket.protocol import Language

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sandbox) -> TinyTraining:
    """The session's tiny trial, fine-tuned from the oracle tests' tiny random voice."""
    files = sandbox.tiny
    model = TinyModel(files.gpt, files.sovits, files.hubert_dir, files.bert_dir)
    return train_tiny_voice(tmp_path_factory.getbasetemp() / "tiny-training", model)


def mint(sandbox, creator, operator, tiny, folder, preview: str | None = None) -> PublishedVoice:  # noqa: ANN001
    """The trained voice folder (copied to ``folder``) minted by ``creator`` for the operator, with a buyout
    offer. ``preview``: a clip voice.yaml names instead of its preview line (which the model then speaks)."""
    shutil.copytree(tiny.voice, folder)  # minting writes the spoken preview beside it; the session's run stays
    if preview is not None:
        spec = yaml.safe_load((folder / "voice.yaml").read_text())
        (folder / "voice.yaml").write_text(yaml.safe_dump({**spec, "preview": preview}, sort_keys=False))
    sandbox.add_operator(operator)
    offers = parse_offers({"offers": [{"tier": "buyout", "price": f"{LICENCE_PRICE} wei"}]}, sandbox.d)
    minted = mint_voice(
        creator,
        sandbox.d,
        folder,
        offers=offers,
        operators=[operator.address],
        store=sandbox.store,
        hubert_dir=tiny.base / "chinese-hubert-base",
        bert_dir=tiny.base / "chinese-roberta-wwm-ext-large",
        preview_max_tokens=25,
    )
    spec = yaml.safe_load((folder / "voice.yaml").read_text())
    files = TinyVoiceFiles(
        folder / spec["gpt"],
        folder / spec["sovits"],
        tiny.base / "chinese-hubert-base",
        tiny.base / "chinese-roberta-wwm-ext-large",
        folder / "reference.wav",
    )
    return PublishedVoice(minted.model_id, minted.keyring_cid, minted.bundle_cid, minted.offers[0].offer_id, files)


@pytest.fixture(scope="module")
def trained(sandbox, accounts, operator, tiny, tmp_path_factory) -> PublishedVoice:
    """Minted with the clip the trainer had the new voice speak as its check (training/preview-check.wav) as
    the public preview: the voice's own speech, spoken once already; ``ape run mint`` would have the model
    speak voice.yaml's preview line in a child process (tens of seconds on a busy machine: the deep test)."""
    folder = tmp_path_factory.mktemp("creator") / "ada"
    return mint(sandbox, accounts[1], operator, tiny, folder, preview="training/preview-check.wav")


def test_the_oracle_loads_the_trained_voice_from_its_bundle_and_speaks(
    sandbox, trained, tiny, operator, chain, tmp_path
):
    env = sandbox.oracle_env(
        rpc_url=chain.provider.uri,
        redis_url="redis://127.0.0.1:9",  # the voice loader does not use Redis
        operator_index=OPERATOR_INDEX,
        voices=[trained],
        work_dir=tmp_path,
    )
    settings = Oracle(sandbox, env, tmp_path / "logs").settings()
    router = RouterClient.connect(settings.rpc_url, settings.router, settings.registry)
    voice = VoiceCache(settings, router, account_key(operator), make_store(settings.store)).get(trained.model_id)
    # What it opened is what the trainer wrote: the fine-tuned checkpoints, its reference clip and transcript.
    unpacked = settings.models_dir / f"{trained.model_id:064x}"
    spec = yaml.safe_load((tiny.voice / "voice.yaml").read_text())
    for packed, name in (("gpt.ckpt", spec["gpt"]), ("sovits.pth", spec["sovits"])):
        assert (unpacked / packed).read_bytes() == (tiny.voice / name).read_bytes(), name
    assert voice.reference.read_bytes() == (tiny.voice / "reference.wav").read_bytes()
    assert (voice.prompt_text, voice.prompt_language) == (spec["reference"]["text"], "en")
    assert voice.languages == ("en",)
    # It speaks as a worker has it speak a request's parameters.
    language, kwargs = synthesis_kwargs(vm.SynthesisParams(Language.parse("en"), seed=3).pack(), voice, settings)
    rate, wave = voice.synthesizer.synthesize("A request for the new voice.", language, str(voice.reference), **kwargs)
    assert rate == 32000 and wave.shape[0] >= 640 and float(abs(wave).max()) > 0


@pytest.mark.deep
def test_an_on_chain_request_for_the_trained_voice_is_fulfilled_with_audio(
    sandbox, accounts, tiny, buyers, operator, start_oracle, chain, tmp_path
):
    trained = mint(sandbox, accounts[1], operator, tiny, tmp_path / "ada")  # as `ape run mint ada` does
    buyer = buyers[0]
    licence = sandbox.buy_license(buyer, trained)
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=1, voices=[trained])
    request_id = sandbox.request(buyer, trained, licence, operator, "Hello from a voice I trained myself.", seed=1)

    def outcome():
        return [e for e in client.outcome_logs(first_block) if e[1] == request_id]

    wait_for(lambda: outcome(), 120, "the request for the trained voice to be fulfilled", oracle)
    [(name, _, args)] = outcome()
    assert name == "SynthesisFulfilled"
    audio = sandbox.store.get_bytes(CID.from_bytes(bytes(args["outputCid"])))
    assert hashlib.sha256(audio).digest() == bytes(args["outputDigest"])
    assert audio[:4] == b"RIFF" and len(audio) > 1000
