"""Fixtures for the speech API tests: one market and one `python -m oracle api` process per module
(real uvicorn, its own synth engine with a tiny voice, a private redis-server, the session's
anvil), and buyers with pay-per-use licences and ETH channels with the operator.

Ape's per-test isolation reverts the chain after each test while the API's Redis keeps what it
accepted: every test therefore uses its own buyer and licence (bought here, at module scope),
and redeems through :class:`oracle.api.redeemer.Redeemer` itself (the API's own redeemer runs
on an interval too long to fire during a test).
"""

from __future__ import annotations

import sys
import time

import httpx
import pytest

from api_helpers import BUYERS, DEPOSIT, OPERATOR_INDEX, ROOT, ApiWorld, Buyer, buy, publish_ppu
from voicemarket.dev.sandbox import Sandbox, tiny_voice_files
from voicemarket.dev.services import ManagedProcess, RedisServer, free_port
from voicemarket.protocol import ETH


@pytest.fixture(scope="module")
def api_world(accounts, chain, tmp_path_factory, project):
    root = tmp_path_factory.mktemp("api")
    sandbox = Sandbox.deploy(accounts[0], root / "market")
    files = tiny_voice_files(root / "voice")
    operator = accounts[OPERATOR_INDEX]
    voice = sandbox.publish_voice(accounts[1], [operator], files=files)
    ppu = publish_ppu(sandbox, voice, accounts[1])
    channels = project.PaymentChannels.at(sandbox.d.licenses.paymentChannels())
    redis = RedisServer().start()
    port = free_port()
    env = sandbox.oracle_env(
        rpc_url=chain.provider.uri,
        redis_url=redis.url,
        operator_index=OPERATOR_INDEX,
        voices=[voice],
        work_dir=root,
        max_semantic_tokens=12,
    )
    env.update(
        {
            "ORACLE_API_PORT": str(port),
            "ORACLE_API_PUBLIC_URI": f"http://127.0.0.1:{port}",
            "ORACLE_API_DOMAIN": "127.0.0.1",
            "ORACLE_API_CHUNK_TOKENS": "4",
            "ORACLE_API_LICENCE_CACHE_S": "0.5",
            "ORACLE_API_EVENTS_POLL_S": "0.3",
            "ORACLE_API_BODY_TIMEOUT_S": "1.5",
            "ORACLE_API_SEND_TIMEOUT_S": "3",
            "ORACLE_API_REDEEM_INTERVAL_S": "3600",
            "ORACLE_API_RATE_PER_MINUTE": "600",
            "ORACLE_API_MAX_TEXT_CHARS": "200",
            "ORACLE_API_SYNTH_SLOTS": "4",
        }
    )
    log = root / "api.log"
    process = ManagedProcess([sys.executable, "-m", "oracle", "api"], log_path=log, env=env, cwd=ROOT, name="api")
    process.start()
    buyers: list[Buyer] = []
    try:
        for _ in range(BUYERS):
            account = accounts.generate_test_account()
            chain.set_balance(account, 10**20)
            license_id = buy(sandbox, ppu, account)
            channels.deposit(operator, ETH, DEPOSIT, value=DEPOSIT, sender=account)
            buyers.append(Buyer(account, license_id, None))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v1/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start:\n{process.log_tail(40)}")
            time.sleep(0.2)
        world = ApiWorld(sandbox, voice, operator, url, env, process, buyers, ppu)
        for b in buyers:
            b.client = world.client(b.account)
        yield world
    finally:
        for b in buyers:
            if b.client is not None:
                b.client.close()
        process.stop()
        redis.close()


@pytest.fixture(scope="module")
def channels(api_world, project):
    return project.PaymentChannels.at(api_world.sandbox.d.licenses.paymentChannels())
