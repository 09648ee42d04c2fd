"""Static files and content by CID, for the services that serve a browser (the DApp).

- :func:`add_cid_gateway`: ``GET /ipfs/{cid}`` answers the bytes a CID names, read through a
  ``read(cid) -> bytes`` the service gives (the content store checks the bytes against the CID
  before answering; the browser checks them again). Content by CID never changes, so answers are
  cached for a year (``immutable``). An unknown or unreadable CID is a 404 of the error shape.
- :func:`mount_app`: a built single-page app (``index.html`` and its ``assets/``) at ``/``, after
  every API route. Files are read once into memory, with a gzipped copy for browsers that take it;
  hashed ``assets/`` are cached for a year, ``index.html`` is revalidated (ETag).

Neither imports the content store: :mod:`voicemarket.web` depends only on the base layer.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from voicemarket.errors import VoicemarketError
from voicemarket.web.api import ApiError

IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = (".js", ".css", ".html", ".json", ".svg", ".map", ".txt")


def sniff_media_type(data: bytes) -> str:
    """The media type of content by its first bytes (a CID names bytes, not a file name)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:4] == b"fLaC":
        return "audio/flac"
    if data[:3] == b"ID3" or data[:2] == b"\xff\xfb":
        return "audio/mpeg"
    if data[:4] == b"OggS":
        return "audio/ogg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:1] in (b"{", b"["):
        return "application/json"
    return "application/octet-stream"


def add_cid_gateway(app: FastAPI, read: Callable[[str], bytes], *, prefix: str = "/ipfs") -> None:
    """``GET {prefix}/{cid}``: the content ``read(cid)`` returns (see the module docstring).

    ``read`` raises :class:`~voicemarket.errors.VoicemarketError` (content missing, altered, too
    large, not a CID) for what it cannot give; the answer is then a 404 saying why."""

    @app.get(prefix + "/{cid}", tags=["content"], response_class=Response)
    def content(cid: str) -> Response:
        """The bytes of a CID from the configured store (verified against the CID by the store)."""
        if not cid.isalnum() or len(cid) > 128:
            raise ApiError(400, "bad_parameter", "cid: not a CID (base32 bafy... or base58 Qm...)", "cid")
        try:
            data = read(cid)
        except VoicemarketError as exc:
            raise ApiError(404, "not_found", f"content {cid} is not available here: {exc}") from None
        return Response(
            data,
            media_type=sniff_media_type(data),
            headers={"Cache-Control": IMMUTABLE, "ETag": f'"{cid}"', "Accept-Ranges": "none"},
        )


class _File:
    __slots__ = ("data", "etag", "gzipped", "media_type")

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".js":
            self.media_type = "text/javascript"
        self.etag = '"' + hashlib.sha256(self.data).hexdigest()[:32] + '"'
        self.gzipped = gzip.compress(self.data, 9, mtime=0) if path.suffix in COMPRESSIBLE else None


def mount_app(app: FastAPI, folder: Path, *, index: str = "index.html") -> None:
    """Serve the built app in ``folder`` at ``/`` (call after adding every API route)."""
    folder = Path(folder)
    if not (folder / index).is_file():
        raise FileNotFoundError(f"{folder / index} does not exist: build the app first (`make setup` builds it)")
    files = {str(p.relative_to(folder)): _File(p) for p in folder.rglob("*") if p.is_file()}

    def answer(request: Request, name: str) -> Response:
        found = files.get(name)
        if found is None:
            return JSONResponse(
                {"error": {"code": "not_found", "message": f"no such path: /{name}"}},
                status_code=404,
            )
        cache = IMMUTABLE if name.startswith("assets/") else "no-cache"
        headers = {"Cache-Control": cache, "ETag": found.etag, "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        body = found.data
        if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body, headers["Content-Encoding"] = found.gzipped, "gzip"
        return Response(body, media_type=found.media_type, headers=headers)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> Response:
        return answer(request, index)

    @app.get("/assets/{name:path}", include_in_schema=False)
    def asset(request: Request, name: str) -> Response:
        return answer(request, f"assets/{name}")

    def route(name: str) -> Callable[[Request], Response]:
        def top_level_file(request: Request) -> Response:
            return answer(request, name)

        return top_level_file

    for extra in sorted(n for n in files if "/" not in n and n != index):  # favicon.svg and the like
        app.add_api_route(f"/{extra}", route(extra), methods=["GET"], include_in_schema=False)
