"""The web layer's additions for the DApp (voicemarket/web/static.py) on a real local store: the
CID gateway (bytes checked by the store, immutable caching, the error shape for missing or altered
content and non-CIDs) and the built app at / (gzip, ETag revalidation, hashed assets cached)."""

from __future__ import annotations

import gzip

from fastapi.testclient import TestClient

from voicemarket.content.store import LocalStore
from voicemarket.web.api import create_app
from voicemarket.web.static import IMMUTABLE, add_cid_gateway, mount_app

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200)


def client(tmp_path) -> tuple[TestClient, LocalStore]:  # noqa: ANN001
    store = LocalStore(tmp_path / "store")
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><script src=/assets/app-1.js></script>")
    (dist / "assets" / "app-1.js").write_text("console.log('voicemarket');" * 50)
    (dist / "favicon.svg").write_text("<svg/>")
    app = create_app(title="t", description="t", version="1")

    @app.get("/models")
    def models() -> dict:
        return {"items": []}

    add_cid_gateway(app, store.get_bytes)
    mount_app(app, dist)
    return TestClient(app), store


def test_cid_gateway(tmp_path) -> None:  # noqa: ANN001
    http, store = client(tmp_path)
    cid = str(store.put_bytes(WAV))
    answer = http.get(f"/ipfs/{cid}")
    assert answer.status_code == 200 and answer.content == WAV
    assert answer.headers["content-type"] == "audio/wav"
    assert answer.headers["cache-control"] == IMMUTABLE
    store.path_of(cid).write_bytes(WAV[:-1] + b"\x01")  # altered on disk: the store refuses it
    altered = http.get(f"/ipfs/{cid}")
    assert altered.status_code == 404 and altered.json()["error"]["code"] == "not_found"
    assert "not available" in altered.json()["error"]["message"]
    missing = http.get("/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    assert missing.status_code == 404
    bad = http.get("/ipfs/not-a-cid!")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "cid"


def test_app_files(tmp_path) -> None:  # noqa: ANN001
    http, _ = client(tmp_path)
    page = http.get("/", headers={"accept-encoding": "gzip"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert http.get("/", headers={"if-none-match": page.headers["etag"]}).status_code == 304
    script = http.get("/assets/app-1.js", headers={"accept-encoding": "gzip"})
    assert script.headers["content-encoding"] == "gzip" and script.headers["cache-control"] == IMMUTABLE
    assert script.headers["content-type"].startswith("text/javascript")
    raw = http.get("/assets/app-1.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in raw.headers and len(raw.content) > len(gzip.compress(raw.content))
    assert http.get("/favicon.svg").status_code == 200
    assert http.get("/models").json() == {"items": []}  # API routes come first
    assert http.get("/assets/nothing.js").status_code == 404
