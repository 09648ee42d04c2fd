"""Reading and writing GPT-SoVITS checkpoints without running arbitrary pickles.

The published files are PyTorch zip archives (``torch.save``): a ``data.pkl`` pickle that
names the tensors' storages, plus one archive record per storage.

* GPT (``.ckpt``): ``{"weight": {name: tensor}, "config": dict, "info": str}``, names
  prefixed with ``model.``.
* SoVITS (``.pth``): ``{"weight": {name: tensor}, "config": HParams, "info": str}``, where
  ``HParams`` is the training scripts' ``utils.HParams`` (a namespace of namespaces).
  Newer exports overwrite the zip magic ``PK`` with two version bytes (``"05"`` = v2Pro...).

Model files are bought from strangers, so the pickle is read by :class:`_RestrictedUnpickler`,
which resolves only an allow-list of names (containers, tensor rebuilders, storage types,
``HParams`` which becomes a plain ``dict``) and refuses anything else with
:class:`~synth.errors.UnsafeCheckpointError` before it can run.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from synth.errors import CorruptCheckpointError, UnsafeCheckpointError, UnsupportedModelError
from synth.files import atomic_write_bytes

# Two leading bytes that GPT-SoVITS writes over "PK" to mark a model version.
VERSION_HEADS = {
    b"00": "v1",
    b"01": "v2",
    b"02": "v3",
    b"03": "v3-lora",
    b"04": "v4-lora",
    b"05": "v2Pro",
    b"06": "v2ProPlus",
}

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}

# Modules under which the training scripts' hyper-parameter namespace has been pickled.
_HPARAMS_NAMES = {("utils", "HParams"), ("GPT_SoVITS.utils", "HParams"), ("__main__", "HParams")}


class HParams(dict):
    """Plain-data stand-in for GPT-SoVITS's ``utils.HParams``; pickles under that name.

    Loading builds it from the pickled attribute dict; :func:`to_plain` turns it (and any
    nesting) into ordinary dicts.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state)

    def __reduce_ex__(self, protocol: int):
        import copyreg

        return copyreg.__newobj__, (type(self),), dict(self.items())


def to_plain(value: Any) -> Any:
    """Recursively turn :class:`HParams` and ``OrderedDict`` configs into plain dicts and lists."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def to_hparams(value: Any) -> Any:
    """Recursively wrap dicts in :class:`HParams`, as the training scripts save SoVITS configs."""
    if isinstance(value, dict):
        out = HParams()
        for k, v in value.items():
            out[k] = to_hparams(v)
        return out
    return value


@dataclass(frozen=True)
class StorageType:
    """What ``torch.FloatStorage`` and friends resolve to while unpickling."""

    name: str
    dtype: torch.dtype


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return torch.as_strided(storage, tuple(size), tuple(stride), storage_offset)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_):
    return data


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes objects as _codecs.encode(str, "latin1").
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafeCheckpointError(f"checkpoint pickle asks for the unexpected text encoding {encoding!r}")
    return text.encode(encoding)


def _path_as_text(*parts: str) -> str:
    return os.path.join(*parts) if parts else ""


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("pathlib", "PosixPath"): _path_as_text,
    ("pathlib", "WindowsPath"): _path_as_text,
    ("pathlib", "Path"): _path_as_text,
    **{("torch", name): StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
    **dict.fromkeys(_HPARAMS_NAMES, HParams),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals; storages come from the zip records."""

    def __init__(self, data: BinaryIO, archive: zipfile.ZipFile, prefix: str, source: str) -> None:
        super().__init__(data)
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._source}: refusing to load: its pickle asks for {module}.{name}, which is not "
                "a tensor, a container or a GPT-SoVITS hyper-parameter object. Model files can run code "
                "when loaded carelessly; get this model from a source you trust, or re-export it as "
                "plain weights."
            ) from None

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"{self._source}: unexpected persistent id {pid!r:.80} in checkpoint")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, StorageType):
            raise UnsafeCheckpointError(f"{self._source}: storage of unexpected type {storage_type!r:.80}")
        if key not in self._storages:
            self._storages[key] = self._read_storage(str(key), storage_type.dtype, int(numel))
        return self._storages[key]

    def _read_storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
        name = f"{self._prefix}data/{key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise CorruptCheckpointError(f"{self._source}: archive lacks the tensor record {name}") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if info.file_size != numel * itemsize:
            raise CorruptCheckpointError(
                f"{self._source}: tensor record {name} holds {info.file_size} bytes, expected {numel * itemsize}"
            )
        flat = torch.empty(numel, dtype=dtype)
        if numel:
            view = memoryview(flat.view(torch.uint8).numpy()) if dtype != torch.uint8 else memoryview(flat.numpy())
            with self._archive.open(info) as record:
                got = record.readinto(view)
            if got != info.file_size:
                raise CorruptCheckpointError(f"{self._source}: tensor record {name} is truncated")
        return flat


class _PatchedHead(io.RawIOBase):
    """A read-only file whose first two bytes read as ``PK`` (undoing GPT-SoVITS's version mark)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer) -> int:
        start = self._raw.tell()
        n = self._raw.readinto(buffer)
        if n and start < 2:
            for i in range(start, min(2, start + n)):
                buffer[i - start] = b"PK"[i]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass
class RawCheckpoint:
    """A checkpoint as read from disk: the unpickled object and the two head bytes."""

    path: Path
    head: bytes
    payload: Any
    version_mark: str | None = field(default=None)


def read_checkpoint(path: str | os.PathLike[str]) -> RawCheckpoint:
    """Read a ``torch.save`` zip archive with the restricted unpickler.

    Raises :class:`CorruptCheckpointError` for anything that is not such an archive and
    :class:`UnsafeCheckpointError` when the pickle names a class outside the allow-list.
    """
    path = Path(path)
    source = str(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise CorruptCheckpointError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise CorruptCheckpointError(f"{source}: is a directory, expected a checkpoint file") from None
    with raw:
        head = raw.read(2)
        raw.seek(0)
        if head != b"PK" and head not in VERSION_HEADS:
            raise CorruptCheckpointError(
                f"{source}: not a PyTorch zip checkpoint (starts with {head!r}); the file is damaged or of "
                "another kind. Expected a GPT-SoVITS .ckpt (GPT) or .pth (SoVITS) file."
            )
        stream = io.BufferedReader(_PatchedHead(raw)) if head != b"PK" else raw
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CorruptCheckpointError(f"{source}: damaged or truncated checkpoint archive ({exc})") from None
        with archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pickles) != 1:
                raise CorruptCheckpointError(f"{source}: archive has {len(pickles)} data.pkl records, expected 1")
            prefix = pickles[0][: -len("data.pkl")]
            try:
                with archive.open(pickles[0]) as data:
                    payload = _RestrictedUnpickler(io.BytesIO(data.read()), archive, prefix, source).load()
            except (UnsafeCheckpointError, CorruptCheckpointError):
                raise
            except (
                pickle.UnpicklingError,
                EOFError,
                ValueError,
                TypeError,
                AttributeError,
                IndexError,
                zipfile.BadZipFile,
                OSError,
                RuntimeError,
            ) as exc:
                raise CorruptCheckpointError(
                    f"{source}: damaged checkpoint pickle ({type(exc).__name__}: {exc})"
                ) from None
    return RawCheckpoint(path=path, head=head, payload=payload, version_mark=VERSION_HEADS.get(head))


class _HParamsPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Writes :class:`HParams` under the name ``utils.HParams`` that GPT-SoVITS expects."""

    def save_global(self, obj, name=None):
        if obj is HParams:
            self.write(pickle.GLOBAL + b"utils\nHParams\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _PickleModule:
    Pickler = _HParamsPickler
    Unpickler = pickle.Unpickler
    __name__ = "synth.checkpoints._PickleModule"


def write_checkpoint(payload: Any, path: str | os.PathLike[str], version_mark: bytes | None = None) -> Path:
    """``torch.save`` ``payload`` to ``path`` atomically (temp file, then rename).

    ``version_mark`` overwrites the zip magic as GPT-SoVITS does for v2Pro and later files.
    """
    buffer = io.BytesIO()
    torch.save(payload, buffer, pickle_module=_PickleModule)
    data = buffer.getvalue()
    if version_mark is not None:
        data = version_mark + data[2:]
    return atomic_write_bytes(path, data)


# ----------------------------------------------------------------------------- model files


@dataclass(frozen=True)
class GPTCheckpoint:
    """The GPT (text-to-semantic) model file: weights without the ``model.`` prefix, and its config."""

    path: Path
    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    info: str


@dataclass(frozen=True)
class SoVITSCheckpoint:
    """The SoVITS (semantic-to-waveform) model file: weights, the config as plain dicts, its version."""

    path: Path
    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    info: str
    version: str


def _payload_dict(raw: RawCheckpoint, kind: str) -> dict[str, Any]:
    payload = raw.payload
    if not isinstance(payload, dict) or "weight" not in payload or not isinstance(payload["weight"], dict):
        keys = list(payload)[:6] if isinstance(payload, dict) else type(payload).__name__
        raise CorruptCheckpointError(
            f"{raw.path}: not a GPT-SoVITS {kind} file (expected a dict with 'weight' and 'config', found {keys})"
        )
    if "config" not in payload:
        raise CorruptCheckpointError(f"{raw.path}: GPT-SoVITS {kind} file without its 'config'")
    for name, value in payload["weight"].items():
        if not isinstance(value, torch.Tensor):
            raise CorruptCheckpointError(f"{raw.path}: weight {name!r} is not a tensor")
    return payload


def load_gpt(path: str | os.PathLike[str]) -> GPTCheckpoint:
    """Load and check a GPT ``.ckpt``; refuses v1 (512-phone) models."""
    raw = read_checkpoint(path)
    payload = _payload_dict(raw, "GPT")
    config = to_plain(payload["config"])
    model_cfg = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model_cfg, dict):
        raise CorruptCheckpointError(f"{raw.path}: GPT config has no 'model' section; is this a SoVITS .pth?")
    weights = {}
    for name, tensor in payload["weight"].items():
        weights[name[len("model.") :] if name.startswith("model.") else name] = tensor
    if "ar_text_embedding.word_embeddings.weight" not in weights:
        raise CorruptCheckpointError(f"{raw.path}: no GPT text embedding in the weights; is this a SoVITS .pth?")
    phones = weights["ar_text_embedding.word_embeddings.weight"].shape[0]
    if phones != 732:
        raise UnsupportedModelError(
            f"{raw.path}: GPT model with {phones} phone symbols is GPT-SoVITS v1; this engine runs v2 (732 symbols). "
            "Use a v2 GPT model."
        )
    return GPTCheckpoint(path=raw.path, weights=weights, config=config, info=str(payload.get("info", "")))


def sovits_version(raw_head_mark: str | None, weights: dict[str, torch.Tensor]) -> str:
    """Tell the SoVITS version from the head bytes and, for plain zips, from the weights' shapes."""
    if raw_head_mark is not None and raw_head_mark != "v2":
        return raw_head_mark
    if any(k.startswith("cfm.") for k in weights):
        return "v3/v4"
    if "sv_emb.weight" in weights:
        return "v2Pro"
    emb = weights.get("enc_p.text_embedding.weight")
    if emb is None:
        return "unknown"
    return "v1" if emb.shape[0] == 322 else "v2"


def load_sovits(path: str | os.PathLike[str]) -> SoVITSCheckpoint:
    """Load and check a SoVITS ``.pth``; refuses every version but v2 with a clear message."""
    raw = read_checkpoint(path)
    payload = _payload_dict(raw, "SoVITS")
    config = to_plain(payload["config"])
    if not isinstance(config, dict) or "model" not in config or "data" not in config:
        raise CorruptCheckpointError(f"{raw.path}: SoVITS config lacks 'model'/'data'; is this a GPT .ckpt?")
    weights = dict(payload["weight"])
    if any(k.startswith("model.ar_") for k in weights):
        raise CorruptCheckpointError(f"{raw.path}: this is a GPT .ckpt file, not a SoVITS .pth; swap the two paths")
    version = sovits_version(raw.version_mark, weights)
    if version == "unknown":
        raise CorruptCheckpointError(f"{raw.path}: no SoVITS text embedding in the weights; not a GPT-SoVITS .pth")
    if version != "v2":
        raise UnsupportedModelError(
            f"{raw.path}: this is a GPT-SoVITS {version} SoVITS model; this engine runs v2 models only "
            "(v3/v4 need a diffusion decoder and vocoder, v2Pro a speaker-verification encoder). "
            "Export or fine-tune the voice on the v2 pretrained models."
        )
    return SoVITSCheckpoint(
        path=raw.path, weights=weights, config=config, info=str(payload.get("info", "")), version=version
    )


def save_gpt(
    path: str | os.PathLike[str],
    weights: dict[str, torch.Tensor],
    config: dict[str, Any],
    info: str = "GPT-e1",
    half: bool = True,
) -> Path:
    """Write a GPT ``.ckpt`` as GPT-SoVITS's trainer does (``model.`` prefix, fp16 weights)."""
    out = _saved_weights(((f"model.{name}", tensor) for name, tensor in weights.items()), half)
    return write_checkpoint({"weight": out, "config": config, "info": info}, path)


def save_sovits(
    path: str | os.PathLike[str],
    weights: dict[str, torch.Tensor],
    config: dict[str, Any],
    info: str = "1epoch_1iteration",
    half: bool = True,
) -> Path:
    """Write a SoVITS ``.pth`` as GPT-SoVITS's ``savee`` does (fp16 weights, ``utils.HParams`` config)."""
    out = _saved_weights(((name, tensor) for name, tensor in weights.items() if "enc_q" not in name), half)
    return write_checkpoint({"weight": out, "config": to_hparams(config), "info": info}, path)


def _saved_weights(
    weights: Iterable[tuple[str, torch.Tensor]], half: bool
) -> collections.OrderedDict[str, torch.Tensor]:
    """The weights as they are saved: on the CPU, contiguous, floating-point ones in fp16 when ``half``."""
    out = collections.OrderedDict()
    for name, tensor in weights:
        t = tensor.detach().to("cpu").contiguous()
        out[name] = t.half() if half and t.is_floating_point() else t
    return out
