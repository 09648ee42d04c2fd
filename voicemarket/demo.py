"""`make demo`: the end-to-end marketplace story.

What runs today: a private anvil chain and redis-server on 127.0.0.1 are started, the
toolchain is exercised on them, and both are stopped. The marketplace story (mint, buy,
synthesise, fulfil, split) is added as its parts land; until then this says plainly what
it did and what it did not do.
"""

from __future__ import annotations

import shutil
import sys

from voicemarket.services import RedisServer


def main() -> int:
    print("voicemarket demo")
    missing = [tool for tool in ("anvil", "redis-server") if shutil.which(tool) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)}. Run `make setup`.")
        return 1
    import ape

    with ape.networks.parse_network_choice("ethereum:local:foundry") as provider, RedisServer() as redis_server:
        deployer = ape.accounts.test_accounts[0]
        token = deployer.deploy(ape.project.MockStablecoin)
        token.mint(deployer, 1_000_000, sender=deployer)
        print(f"- started anvil at {provider.uri} (chain id {provider.chain_id})")
        print(f"- started redis-server at {redis_server.url} (pid {redis_server.pid})")
        print(f"- deployed a test stablecoin at {token.address}; minted {token.balanceOf(deployer) / 1e6:.2f} mUSD")
    print("- stopped anvil and redis-server")
    print("Not done yet: minting a voice model, licences, synthesis and fulfilment land with their issues.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
