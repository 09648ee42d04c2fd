"""Stores: the local content-addressed directory, and the Kubo RPC client.

The Kubo tests are PROTOCOL-LEVEL ONLY: no Kubo binary can be installed on this machine,
so they run the client against a small HTTP server in this file that speaks the documented
RPC subset (/api/v0/add, cat, pin/add, pin/ls) and computes CIDs with voicemarket's own
code. They prove the client's requests, streaming, error handling and verification, not
that a real Kubo node returns the same CIDs (that agreement rests on test_cid.py's
comparison with the reference JavaScript importer).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicemarket.content.cid import UnixFSBuilder, cid_of_bytes
from voicemarket.content.multiformats import CID, DAG_PB
from voicemarket.content.store import KuboStore, LocalStore, copy_between
from voicemarket.dev.services import LOOPBACK
from voicemarket.errors import ContentNotFound, IntegrityError, StoreError

# ---------------------------------------------------------------- local store


@pytest.mark.parametrize("version", [0, 1])
def test_local_store_round_trip(tmp_path, version):
    store = LocalStore(tmp_path / "store", cid_version=version)
    data = b"voice" * 100_000
    cid = store.put_bytes(data)
    assert cid == cid_of_bytes(data, version) and store.has(cid)
    assert store.get_bytes(cid) == data
    (tmp_path / "in.bin").write_bytes(data)
    assert store.put_file(tmp_path / "in.bin") == cid
    assert store.get_to_file(str(cid), tmp_path / "out.bin").read_bytes() == data
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_cidv0_objects_are_found_by_the_cidv1_form_the_contracts_return(tmp_path):
    """The registry returns every CID as CIDv1; a CIDv0 store's objects answer to it, and stay verified."""
    store = LocalStore(tmp_path / "store", cid_version=0)
    for data in (b"small", bytes(700_000)):
        cid = store.put_bytes(data)
        as_v1 = CID.from_bytes(b"\x01\x70\x12\x20" + cid.digest)  # what bundleCid(modelId) returns
        assert store.has(as_v1) and store.get_bytes(as_v1) == data
        store.verify(as_v1)
    assert not store.has(CID(1, DAG_PB, bytes(32)))


def test_missing_content_is_a_clear_error(tmp_path):
    store = LocalStore(tmp_path / "store")
    absent = cid_of_bytes(b"never stored", 1)
    assert not store.has(absent)
    with pytest.raises(ContentNotFound, match="not in the local store"):
        store.get_to_file(absent, tmp_path / "out")
    with pytest.raises(ContentNotFound, match="not a CID"):
        store.get_bytes("QmNotACid")
    assert not (tmp_path / "out").exists()


@given(data=st.binary(min_size=1, max_size=4000), where=st.integers(0), value=st.integers(1, 255))
def test_a_corrupted_object_is_never_returned(tmp_path_factory, data, where, value):
    """Changing any byte of a stored object makes every read fail, and no output file appears."""
    root = tmp_path_factory.mktemp("store")
    store = LocalStore(root)
    cid = store.put_bytes(data)
    path = store.path_of(cid)
    damaged = bytearray(path.read_bytes())
    damaged[where % len(damaged)] ^= value
    path.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError, match="not saved"):
        store.get_to_file(cid, root / "out")
    with pytest.raises(IntegrityError):
        store.verify(cid)
    assert not (root / "out").exists()


def test_a_failed_write_stores_nothing(tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.write(b"half a model")
        raise RuntimeError("the packer failed")
    assert list((tmp_path / "store" / "objects").rglob("*")) == []
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


# ---------------------------------------------------------------- Kubo RPC client (protocol level)


class FakeKubo(BaseHTTPRequestHandler):
    """The documented subset of Kubo's RPC; CIDs computed with voicemarket's own code (see module docstring)."""

    blocks: dict[str, bytes]
    pins: set[str]
    requests: list[tuple[str, dict]]
    misbehave: str | None = None

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, message: str) -> None:
        self._reply(500, json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode())

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        self.requests.append((url.path, params))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if url.path == "/api/v0/add":
            boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
            part = body.split(b"--" + boundary)[1]
            content = part.split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")]
            assert params["chunker"] == "size-262144"
            version = int(params["cid-version"])
            builder = UnixFSBuilder(version, raw_leaves=params["raw-leaves"] == "true")
            builder.update(content)
            cid = str(builder.finish())
            if self.misbehave == "other-import-settings":
                cid = str(cid_of_bytes(content + b"!", version))
            self.blocks[cid] = content
            if params.get("pin") == "true":
                self.pins.add(cid)
            self._reply(200, json.dumps({"Name": "blob", "Hash": cid, "Size": str(len(content))}).encode() + b"\n")
        elif url.path == "/api/v0/cat":
            if self.misbehave == "hang":  # as Kubo does while it searches the network for absent content
                time.sleep(1.5)
            content = self.blocks.get(params["arg"])
            if content is None:
                return self._error(f"block was not found locally (offline): ipld: could not find {params['arg']}")
            if self.misbehave == "corrupt-cat":
                content = content[:-1] + bytes([content[-1] ^ 1])
            self._reply(200, content, "text/plain")
        elif url.path == "/api/v0/pin/add":
            if params["arg"] not in self.blocks:
                return self._error("block was not found locally (offline)")
            self.pins.add(params["arg"])
            self._reply(200, json.dumps({"Pins": [params["arg"]]}).encode())
        elif url.path == "/api/v0/pin/ls":
            if params["arg"] not in self.pins:
                return self._error(f"path '{params['arg']}' is not pinned")
            self._reply(200, json.dumps({"Keys": {params["arg"]: {"Type": "recursive"}}}).encode())
        else:
            self._reply(404, b"404 page not found", "text/plain")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (timeout tests) breaks the pipe; nothing to report


@pytest.fixture
def fake_kubo():
    handler = type("Handler", (FakeKubo,), {"blocks": {}, "pins": set(), "requests": [], "misbehave": None})
    server = QuietServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("version", [0, 1])
def test_kubo_client_protocol_round_trip(fake_kubo, tmp_path, version):
    handler, url = fake_kubo
    store = KuboStore(url, cid_version=version)
    data = bytes(range(256)) * 3000  # 768,000 bytes: three chunks and a parent node
    cid = store.put_bytes(data)
    assert cid == cid_of_bytes(data, version)
    path, params = handler.requests[-1]
    assert path == "/api/v0/add"
    assert params["cid-version"] == str(version) and params["raw-leaves"] == ("true" if version else "false")
    assert params["pin"] == "true" and params["chunker"] == "size-262144"
    assert store.has(cid)
    assert store.get_bytes(cid) == data
    store.pin(cid)
    assert handler.requests[-1][0] == "/api/v0/pin/add"
    other = cid_of_bytes(b"elsewhere", version)
    assert not store.has(other)
    with pytest.raises(ContentNotFound):
        store.get_to_file(other, tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_kubo_client_refuses_a_node_that_disagrees_or_corrupts(fake_kubo, tmp_path):
    handler, url = fake_kubo
    store = KuboStore(url)
    handler.misbehave = "other-import-settings"
    with pytest.raises(IntegrityError, match="Import"):
        store.put_bytes(b"model bytes")
    handler.misbehave = None
    cid = store.put_bytes(b"model bytes")
    handler.misbehave = "corrupt-cat"
    with pytest.raises(IntegrityError, match="not saved"):
        store.get_to_file(cid, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_kubo_client_says_when_content_does_not_arrive_in_time(fake_kubo, tmp_path):
    handler, url = fake_kubo
    handler.misbehave = "hang"
    with pytest.raises(StoreError, match="gave no answer to cat"):
        KuboStore(url, timeout=0.3).get_to_file(cid_of_bytes(b"far away", 1), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_kubo_client_says_when_the_node_is_down(tmp_path):
    from voicemarket.dev.services import free_port

    store = KuboStore(f"http://{LOOPBACK}:{free_port()}", timeout=2)
    with pytest.raises(StoreError, match="unreachable"):
        store.put_bytes(b"x")
    with pytest.raises(StoreError, match="unreachable"):
        store.get_to_file(cid_of_bytes(b"x", 1), tmp_path / "out")


def test_copy_from_local_store_to_kubo(fake_kubo, tmp_path):
    _, url = fake_kubo
    local = LocalStore(tmp_path / "store")
    cid = local.put_bytes(b"a sealed bundle" * 1000)
    assert copy_between(local, KuboStore(url), cid) == cid
