"""Content-addressed stores: a local directory (the default) and a Kubo node over its HTTP RPC.

Both speak the same small API, by CID::

    store.put_file(path) -> CID          store.get_to_file(cid, dest) -> Path
    store.put_bytes(data) -> CID         store.get_bytes(cid) -> bytes
    store.has(cid) -> bool               store.pin(cid)
    with store.writer() as w: w.write(...)   # then w.cid

CIDs are Kubo's (see :mod:`voicemarket.content.cid`): the store's ``cid_version`` picks CIDv1 with
raw leaves (the default here) or CIDv0. Every read recomputes the CID of the bytes it
received and compares before anything sees them: content that does not match raises
:class:`~voicemarket.errors.IntegrityError`, missing content raises
:class:`~voicemarket.errors.ContentNotFound`, and in both cases no destination file is left
behind (files are written to a temporary name and renamed only once verified).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import tempfile
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from voicemarket.content.cid import CHUNK_SIZE, READ_SIZE, UnixFSBuilder, builder_for, candidate_builders, matches
from voicemarket.content.files import atomic_output
from voicemarket.content.multiformats import CID, DAG_PB
from voicemarket.errors import ContentNotFound, ContentTooLarge, IntegrityError, InvalidCID, StoreError

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _as_cid(cid: CID | str) -> CID:
    try:
        return CID.parse(cid)
    except InvalidCID as exc:
        raise ContentNotFound(f"{cid!r} is not a CID: {exc}") from None


class VerifyingCopy:
    """Copies a stream of bytes into a file while computing its CID under ``expected``'s rules."""

    def __init__(self, expected: CID, out: BinaryIO, builders: list[UnixFSBuilder] | None = None) -> None:
        self.expected = expected
        self._builders = candidate_builders(expected) if builders is None else builders
        self._out = out

    def write(self, data: bytes) -> None:
        for builder in self._builders:
            builder.update(data)
        self._out.write(data)

    def check(self, where: str) -> None:
        if not matches(self.expected, self._builders):
            actual = self._builders[0].finish()
            raise IntegrityError(
                f"{where} returned content whose CID is {actual}, not the requested {self.expected}: "
                "it is corrupt or was substituted; it was not saved"
            )


class StoreWriter:
    """Bytes written here become one stored file; :attr:`cid` is set when the block ends."""

    def __init__(self, builder: UnixFSBuilder, out: BinaryIO) -> None:
        self._builder = builder
        self._out = out
        self.cid: CID | None = None
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._builder.update(data)
        self._out.write(data)
        self.size += len(data)


class ContentStore(ABC):
    """What every store offers. ``cid_version`` is that of the CIDs ``put_*`` return."""

    cid_version: int

    @abstractmethod
    def get_to_file(self, cid: CID | str, dest: str | Path, *, max_bytes: int | None = None) -> Path:
        """Write the verified content to ``dest`` (atomically); raise if missing or corrupt.

        ``max_bytes``: raise :class:`ContentTooLarge` instead when the content is larger — from its
        size before reading where the store knows it, else once that many bytes were read."""

    @abstractmethod
    def writer(self) -> Iterator[StoreWriter]:
        """A context manager: write the content; on a clean exit it is stored and ``.cid`` is set."""

    @abstractmethod
    def has(self, cid: CID | str) -> bool: ...

    @abstractmethod
    def pin(self, cid: CID | str) -> None: ...

    def put_file(self, path: str | Path) -> CID:
        with self.writer() as writer, open(path, "rb") as handle:
            while piece := handle.read(READ_SIZE):
                writer.write(piece)
        assert writer.cid is not None
        return writer.cid

    def put_bytes(self, data: bytes) -> CID:
        with self.writer() as writer:
            writer.write(data)
        assert writer.cid is not None
        return writer.cid

    def get_bytes(self, cid: CID | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """The verified content, for small documents (keyrings, metadata); refuses more than ``max_bytes``."""
        with tempfile.TemporaryDirectory(prefix="vm-get-") as scratch:
            path = self.get_to_file(cid, Path(scratch) / "content")
            if path.stat().st_size > max_bytes:
                raise StoreError(f"{cid} holds {path.stat().st_size} bytes, more than the {max_bytes} asked for")
            return path.read_bytes()


class LocalStore(ContentStore):
    """A content-addressed directory: ``<root>/objects/<last 2 chars>/<cid>``, temporaries in ``<root>/tmp``."""

    def __init__(self, root: str | Path, *, cid_version: int = 1) -> None:
        if cid_version not in (0, 1):
            raise ValueError("cid_version must be 0 or 1")
        self.root = Path(root)
        self.cid_version = cid_version
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r}, cid_version={self.cid_version})"

    def path_of(self, cid: CID | str) -> Path:
        """Where the object stored under exactly this CID lives (it may not exist)."""
        text = str(_as_cid(cid))
        return self.root / "objects" / text[-2:] / text

    def _locate(self, cid: CID | str) -> tuple[Path, UnixFSBuilder]:
        """The stored object for ``cid`` and the builder to verify it with.

        The contracts give every CID as CIDv1; an object stored by a CIDv0 store is found
        under its ``Qm...`` name too (same digest, verified with the CIDv0 layout).
        """
        cid = _as_cid(cid)
        path = self.path_of(cid)
        if not path.is_file() and cid.version == 1 and cid.codec == DAG_PB:
            legacy = self.path_of(CID(0, DAG_PB, cid.digest))
            if legacy.is_file():
                return legacy, UnixFSBuilder(0)
        if not path.is_file():
            raise ContentNotFound(f"{cid} is not in the local store {self.root}")
        return path, builder_for(cid)

    @contextmanager
    def writer(self) -> Iterator[StoreWriter]:
        fd, tmp = tempfile.mkstemp(prefix="put-", suffix=".part", dir=self.root / "tmp")
        tmp_path = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                writer = StoreWriter(UnixFSBuilder(self.cid_version), out)
                yield writer
                out.flush()
                os.fsync(out.fileno())
            cid = writer._builder.finish()
            final = self.path_of(cid)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, final)  # same bytes under the same CID: replacing is harmless
            writer.cid = cid
        finally:
            if tmp_path.exists():
                tmp_path.unlink()

    def has(self, cid: CID | str) -> bool:
        try:
            self._locate(cid)
        except ContentNotFound:
            return False
        return True

    def pin(self, cid: CID | str) -> None:
        if not self.has(cid):
            raise ContentNotFound(f"{cid} is not in {self.root}: nothing to pin")

    def get_to_file(self, cid: CID | str, dest: str | Path, *, max_bytes: int | None = None) -> Path:
        cid = _as_cid(cid)
        source, builder = self._locate(cid)
        try:
            handle = open(source, "rb")
        except FileNotFoundError:
            raise ContentNotFound(f"{cid} is not in the local store {self.root}") from None
        size = os.fstat(handle.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            handle.close()
            raise ContentTooLarge(f"{cid} holds {size} bytes, more than the {max_bytes} asked for", size)
        with handle, atomic_output(dest) as out:
            copy = VerifyingCopy(cid, out, [builder])
            while piece := handle.read(READ_SIZE):
                copy.write(piece)
            copy.check(f"the local store ({source})")
        return Path(dest)

    def verify(self, cid: CID | str) -> None:
        """Re-hash one stored object; raise :class:`IntegrityError` if it no longer matches its CID."""
        cid = _as_cid(cid)
        path, builder = self._locate(cid)
        with open(path, "rb") as handle:
            while piece := handle.read(READ_SIZE):
                builder.update(piece)
        if not matches(cid, [builder]):
            raise IntegrityError(f"the stored object {path} does not match its CID {cid}")

    def local_path(self, cid: CID | str) -> Path:
        """The stored object's path after :meth:`verify` (read it, never write to it)."""
        self.verify(cid)
        return self._locate(cid)[0]


class KuboStore(ContentStore):
    """A Kubo (go-ipfs) node's HTTP RPC API: ``/api/v0/add``, ``cat``, ``pin/add``, ``pin/ls``.

    ``add`` is called with Kubo's defaults spelled out (``chunker=size-262144``, the
    ``cid-version`` and ``raw-leaves`` of this store), and the CID the node answers must
    equal the one computed locally from the same bytes, or the upload is reported as an
    error (a node configured with other Import settings would otherwise store content
    under CIDs the contracts do not know). ``cat`` output is verified like any read.
    """

    def __init__(
        self, api_url: str = "http://127.0.0.1:5001", *, cid_version: int = 1, timeout: float = 120.0, pin: bool = True
    ) -> None:
        parsed = urllib.parse.urlsplit(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"api_url must look like http://127.0.0.1:5001, got {api_url!r}")
        if cid_version not in (0, 1):
            raise ValueError("cid_version must be 0 or 1")
        self.api_url = api_url.rstrip("/")
        self._parsed = parsed
        self.cid_version = cid_version
        self.timeout = timeout
        self._pin = pin

    def __repr__(self) -> str:
        return f"KuboStore({self.api_url!r}, cid_version={self.cid_version})"

    # ------------------------------------------------------------ HTTP
    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
        return cls(self._parsed.hostname, self._parsed.port, timeout=self.timeout)

    def _path(self, command: str, params: dict[str, str]) -> str:
        base = self._parsed.path.rstrip("/")
        return f"{base}/api/v0/{command}?{urllib.parse.urlencode(params)}"

    def _post(
        self, command: str, params: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connection()
        try:
            conn.request("POST", self._path(command, params))
            return conn, conn.getresponse()
        except TimeoutError:
            conn.close()
            raise StoreError(
                f"the Kubo node at {self.api_url} gave no answer to {command} {params.get('arg', '')} within "
                f"{self.timeout:g} s: the content may not be reachable from that node; try again later"
            ) from None
        except OSError as exc:
            conn.close()
            raise StoreError(
                f"the Kubo node at {self.api_url} is unreachable ({exc}): is `ipfs daemon` running?"
            ) from None

    @staticmethod
    def _error_message(response: http.client.HTTPResponse) -> str:
        body = response.read(64 * 1024)
        try:
            return json.loads(body).get("Message", body.decode(errors="replace"))
        except ValueError:
            return body.decode(errors="replace")

    # ------------------------------------------------------------ API
    def add_params(self) -> dict[str, str]:
        return {
            "cid-version": str(self.cid_version),
            "raw-leaves": "true" if self.cid_version == 1 else "false",
            "chunker": f"size-{CHUNK_SIZE}",
            "hash": "sha2-256",
            "trickle": "false",
            "pin": "true" if self._pin else "false",
            "progress": "false",
            "quieter": "true",
        }

    @contextmanager
    def writer(self) -> Iterator[StoreWriter]:
        # Kubo wants the length (or chunked encoding) up front: stage the bytes in a local file.
        with tempfile.TemporaryDirectory(prefix="vm-kubo-") as scratch:
            staged = Path(scratch) / "upload"
            with open(staged, "wb") as out:
                writer = StoreWriter(UnixFSBuilder(self.cid_version), out)
                yield writer
            expected = writer._builder.finish()
            self._upload(staged, expected)
            writer.cid = expected

    def _upload(self, path: Path, expected: CID) -> None:
        boundary = "voicemarket-" + secrets.token_hex(12)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="blob"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = path.stat().st_size
        conn = self._connection()
        try:
            conn.putrequest("POST", self._path("add", self.add_params()))
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(head) + size + len(tail)))
            conn.endheaders()
            conn.send(head)
            with open(path, "rb") as handle:
                while piece := handle.read(READ_SIZE):
                    conn.send(piece)
            conn.send(tail)
            response = conn.getresponse()
            if response.status != 200:
                raise StoreError(f"Kubo refused the upload (HTTP {response.status}): {self._error_message(response)}")
            lines = [json.loads(line) for line in response.read().splitlines() if line.strip()]
        except OSError as exc:
            raise StoreError(
                f"the Kubo node at {self.api_url} is unreachable ({exc}): is `ipfs daemon` running?"
            ) from None
        except ValueError as exc:
            raise StoreError(f"Kubo answered the upload with something that is not JSON: {exc}") from None
        finally:
            conn.close()
        answered = next((line["Hash"] for line in reversed(lines) if "Hash" in line), None)
        if answered is None:
            raise StoreError(f"Kubo's add answer holds no Hash: {lines!r}")
        if CID.parse(answered) != expected:
            raise IntegrityError(
                f"the Kubo node stored the upload as {answered}, but these bytes are {expected} under "
                "Kubo's default import settings: reset the node's Import.* configuration (chunker size-262144, "
                "174 links per node, balanced layout) so that CIDs agree"
            )

    def get_to_file(self, cid: CID | str, dest: str | Path, *, max_bytes: int | None = None) -> Path:
        cid = _as_cid(cid)
        params = {"arg": str(cid)} if max_bytes is None else {"arg": str(cid), "length": str(max_bytes + 1)}
        conn, response = self._post("cat", params)
        try:
            if response.status != 200:
                message = self._error_message(response)
                if response.status in (404, 500) and ("not found" in message.lower() or "no link" in message.lower()):
                    raise ContentNotFound(f"the Kubo node has no content under {cid}: {message}")
                raise StoreError(f"Kubo could not cat {cid} (HTTP {response.status}): {message}")
            declared = response.getheader("X-Content-Length")  # the file's size, from its root node
            if max_bytes is not None and declared and declared.isdigit() and int(declared) > max_bytes:
                size = int(declared)
                raise ContentTooLarge(f"{cid} holds {size} bytes, more than the {max_bytes} asked for", size)
            with atomic_output(dest) as out:
                copy = VerifyingCopy(cid, out)
                read = 0
                try:
                    while piece := response.read(READ_SIZE):
                        read += len(piece)
                        if max_bytes is not None and read > max_bytes:
                            raise ContentTooLarge(f"{cid} holds more than the {max_bytes} bytes asked for", read)
                        copy.write(piece)
                except (OSError, http.client.HTTPException) as exc:
                    raise StoreError(
                        f"the download of {cid} from {self.api_url} broke off ({exc}); try again"
                    ) from None
                copy.check(f"the Kubo node at {self.api_url}")
        finally:
            conn.close()
        return Path(dest)

    def has(self, cid: CID | str) -> bool:
        """Whether the node holds a recursive pin on ``cid`` (everything this store adds is pinned)."""
        conn, response = self._post("pin/ls", {"arg": str(_as_cid(cid)), "type": "recursive"})
        try:
            if response.status == 200:
                response.read()
                return True
            message = self._error_message(response)
            if "not pinned" in message.lower() or "not found" in message.lower():
                return False
            raise StoreError(f"Kubo could not answer pin/ls for {cid}: {message}")
        finally:
            conn.close()

    def pin(self, cid: CID | str) -> None:
        conn, response = self._post("pin/add", {"arg": str(_as_cid(cid))})
        try:
            if response.status != 200:
                raise StoreError(f"Kubo could not pin {cid}: {self._error_message(response)}")
            response.read()
        finally:
            conn.close()


def store_from_spec(spec: str) -> ContentStore:
    """The store a setting names: ``local:PATH`` (a :class:`LocalStore`, ``~`` expanded) or
    ``kubo:http://host:5001`` (a :class:`KuboStore`). Raises ValueError for anything else."""
    kind, _, location = spec.partition(":")
    if kind == "local" and location:
        return LocalStore(os.path.expanduser(location))
    if kind == "kubo" and location:
        return KuboStore(location)
    raise ValueError(f"store {spec!r} must be `local:PATH` or `kubo:http://host:5001`")


def copy_between(source: ContentStore, target: ContentStore, cid: CID | str) -> CID:
    """Copy verified content from one store to another; the target must give the same CID."""
    cid = _as_cid(cid)
    with tempfile.TemporaryDirectory(prefix="vm-copy-") as scratch:
        path = source.get_to_file(cid, Path(scratch) / "content")
        if target.cid_version != cid.version:
            raise StoreError(f"{cid} is a CIDv{cid.version}, but the target store makes CIDv{target.cid_version}")
        stored = target.put_file(path)
    if stored != cid:
        raise IntegrityError(f"the target store computed {stored} for content verified as {cid}")
    return cid
