#!/usr/bin/env python3
"""Write the aiscout scanner test fixtures into tests/fixtures/.

Every model file is written by its format's own Python library (gguf,
safetensors, onnx, h5py, numpy, scikit-learn/joblib, keras, tensorflow,
openvino, coremltools, mlflow).  PyTorch is not installed (too big), so the
two torch layouts are written byte-for-byte the way torch/serialization.py
writes them, with pickle + zipfile (see write_torch_zip / write_torch_legacy).

Besides the models it writes decoys (files that look like models by name or by
their first bytes but are not), hazards (malformed headers that must produce an
error, never a model and never a crash) and tests/fixtures/expected.json, the
answer key the Rust tests assert against.

Run it through scripts/make-fixtures.sh, which sets up the pinned venv and the
environment (TZ, PYTHONHASHSEED, KERAS_BACKEND, ...).

Options:
  --out DIR   write somewhere else than tests/fixtures (used by --check)
  --check     regenerate into a temporary directory and compare with the
              committed expected.json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import pickle
import random
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import types
import uuid
import zipfile
import zlib
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures"

# Everything below tests/fixtures that this script owns (and so deletes and
# rewrites).  README.md is hand-written and left alone.
OWNED = ["models", "decoys", "hazards", "home", "mlruns", "expected.json"]

# 2024-01-01T00:00:00Z: the clock that zip entries, keras' date_saved and
# mlflow's timestamps see while the libraries write (see frozen_clock()).
FIXED_EPOCH = 1704067200
SEED = 20240101

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


# --------------------------------------------------------------------------
# bookkeeping for expected.json
# --------------------------------------------------------------------------
class Expected:
    def __init__(self, out: Path):
        self.out = out
        self.models: list[dict] = []
        self.directory_models: list[dict] = []
        self.decoys: list[str] = []
        self.hazards: list[str] = []

    def rel(self, p: Path) -> str:
        return Path(p).relative_to(self.out).as_posix()

    def model(self, path, fmt, metadata=None, source=None, group=None):
        self.models.append(
            {
                "path": self.rel(path),
                "format": fmt,
                "metadata": metadata or {},
                "source": source,
                "group": group,
            }
        )

    def directory_model(self, path, fmt, defining_file):
        self.directory_models.append(
            {"path": self.rel(path), "format": fmt, "defining_file": self.rel(defining_file)}
        )

    def decoy(self, path):
        self.decoys.append(self.rel(path))

    def hazard(self, path):
        self.hazards.append(self.rel(path))

    def group(self, kind, root, members):
        return {"kind": kind, "root": self.rel(root), "members": [self.rel(m) for m in members]}

    def finish(self) -> dict:
        models = []
        for m in sorted(self.models, key=lambda m: m["path"]):
            data = (self.out / m["path"]).read_bytes()
            models.append(
                {
                    "path": m["path"],
                    "format": m["format"],
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "metadata": m["metadata"],
                    "source": m["source"],
                    "group": m["group"],
                }
            )
        return {
            "models": models,
            "directory_models": sorted(self.directory_models, key=lambda m: m["path"]),
            "decoys": sorted(self.decoys),
            "hazards": sorted(self.hazards),
        }


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def rng(tag: str) -> np.random.Generator:
    """A numpy generator seeded from SEED and a tag, so sections are independent."""
    h = int.from_bytes(hashlib.sha256(f"{SEED}:{tag}".encode()).digest()[:8], "little")
    return np.random.default_rng(h)


def pyrng(tag: str) -> random.Random:
    return random.Random(f"{SEED}:{tag}")


# --------------------------------------------------------------------------
# clock / uuid freezing, so that library output is reproducible
# --------------------------------------------------------------------------
class _FrozenDateTime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        d = _dt.datetime.fromtimestamp(FIXED_EPOCH, _dt.timezone.utc)
        return d if tz else d.replace(tzinfo=None)

    @classmethod
    def utcnow(cls):
        return _dt.datetime.fromtimestamp(FIXED_EPOCH, _dt.timezone.utc).replace(tzinfo=None)


@contextlib.contextmanager
def frozen_clock(datetime_modules=(), seeded_uuid: str | None = None, patch_time=False, stable_id_modules=()):
    """Freeze what the libraries read from the clock while they write.

    * zipfile: entry timestamps (time.localtime(time.time()) in ZipFile.open(),
      time.localtime(st_mtime) in ZipInfo.from_file()).
    * the module-level ``datetime`` name of the given modules (keras' date_saved,
      mlflow's utc_time_created).
    * optionally time.time() itself (mlflow run start/end times) and uuid.uuid4()
      (mlflow run / experiment / model ids), from a seeded generator.
    * the builtin id() as seen by the given modules (keras writes id(obj), a
      memory address, as "shared_object_id" into config.json): replaced by
      address-like numbers handed out in first-seen order.
    """
    fixed_struct = time.gmtime(FIXED_EPOCH)
    zshim = types.SimpleNamespace(time=lambda: float(FIXED_EPOCH), localtime=lambda *a: fixed_struct)
    fake_dt_module = types.SimpleNamespace(**{k: getattr(_dt, k) for k in dir(_dt) if not k.startswith("__")})
    fake_dt_module.datetime = _FrozenDateTime
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(zipfile, "time", zshim))
        for mod in datetime_modules:
            if getattr(mod, "datetime", None) is _dt:
                stack.enter_context(mock.patch.object(mod, "datetime", fake_dt_module))
            elif getattr(mod, "datetime", None) is _dt.datetime:
                stack.enter_context(mock.patch.object(mod, "datetime", _FrozenDateTime))
        if patch_time:
            stack.enter_context(mock.patch("time.time", lambda: float(FIXED_EPOCH)))
            stack.enter_context(mock.patch("time.time_ns", lambda: FIXED_EPOCH * 10**9))
        for mod in stable_id_modules:
            seen: dict[int, int] = {}

            def stable_id(obj, _seen=seen):
                return _seen.setdefault(id(obj), 0x7F0000000000 + 0x10 * len(_seen))

            mod.id = stable_id
            stack.callback(delattr, mod, "id")
        if seeded_uuid is not None:
            r = pyrng(seeded_uuid)
            stack.enter_context(
                mock.patch("uuid.uuid4", lambda: uuid.UUID(int=r.getrandbits(128), version=4))
            )
        yield


# --------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------
TINY_VOCAB = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(13)]  # 16 tokens


def gguf_llama(path: Path, name: str, *, split_max_tensors=0, q8=False, vocab=TINY_VOCAB, n_embd=32, tag="gguf"):
    """Write a tiny llama-architecture GGUF with gguf-py's GGUFWriter.

    Returns (metadata for the first file, per-file tensor lists).
    """
    import gguf

    r = rng(tag)
    n_vocab, n_ff = len(vocab), 64
    tensors = collections.OrderedDict()
    tensors["token_embd.weight"] = r.standard_normal((n_vocab, n_embd)).astype(np.float16)
    tensors["blk.0.attn_norm.weight"] = np.ones(n_embd, np.float32)
    tensors["blk.0.ffn_up.weight"] = r.standard_normal((n_ff, n_embd)).astype(np.float16)
    tensors["output_norm.weight"] = np.ones(n_embd, np.float32)

    w = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    w.add_name(name)
    w.add_license("apache-2.0")
    w.add_context_length(2048)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(1)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if q8 else gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list(vocab)
    w.add_token_scores([0.0] * len(vocab))
    w.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
                      + [gguf.TokenType.BYTE] * (len(vocab) - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    type_names = []
    for tname, arr in tensors.items():
        if q8 and arr.dtype == np.float16:
            q = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(tname, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            type_names.append((tname, "Q8_0", arr.size))
        else:
            w.add_tensor(tname, arr)
            type_names.append((tname, "F16" if arr.dtype == np.float16 else "F32", arr.size))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # which tensors ended up in which file (GGUFWriter starts a new shard once
    # the current one holds split_max_tensors tensors)
    if split_max_tensors:
        per_file = [type_names[i : i + split_max_tensors] for i in range(0, len(type_names), split_max_tensors)]
    else:
        per_file = [type_names]
    meta = {
        "architecture": "llama",
        "name": name,
        "license": "apache-2.0",
        "context_length": 2048,
    }
    return meta, per_file


def tensor_meta(entries) -> dict:
    return {
        "tensor_count": len(entries),
        "parameters": int(sum(n for _, _, n in entries)),
        "dtypes": sorted({t for _, t, _ in entries}),
    }


def make_gguf(out: Path, ex: Expected):
    import gguf

    models = out / "models"
    # single file
    p = models / "tiny-llama.gguf"
    meta, per_file = gguf_llama(p, "Tiny Llama Fixture", tag="tiny-llama")
    ex.model(p, "gguf", {**meta, **tensor_meta(per_file[0])})

    # 2-file split, as llama.cpp's gguf-split lays it out: every file has
    # split.no (u16, 0-based), split.count (u16), split.tensors.count (i32);
    # only the first one carries the model's metadata.
    split_dir = models / "split"
    split_dir.mkdir(parents=True, exist_ok=True)
    meta, per_file = gguf_llama(split_dir / "tiny.gguf", "Tiny Split Fixture", split_max_tensors=2, tag="split")
    files = [split_dir / f"tiny-{i + 1:05d}-of-{len(per_file):05d}.gguf" for i in range(len(per_file))]
    assert len(files) == 2 and all(f.exists() for f in files), files
    grp = ex.group("gguf_split", files[0], files)
    for i, (f, entries) in enumerate(zip(files, per_file)):
        m = {"split_no": i, "split_count": len(files), **tensor_meta(entries)}
        if i == 0:
            m.update(meta)
        ex.model(f, "gguf", m, group=grp)

    # LM Studio store: publisher/model-repo/file.gguf, a Q8_0 quantised file
    lms = out / "home/.lmstudio/models/acme/tiny-chat-GGUF"
    lms.mkdir(parents=True, exist_ok=True)
    p = lms / "tiny-chat-q8_0.gguf"
    meta, per_file = gguf_llama(p, "Tiny Chat", q8=True, tag="lmstudio")
    ex.model(p, "gguf", {**meta, **tensor_meta(per_file[0])},
             source={"kind": "lmstudio", "publisher": "acme", "model": "tiny-chat-GGUF"})

    # hazard: a real GGUF (with a larger vocabulary so the header is long)
    # cut in half, inside the key/value section.
    with tempfile.TemporaryDirectory() as td:
        big_vocab = ["<unk>", "<s>", "</s>"] + [f"tok_{i:04d}" for i in range(509)]
        full = Path(td) / "full.gguf"
        gguf_llama(full, "Truncated Fixture", vocab=big_vocab, n_embd=8, tag="truncated")
        data = full.read_bytes()
        data_offset = gguf.GGUFReader(full).data_offset
    cut = len(data) // 2
    assert cut < data_offset, (cut, data_offset)
    p = out / "hazards/truncated.gguf"
    p.write_bytes(data[:cut])
    ex.hazard(p)


# --------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------
ST_DTYPE = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64"}


def st_meta(tensors: dict) -> dict:
    return {
        "tensor_count": len(tensors),
        "parameters": int(sum(a.size for a in tensors.values())),
        "dtypes": sorted({ST_DTYPE[a.dtype] for a in tensors.values()}),
    }


def bert_tensors(tag: str) -> dict:
    r = rng(tag)
    return {
        "embeddings.word_embeddings.weight": r.standard_normal((32, 16)).astype(np.float16),
        "embeddings.LayerNorm.weight": np.ones(16, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(16, np.float32),
        "encoder.layer.0.attention.self.query.weight": r.standard_normal((16, 16)).astype(np.float32),
        "encoder.layer.0.attention.self.query.bias": np.zeros(16, np.float32),
        "pooler.dense.weight": r.standard_normal((16, 16)).astype(np.float16),
    }


def write_sharded_safetensors(dirpath: Path, tensors: dict, split_after: int, names=None):
    """Two shards plus model.safetensors.index.json, as transformers writes them."""
    from safetensors.numpy import save_file

    keys = list(tensors)
    shards = [dict((k, tensors[k]) for k in keys[:split_after]), dict((k, tensors[k]) for k in keys[split_after:])]
    names = names or [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for name, shard in zip(names, shards):
        save_file(shard, str(dirpath / name), metadata={"format": "pt"})
        for k in shard:
            weight_map[k] = name
    index = {
        "metadata": {"total_size": int(sum(a.nbytes for a in tensors.values()))},
        "weight_map": dict(sorted(weight_map.items())),
    }
    (dirpath / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return names, shards


def make_safetensors(out: Path, ex: Expected):
    from safetensors.numpy import save_file

    models = out / "models"
    r = rng("single.safetensors")
    t = {
        "linear.weight": r.standard_normal((8, 4)).astype(np.float32),
        "linear.bias": r.standard_normal(8).astype(np.float32),
        "head.weight": r.standard_normal((2, 8)).astype(np.float16),
    }
    p = models / "single.safetensors"
    save_file(t, str(p), metadata={"format": "pt"})
    ex.model(p, "safetensors", st_meta(t))

    sd = models / "sharded"
    sd.mkdir(parents=True, exist_ok=True)
    tensors = bert_tensors("sharded")
    names, shards = write_sharded_safetensors(sd, tensors, 3)
    files = [sd / n for n in names]
    # The index is part of a sharded model: it is a group member too.
    grp = ex.group("sharded", sd / "model.safetensors.index.json", [sd / "model.safetensors.index.json", *files])
    for f, shard in zip(files, shards):
        ex.model(f, "safetensors", st_meta(shard), group=grp)


# --------------------------------------------------------------------------
# ONNX and OpenVINO
# --------------------------------------------------------------------------
def make_onnx(out: Path, ex: Expected) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    r = rng("onnx")
    W = r.standard_normal((4, 3)).astype(np.float32)
    B = r.standard_normal(3).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"], name="matmul"),
            helper.make_node("Add", ["xw", "B"], ["y"], name="add"),
        ],
        "tiny_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(
        graph,
        producer_name="aiscout-fixtures",
        producer_version="0.1.0",
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
        doc_string="aiscout test fixture: y = x @ W + B",
        model_version=1,
        domain="dev.aiscout.fixtures",
    )
    helper.set_model_props(model, {"license": "MIT", "author": "aiscout"})
    onnx.checker.check_model(model, full_check=True)
    p = out / "models/tiny.onnx"
    onnx.save(model, str(p))
    ex.model(
        p,
        "onnx",
        {
            "producer": "aiscout-fixtures",
            "producer_version": "0.1.0",
            "opset": 17,
            "ir_version": 8,
            "license": "MIT",
            "tensor_count": 2,
            "parameters": int(W.size + B.size),
        },
    )
    return p


def make_openvino(out: Path, ex: Expected, onnx_path: Path):
    import openvino as ov

    d = out / "models/openvino"
    d.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    model.set_friendly_name("tiny_linear")
    xml = d / "tiny.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    assert (d / "tiny.bin").exists()
    ex.directory_model(xml, "openvino", xml)


# --------------------------------------------------------------------------
# PyTorch (emulated torch.save; torch itself is not installed)
# --------------------------------------------------------------------------
class _Storage:
    """Stands in for a torch TypedStorage: the pickler turns it into a persistent id."""

    def __init__(self, array: np.ndarray, storage_type: str):
        self.array = np.ascontiguousarray(array).reshape(-1)
        self.storage_type = storage_type


class _Tensor:
    """Stands in for a torch.Tensor; reduces exactly like Tensor._reduce_ex_internal."""

    rebuild = None  # set while the fake torch modules are installed

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array)
        st = {np.float32: "FloatStorage", np.float16: "HalfStorage", np.int64: "LongStorage"}[array.dtype.type]
        self.storage = _Storage(self.array, st)

    def __reduce_ex__(self, protocol):
        shape = tuple(int(s) for s in self.array.shape)
        stride = tuple(int(s) // self.array.itemsize for s in self.array.strides)
        # torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
        #                                 requires_grad, backward_hooks)
        return (_Tensor.rebuild, (self.storage, 0, shape, stride, False, collections.OrderedDict()))


@contextlib.contextmanager
def fake_torch_modules():
    """Install just enough of `torch` in sys.modules for pickle's GLOBAL checks.

    pickle writes a class/function as GLOBAL '<__module__>\\n<__qualname__>' after
    checking that importing the module and looking the name up gives the same
    object back, so the stand-ins must really be reachable as torch.FloatStorage
    and torch._utils._rebuild_tensor_v2 while pickling.  The modules are removed
    again at once so no other library ever sees a fake torch.
    """
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - never called
        raise RuntimeError("fake torch")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch_mod._utils = utils_mod
    for name in ("FloatStorage", "HalfStorage", "LongStorage"):
        cls = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(torch_mod, name, cls)
    sys.modules["torch"] = torch_mod
    sys.modules["torch._utils"] = utils_mod
    _Tensor.rebuild = _rebuild_tensor_v2
    try:
        yield torch_mod
    finally:
        _Tensor.rebuild = None
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _TorchPickler(pickle.Pickler):
    """pickle.Pickler with torch.save's persistent_id for storages."""

    def __init__(self, f, torch_mod, legacy: bool, legacy_key_base: int = 0):
        super().__init__(f, protocol=2)  # torch DEFAULT_PROTOCOL
        self.torch_mod = torch_mod
        self.legacy = legacy
        self.legacy_key_base = legacy_key_base
        self.storages: dict[str, _Storage] = {}
        self._ids: dict[int, str] = {}

    def persistent_id(self, obj):
        if not isinstance(obj, _Storage):
            return None
        if self.legacy:
            # _legacy_save: key = str(storage._cdata) (a C pointer value)
            key = self._ids.setdefault(id(obj), str(self.legacy_key_base + 0x40 * len(self._ids)))
        else:
            # _save: key = id_map.setdefault(storage._cdata, str(len(id_map)))
            key = self._ids.setdefault(id(obj), str(len(self._ids)))
        self.storages[key] = obj
        cls = getattr(self.torch_mod, obj.storage_type)
        pid = ("storage", cls, key, "cpu", int(obj.array.size))
        if self.legacy:
            pid += (None,)  # view_metadata
        return pid


def _torch_zip_info(zf: zipfile.ZipFile, name: str, size: int) -> zipfile.ZipInfo:
    """A stored entry whose data starts on a 64-byte boundary.

    PyTorchStreamWriter (caffe2/serialize/inline_container.cc) pads every
    record with an extra field 'FB' <u16 len> 'Z'*len so the payload is
    64-byte aligned (kFieldAlignment), and miniz leaves the DOS time/date 0.
    """
    zi = zipfile.ZipInfo(name, date_time=(1980, 0, 0, 0, 0, 0))
    zi.compress_type = zipfile.ZIP_STORED
    start = zf.start_dir + 30 + len(name.encode()) + 4
    pad = (-start) % 64
    zi.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zi.create_system = 0
    zi.create_version = 0
    zi.extract_version = 0
    return zi


def write_torch_zip(path: Path, archive_name: str, obj) -> None:
    """torch.save(obj, path) with the default _use_new_zipfile_serialization=True."""
    with fake_torch_modules() as torch_mod:
        buf = io.BytesIO()
        p = _TorchPickler(buf, torch_mod, legacy=False)
        p.dump(obj)
        data_pkl = buf.getvalue()
    records = [("data.pkl", data_pkl), ("byteorder", b"little")]
    for key in sorted(p.storages):
        records.append((f"data/{key}", p.storages[key].array.astype(p.storages[key].array.dtype.newbyteorder("<")).tobytes()))
    records.append(("version", b"3\n"))
    # .data/serialization_id: 20 digits of a hash of the record names, then 20
    # digits of the combined crc32 of the record data (writeSerializationId()).
    name_hash = int.from_bytes(hashlib.sha256("".join(n for n, _ in records).encode()).digest()[:8], "little")
    crc = 0
    for _, d in records:
        crc = zlib.crc32(d, crc)
    records.append((".data/serialization_id", f"{name_hash:020d}{crc:020d}".encode()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in records:
            full = f"{archive_name}/{name}"
            zf.writestr(_torch_zip_info(zf, full, len(data)), data)
    # every payload must start on a 64-byte boundary, like torch's
    with zipfile.ZipFile(path) as zf:
        for zi in zf.infolist():
            off = zi.header_offset + 30 + len(zi.filename.encode()) + len(zi.extra)
            assert off % 64 == 0, (zi.filename, off)


MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


def write_torch_legacy(path: Path, obj) -> None:
    """torch.save(obj, path, _use_new_zipfile_serialization=False) (_legacy_save)."""
    sys_info = dict(
        protocol_version=PROTOCOL_VERSION,
        little_endian=True,
        type_sizes=dict(short=2, int=4, long=4),
    )
    f = io.BytesIO()
    pickle.dump(MAGIC_NUMBER, f, protocol=2)
    pickle.dump(PROTOCOL_VERSION, f, protocol=2)
    pickle.dump(sys_info, f, protocol=2)
    with fake_torch_modules() as torch_mod:
        p = _TorchPickler(f, torch_mod, legacy=True, legacy_key_base=94_251_672_104_960)
        p.dump(obj)
    keys = sorted(p.storages)
    pickle.dump(keys, f, protocol=2)
    for key in keys:
        arr = p.storages[key].array
        f.write(struct.pack("<q", arr.size))  # element count, then the raw bytes
        f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(f.getvalue())


def torch_meta(sd: dict) -> dict:
    return {"tensor_count": len(sd), "parameters": int(sum(t.array.size for t in sd.values()))}


def make_pytorch(out: Path, ex: Expected):
    models = out / "models"
    r = rng("torch")

    # (a) a plain state dict, saved to a buffer -> root folder "archive/"
    sd = collections.OrderedDict()
    sd["fc.weight"] = _Tensor(r.standard_normal((4, 8)).astype(np.float32))
    sd["fc.bias"] = _Tensor(r.standard_normal(4).astype(np.float32))
    p = models / "torch_archive.pt"
    write_torch_zip(p, "archive", sd)
    ex.model(p, "pytorch", torch_meta(sd))

    # (b) an nn.Module state_dict (with its _metadata attribute, as
    # Module.state_dict() returns it) saved to a path -> root folder = file stem
    sd = collections.OrderedDict()
    sd["conv1.weight"] = _Tensor(r.standard_normal((4, 1, 3, 3)).astype(np.float32))
    sd["conv1.bias"] = _Tensor(np.zeros(4, np.float32))
    sd["bn1.weight"] = _Tensor(np.ones(4, np.float32))
    sd["bn1.bias"] = _Tensor(np.zeros(4, np.float32))
    sd["bn1.running_mean"] = _Tensor(np.zeros(4, np.float32))
    sd["bn1.running_var"] = _Tensor(np.ones(4, np.float32))
    sd["bn1.num_batches_tracked"] = _Tensor(np.array(0, np.int64))
    sd["fc.weight"] = _Tensor(r.standard_normal((2, 16)).astype(np.float16))
    sd["fc.bias"] = _Tensor(np.zeros(2, np.float16))
    sd._metadata = collections.OrderedDict(
        [("", {"version": 1}), ("conv1", {"version": 1}), ("bn1", {"version": 2}), ("fc", {"version": 1})]
    )
    p = models / "tiny_cnn.pth"
    write_torch_zip(p, "tiny_cnn", sd)
    ex.model(p, "pytorch", torch_meta(sd))

    # transformers' pytorch_model.bin (torch.save(state_dict, path))
    sd = collections.OrderedDict(
        (k, _Tensor(v.astype(np.float32))) for k, v in bert_tensors("pytorch_model.bin").items()
    )
    p = models / "pytorch_model.bin"
    write_torch_zip(p, "pytorch_model", sd)
    ex.model(p, "pytorch", torch_meta(sd))

    # (c) legacy (pre-1.6) format
    sd = collections.OrderedDict()
    sd["layer.weight"] = _Tensor(r.standard_normal((3, 5)).astype(np.float32))
    sd["layer.bias"] = _Tensor(r.standard_normal(3).astype(np.float32))
    p = models / "legacy.pt"
    write_torch_legacy(p, sd)
    ex.model(p, "pytorch_legacy", torch_meta(sd))


# --------------------------------------------------------------------------
# pickle / joblib / numpy
# --------------------------------------------------------------------------
def make_pickles(out: Path, ex: Expected):
    models = out / "models"
    r = pyrng("pickle")
    obj = {
        "weights": [[round(r.uniform(-1, 1), 6) for _ in range(4)] for _ in range(3)],
        "bias": [0.1, -0.2, 0.3],
        "classes": ["cat", "dog", "bird"],
        "version": 1,
    }
    for name, proto in (("plain_p4.pkl", 4), ("plain_p2.pickle", 2), ("plain_p0.pkl", 0)):
        p = models / name
        p.write_bytes(pickle.dumps(obj, protocol=proto))
        ex.model(p, "pickle", {})


def fit_logreg():
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.2, 0.9], [0.9, 0.1]])
    y = np.array([0, 1, 1, 1, 1, 1])
    return LogisticRegression(random_state=0).fit(X, y)


def make_joblib(out: Path, ex: Expected):
    import joblib

    clf = fit_logreg()
    models = out / "models"
    p = models / "sk_plain.joblib"
    joblib.dump(clf, p)
    ex.model(p, "joblib", {"compression": "none"})
    for method in ("zlib", "gzip", "bz2", "xz", "lzma", "lz4"):
        p = models / f"sk_{method}.joblib"
        joblib.dump(clf, p, compress=(method, 3))
        ex.model(p, "joblib", {"compression": method})


def npy_meta(arrays: list[np.ndarray]) -> dict:
    return {
        "tensor_count": len(arrays),
        "parameters": int(sum(a.size for a in arrays)),
        "dtypes": sorted({a.dtype.str for a in arrays}),
    }


def make_numpy(out: Path, ex: Expected):
    models = out / "models"
    r = rng("numpy")
    a = r.standard_normal((4, 8)).astype(np.float32)
    p = models / "weights.npy"
    np.save(p, a)
    ex.model(p, "numpy", {**npy_meta([a]), "shape": list(a.shape)})

    b = r.standard_normal((2, 3, 4)).astype(np.float64)
    p = models / "weights_v2.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array(f, b, version=(2, 0))
    ex.model(p, "numpy", {**npy_meta([b]), "shape": list(b.shape)})

    arrays = {
        "W": r.standard_normal((8, 4)).astype(np.float32),
        "b": r.standard_normal(4).astype(np.float32),
        "steps": np.arange(5, dtype=np.int64),
    }
    with frozen_clock():
        np.savez(models / "bundle.npz", **arrays)
        np.savez_compressed(models / "bundle_compressed.npz", **arrays)
    for name in ("bundle.npz", "bundle_compressed.npz"):
        ex.model(models / name, "numpy", npy_meta(list(arrays.values())))


# --------------------------------------------------------------------------
# Keras, TensorFlow SavedModel, TFLite
# --------------------------------------------------------------------------
def make_keras(out: Path, ex: Expected):
    import keras
    from keras.src.saving import saving_lib, serialization_lib

    keras.utils.set_random_seed(SEED % 2**31)
    model = keras.Sequential(
        [
            keras.Input((4,), name="features"),
            keras.layers.Dense(3, activation="relu", name="hidden"),
            keras.layers.Dense(2, name="logits"),
        ],
        name="tiny_dense",
    )
    models = out / "models"
    with frozen_clock(datetime_modules=[saving_lib], stable_id_modules=[serialization_lib]):
        model.save(models / "dense.keras")
        model.save(models / "dense.h5")
    version = keras.__version__
    ex.model(models / "dense.h5", "keras_h5", {"keras_version": version, "backend": keras.backend.backend()})
    ex.model(models / "dense.keras", "keras_v3", {"keras_version": version})


def make_tensorflow(out: Path, ex: Expected):
    import tensorflow as tf

    tf.random.set_seed(SEED % 2**31)
    r = rng("tf")

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__(name="tiny")
            self.w = tf.Variable(r.standard_normal((4, 3)).astype(np.float32), name="w")
            self.b = tf.Variable(np.zeros(3, np.float32), name="b")

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, self.w) + self.b)}

    m = Tiny()
    d = out / "models/savedmodel"
    tf.saved_model.save(m, str(d), signatures={"serving_default": m.__call__})
    ex.directory_model(d, "tf_savedmodel", d / "saved_model.pb")

    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
    p = out / "models/tiny.tflite"
    p.write_bytes(conv.convert())
    ex.model(p, "tflite", {"format_version": "3"})


# --------------------------------------------------------------------------
# Core ML
# --------------------------------------------------------------------------
def make_coreml(out: Path, ex: Expected):
    from coremltools.models.utils import save_spec
    from coremltools.proto import FeatureTypes_pb2, Model_pb2

    spec = Model_pb2.Model()
    spec.specificationVersion = 1
    md = spec.description.metadata
    md.author = "aiscout"
    md.license = "MIT"
    md.shortDescription = "aiscout fixture: y = 0.5*x0 - x1 + 2*x2 + 0.25"
    md.versionString = "1.0"
    inp = spec.description.input.add()
    inp.name = "x"
    inp.type.multiArrayType.shape.append(3)
    inp.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.DOUBLE
    outp = spec.description.output.add()
    outp.name = "y"
    outp.type.doubleType.SetInParent()
    spec.description.predictedFeatureName = "y"
    w = spec.glmRegressor.weights.add()
    w.value.extend([0.5, -1.0, 2.0])
    spec.glmRegressor.offset.append(0.25)

    p = out / "models/tiny.mlmodel"
    save_spec(spec, str(p))
    ex.model(p, "coreml", {"license": "MIT"})

    # the same spec as an .mlpackage directory (Manifest.json +
    # Data/com.apple.CoreML/model.mlmodel), written by coremltools' libmodelpackage
    spec.specificationVersion = 4
    pkg = out / "models/tiny.mlpackage"
    save_spec(spec, str(pkg))
    for f in pkg.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)  # libmodelpackage writes 0600
    ex.directory_model(pkg, "coreml", pkg / "Manifest.json")


# --------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------
def make_mlflow(out: Path, ex: Expected):
    import cloudpickle
    import mlflow
    import mlflow.models.model as mlflow_model_mod
    import mlflow.sklearn
    import sklearn

    clf = fit_logreg()
    store = out / "mlruns"
    mlflow.set_tracking_uri(store.resolve().as_uri())
    with frozen_clock(datetime_modules=[mlflow_model_mod], seeded_uuid="mlflow", patch_time=True):
        exp_id = mlflow.create_experiment("aiscout-fixtures")
        with mlflow.start_run(
            experiment_id=exp_id,
            run_name="tiny-logreg",
            tags={"mlflow.source.name": "scripts/make-fixtures.py", "mlflow.user": "aiscout",
                  "mlflow.source.type": "LOCAL"},
        ) as run:
            run_id = run.info.run_id
            mlflow.log_param("C", 1.0)
            with tempfile.TemporaryDirectory() as td:
                # The classic (MLflow 1.x/2.x) layout: the model directory is a
                # run artifact at <run>/artifacts/model.  MLflow 3's log_model()
                # would put it under <exp>/models/m-<id>/ instead.
                model_dir = Path(td) / "model"
                mlflow.sklearn.save_model(
                    clf,
                    str(model_dir),
                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                    mlflow_model=mlflow.models.Model(artifact_path="model", run_id=run_id),
                    pip_requirements=[
                        f"scikit-learn=={sklearn.__version__}",
                        f"cloudpickle=={cloudpickle.__version__}",
                    ],
                )
                mlflow.log_artifacts(str(model_dir), artifact_path="model")
    model_dir = store / exp_id / run_id / "artifacts" / "model"
    assert (model_dir / "MLmodel").exists() and (model_dir / "model.pkl").exists(), model_dir
    ex.directory_model(model_dir, "mlflow", model_dir / "MLmodel")
    ex.model(
        model_dir / "model.pkl",
        "pickle",
        {},
        source={"kind": "mlflow", "run_id": run_id, "experiment_id": exp_id, "artifact_path": "model"},
        group=ex.group("directory", model_dir, [model_dir / "model.pkl"]),
    )


# --------------------------------------------------------------------------
# Hugging Face hub cache, Ollama store
# --------------------------------------------------------------------------
def hf_put(repo_dir: Path, commit: str, filename: str, data: bytes, lfs: bool) -> Path:
    """Store one file like huggingface_hub's cache: blob named by its etag
    (sha256 for LFS files, git blob sha1 otherwise) and a relative symlink in
    snapshots/<commit>/."""
    name = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
    blob = repo_dir / "blobs" / name
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo_dir / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(blob, link.parent)
    link.symlink_to(rel)
    return blob


def hf_commit(repo: str) -> str:
    return hashlib.sha1(f"aiscout-fixture-commit:{repo}".encode()).hexdigest()


def make_hf_cache(out: Path, ex: Expected):
    from safetensors.numpy import save_file

    hub = out / "home/.cache/huggingface/hub"

    # acme/tiny-bert: one safetensors file + config.json
    repo = "acme/tiny-bert"
    rd = hub / ("models--" + repo.replace("/", "--"))
    commit = hf_commit(repo)
    (rd / "refs").mkdir(parents=True, exist_ok=True)
    (rd / "refs/main").write_text(commit)  # no newline, as huggingface_hub writes it
    tensors = bert_tensors("hf-tiny-bert")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "model.safetensors"
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        st_bytes = tmp.read_bytes()
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": 16,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "vocab_size": 32,
        "torch_dtype": "float32",
        "transformers_version": "4.44.0",
    }
    hf_put(rd, commit, "config.json", (json.dumps(config, indent=2) + "\n").encode(), lfs=False)
    blob = hf_put(rd, commit, "model.safetensors", st_bytes, lfs=True)
    ex.model(blob, "safetensors", st_meta(tensors),
             source={"kind": "huggingface", "repo": repo, "revision": commit, "file": "model.safetensors"})

    # acme/tiny-sharded: two shards + index (+ config.json)
    repo = "acme/tiny-sharded"
    rd = hub / ("models--" + repo.replace("/", "--"))
    commit = hf_commit(repo)
    (rd / "refs").mkdir(parents=True, exist_ok=True)
    (rd / "refs/main").write_text(commit)
    with tempfile.TemporaryDirectory() as td:
        tensors = bert_tensors("hf-tiny-sharded")
        names, shards = write_sharded_safetensors(Path(td), tensors, 2)
        hf_put(rd, commit, "config.json", (json.dumps(config, indent=2) + "\n").encode(), lfs=False)
        index_blob = hf_put(rd, commit, "model.safetensors.index.json",
                            (Path(td) / "model.safetensors.index.json").read_bytes(), lfs=False)
        blobs = [hf_put(rd, commit, n, (Path(td) / n).read_bytes(), lfs=True) for n in names]
    grp = ex.group("sharded", index_blob, [index_blob, *blobs])
    for n, b, shard in zip(names, blobs, shards):
        ex.model(b, "safetensors", st_meta(shard),
                 source={"kind": "huggingface", "repo": repo, "revision": commit, "file": n}, group=grp)


def make_ollama(out: Path, ex: Expected):
    store = out / "home/.ollama/models"
    blobs = store / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> tuple[str, int, Path]:
        digest = hashlib.sha256(data).hexdigest()
        p = blobs / f"sha256-{digest}"
        p.write_bytes(data)
        return f"sha256:{digest}", len(data), p

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "model.gguf"
        meta, per_file = gguf_llama(tmp, "TinyLlama Fixture", tag="ollama")
        model_digest, model_size, model_path = put(tmp.read_bytes())
    template = b"{{ if .System }}<|system|>\n{{ .System }}</s>\n{{ end }}<|user|>\n{{ .Prompt }}</s>\n<|assistant|>\n"
    license_text = b"Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n\n(fixture text)\n"
    t_digest, t_size, _ = put(template)
    l_digest, l_size, _ = put(license_text)
    config = {
        "model_format": "gguf",
        "model_family": "llama",
        "model_families": ["llama"],
        "model_type": "1M",
        "file_type": "F16",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [model_digest, t_digest, l_digest]},
    }
    c_digest, c_size, _ = put(json.dumps(config, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": c_digest, "size": c_size},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": model_digest, "size": model_size},
            {"mediaType": "application/vnd.ollama.image.template", "digest": t_digest, "size": t_size},
            {"mediaType": "application/vnd.ollama.image.license", "digest": l_digest, "size": l_size},
        ],
    }
    mp = store / "manifests/registry.ollama.ai/library/tinyllama/latest"
    mp.parent.mkdir(parents=True, exist_ok=True)
    mp.write_bytes(json.dumps(manifest, separators=(",", ":")).encode())  # Go json.Marshal: compact
    ex.model(model_path, "gguf", {**meta, **tensor_meta(per_file[0])},
             source={"kind": "ollama", "name": "tinyllama:latest"})


# --------------------------------------------------------------------------
# decoys and hazards
# --------------------------------------------------------------------------
def tiny_png(width=4, height=4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"".join(bytes((x * 60 % 256, y * 60 % 256, 128)) for x in range(width))
                   for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def make_decoys(out: Path, ex: Expected):
    import h5py

    d = out / "decoys"
    d.mkdir(parents=True, exist_ok=True)
    r = pyrng("decoys")

    def put(name, data: bytes):
        p = d / name
        p.write_bytes(data)
        ex.decoy(p)

    put("notes.pt", b"Meeting notes\n\nThe .pt extension here stands for 'participants'.\n"
                    b"- Alice: review the scanner design\n- Bob: write the fixtures\n")
    put("random.bin", r.randbytes(4096))
    body = r.randbytes(256)
    if body[:1] == b"{":
        body = b"\x00" + body[1:]
    put("garbage.safetensors", struct.pack("<Q", 256) + body)

    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("hello.txt", "hello, world\n"), ("docs/notes.md", "# Notes\n\nNothing to see.\n")):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), text)
    put("plain.zip", zbuf.getvalue())

    p = d / "data.h5"
    with h5py.File(p, "w", track_order=False) as f:
        f.create_dataset("measurements", data=np.arange(12, dtype=np.float64).reshape(3, 4), track_times=False)
        f.attrs["instrument"] = "thermometer"
    ex.decoy(p)

    put("config.json", (json.dumps({"log_level": "info", "listen": "127.0.0.1:8080", "model_dir": "/srv/models"},
                                   indent=2) + "\n").encode())
    put("text.pkl", b"This is not a pickle.\nIt is a text file with a .pkl extension.\n")
    put("empty.onnx", b"")
    put("readme.gguf", b"GGUF is a format for storing models for inference with GGML-based executors.\n"
                       b"This file is only a README that happens to start with the same four bytes.\n")

    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, text in (("a.txt", b"alpha\n"), ("b/c.txt", b"charlie\n")):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(text), FIXED_EPOCH, 0o644
            tf.addfile(ti, io.BytesIO(text))
    put("archive.tar", tbuf.getvalue())
    put("image.png", tiny_png())
    put("script.py", b"#!/usr/bin/env python3\n\"\"\"Loads a model; it is not one.\"\"\"\n"
                     b"import torch\n\nmodel = torch.load('model.pt', weights_only=True)\nprint(model)\n")


def make_hazards(out: Path, ex: Expected):
    d = out / "hazards"
    d.mkdir(parents=True, exist_ok=True)

    def put(name, data: bytes):
        p = d / name
        p.write_bytes(data)
        ex.hazard(p)

    # GGUF v3, 0 tensors, 2**60 key/value pairs, then a little bit of data
    put("huge_kv.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 2**60) + b"\x08\x00\x00\x00\x00\x00\x00\x00general.")
    # safetensors header length 2**63
    put("huge_header.safetensors", struct.pack("<Q", 2**63) + b'{"__metadata__":{}}')
    # header length 1000 but only 20 bytes follow
    put("truncated.safetensors", struct.pack("<Q", 1000) + b'{"w":{"dtype":"F32",')
    # ONNX ModelProto: ir_version=7 (08 07), then field 7 (graph, wire type 2:
    # tag 0x3a) with a 10-byte varint length of 0xFFFFFFFFFFFFFFFF
    put("absurd_varint.onnx", b"\x08\x07\x3a" + b"\xff" * 9 + b"\x01" + b"\x0a\x04tiny")
    # .npy v1.0 with a header length of 60000, but the file ends after a few bytes
    put("bad_npy.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + b"{'descr': '<f4', 'fortran_order': False, ")
    # truncated.gguf is written by make_gguf()


# --------------------------------------------------------------------------
# self-check: read everything back with the formats' own readers
# --------------------------------------------------------------------------
class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, off, size, stride, *a: storage[off: off + int(np.prod(size, dtype=np.int64))].reshape(size)
        if module == "torch" and name.endswith("Storage"):
            return {"FloatStorage": np.float32, "HalfStorage": np.float16, "LongStorage": np.int64}[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        kind, dtype, key, location, numel = pid[:5]
        assert kind == "storage" and location == "cpu"
        return np.frombuffer(self.storages(key, dtype, numel), dtype=dtype)


def verify(out: Path, expected: dict):
    import gguf
    import h5py
    import joblib
    import onnx
    import tflite
    from safetensors import safe_open

    for m in expected["models"]:
        p = out / m["path"]
        fmt, md = m["format"], m["metadata"]
        if fmt == "gguf":
            rd = gguf.GGUFReader(p)
            assert len(rd.tensors) == md["tensor_count"], m
            assert sum(int(t.n_elements) for t in rd.tensors) == md["parameters"], m
            assert sorted({t.tensor_type.name for t in rd.tensors}) == md["dtypes"], m
            if "split_no" in md:
                assert int(rd.fields["split.no"].contents()) == md["split_no"]
            if "name" in md:
                assert rd.fields["general.name"].contents() == md["name"]
        elif fmt == "safetensors":
            with safe_open(str(p), "np") as f:
                keys = list(f.keys())
                assert len(keys) == md["tensor_count"]
                assert f.metadata() == {"format": "pt"}
        elif fmt == "onnx":
            mo = onnx.load(str(p))
            assert mo.producer_name == md["producer"] and mo.ir_version == md["ir_version"]
            assert mo.opset_import[0].version == md["opset"]
        elif fmt in ("pytorch", "pytorch_legacy"):
            if fmt == "pytorch":
                with zipfile.ZipFile(p) as zf:
                    root = zf.namelist()[0].split("/")[0]
                    assert zf.read(f"{root}/version") == b"3\n"
                    obj = _TorchUnpickler(
                        io.BytesIO(zf.read(f"{root}/data.pkl")),
                        lambda key, dt, n: zf.read(f"{root}/data/{key}"),
                    ).load()
            else:
                f = io.BytesIO(p.read_bytes())
                assert pickle.load(f) == MAGIC_NUMBER and pickle.load(f) == PROTOCOL_VERSION
                pickle.load(f)
                pending = {}
                obj = _TorchUnpickler(f, lambda key, dt, n: pending.setdefault(key, (dt, n)) and b"\0" * (n * np.dtype(dt).itemsize)).load()
                keys = pickle.load(f)
                assert keys == sorted(pending)
                for key in keys:
                    n = struct.unpack("<q", f.read(8))[0]
                    dt, n2 = pending[key]
                    assert n == n2
                    f.read(n * np.dtype(dt).itemsize)
                assert f.read() == b""
            assert len(obj) == md["tensor_count"]
            assert sum(v.size for v in obj.values()) == md["parameters"]
        elif fmt == "joblib":
            clf = joblib.load(p)
            assert clf.predict(np.array([[1.0, 1.0]]))[0] == 1
        elif fmt == "numpy":
            if p.suffix == ".npy":
                a = np.load(p)
                assert list(a.shape) == md["shape"]
            else:
                with np.load(p) as z:
                    assert len(z.files) == md["tensor_count"]
        elif fmt == "keras_h5":
            with h5py.File(p) as f:
                assert "model_config" in f.attrs and "model_weights" in f
                assert f.attrs["keras_version"] == md["keras_version"]
        elif fmt == "keras_v3":
            with zipfile.ZipFile(p) as zf:
                assert json.loads(zf.read("metadata.json"))["keras_version"] == md["keras_version"]
                assert {"config.json", "metadata.json", "model.weights.h5"} <= set(zf.namelist())
        elif fmt == "tflite":
            b = p.read_bytes()
            assert b[4:8] == b"TFL3" and tflite.Model.GetRootAsModel(b, 0).Version() == int(md["format_version"])
        elif fmt == "coreml":
            from coremltools.models.utils import load_spec

            assert load_spec(str(p)).description.metadata.license == md["license"]
        elif fmt == "pickle":
            with open(p, "rb") as f:
                if m["source"] and m["source"]["kind"] == "mlflow":
                    assert pickle.load(f).predict(np.array([[1.0, 1.0]]))[0] == 1
                else:
                    assert pickle.load(f)["version"] == 1
        else:
            raise AssertionError(f"no verifier for {fmt}")

    for dm in expected["directory_models"]:
        assert (out / dm["defining_file"]).is_file(), dm
    if any(dm["format"] == "openvino" for dm in expected["directory_models"]):
        import openvino as ov

        for dm in expected["directory_models"]:
            if dm["format"] == "openvino":
                assert ov.Core().read_model(str(out / dm["path"])).get_friendly_name() == "tiny_linear"
    if any(dm["format"] == "tf_savedmodel" for dm in expected["directory_models"]):
        import tensorflow as tf

        for dm in expected["directory_models"]:
            if dm["format"] == "tf_savedmodel":
                loaded = tf.saved_model.load(str(out / dm["path"]))
                assert "serving_default" in loaded.signatures
    for rel in expected["decoys"] + expected["hazards"]:
        assert (out / rel).exists(), rel


# --------------------------------------------------------------------------
def generate(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    for name in OWNED:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    for sub in ("models", "decoys", "hazards"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    ex = Expected(out)
    steps = [
        ("gguf", lambda: make_gguf(out, ex)),
        ("safetensors", lambda: make_safetensors(out, ex)),
        ("pytorch", lambda: make_pytorch(out, ex)),
        ("pickle", lambda: make_pickles(out, ex)),
        ("joblib", lambda: make_joblib(out, ex)),
        ("numpy", lambda: make_numpy(out, ex)),
        ("hf-cache", lambda: make_hf_cache(out, ex)),
        ("ollama", lambda: make_ollama(out, ex)),
        ("decoys", lambda: make_decoys(out, ex)),
        ("hazards", lambda: make_hazards(out, ex)),
        ("coreml", lambda: make_coreml(out, ex)),
        ("mlflow", lambda: make_mlflow(out, ex)),
        ("keras", lambda: make_keras(out, ex)),
        ("tensorflow", lambda: make_tensorflow(out, ex)),
    ]
    for name, fn in steps:
        t = time.monotonic()
        fn()
        print(f"  {name:12s} {time.monotonic() - t:5.1f}s", file=sys.stderr)
    t = time.monotonic()
    onnx_path = make_onnx(out, ex)
    make_openvino(out, ex, onnx_path)
    print(f"  {'onnx+ov':12s} {time.monotonic() - t:5.1f}s", file=sys.stderr)

    expected = ex.finish()
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    t = time.monotonic()
    verify(out, expected)
    print(f"  {'verify':12s} {time.monotonic() - t:5.1f}s", file=sys.stderr)
    return expected


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    if args.check:
        committed = json.loads((DEFAULT_OUT / "expected.json").read_text())
        with tempfile.TemporaryDirectory() as td:
            fresh = generate(Path(td) / "fixtures")
        a = {m["path"]: m for m in committed["models"]}
        b = {m["path"]: m for m in fresh["models"]}
        bad = sorted(set(a) ^ set(b)) + sorted(k for k in set(a) & set(b) if a[k] != b[k])
        for k in ("directory_models", "decoys", "hazards"):
            if committed[k] != fresh[k]:
                bad.append(k)
        for k in bad:
            print(f"differs: {k}", file=sys.stderr)
        print("check: " + ("OK, regenerated fixtures match expected.json" if not bad else f"{len(bad)} differences"))
        return 1 if bad else 0

    generate(args.out.resolve())
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"wrote {args.out} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
