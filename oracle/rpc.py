"""Plain JSON-RPC over HTTP for the oracle's hot paths.

web3's request pipeline (middleware, formatters, validation) costs a few milliseconds a call; on
the paths run for every request and every batch the oracle talks JSON-RPC itself, several
calls per HTTP round trip. Connection failures raise ``requests`` exceptions (transient: the
callers retry); an error answer raises :class:`oracle.errors.RpcError` with the node's code and message.
"""

from __future__ import annotations

from typing import Any

import requests

from oracle.errors import RpcError


class JsonRpc:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._session = requests.Session()
        # The proxy settings are read from the environment once, not on every call (requests scans the
        # whole environment per request: about a millisecond of CPU each, several times per request served).
        self._proxies = requests.utils.get_environ_proxies(url)
        self._session.trust_env = False

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Results of several calls in one HTTP request, in order."""
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": params} for i, (method, params) in enumerate(calls)
        ]
        response = self._session.post(self.url, json=payload, timeout=self.timeout, proxies=self._proxies)
        response.raise_for_status()
        answers = sorted(response.json(), key=lambda answer: answer["id"])
        for (method, _), answer in zip(calls, answers, strict=True):
            if "error" in answer:
                raise RpcError(method, answer["error"])
        return [answer.get("result") for answer in answers]

    def call(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]


def to_int(value: str | int | None) -> int:
    """A JSON-RPC quantity ('0x1a') as an int."""
    if value is None:
        return 0
    return value if isinstance(value, int) else int(value, 16)
