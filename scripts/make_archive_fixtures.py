#!/usr/bin/env python3
"""Archive fixtures of the safety corpus (tests/fixtures/safety/{benign,hostile}/).

Archives holding models (zip, tar, tar.gz, tar.bz2, tar.xz, 7z, nested), zip tricks that
loaders ignore (encryption flag on plain data, a central directory that hides a member the
local headers show, data before the first header, bad CRCs, duplicate names), an archive past
the nesting bound, and archives that carry code by design (TorchServe .mar, NeMo .nemo, skops,
an MLflow python_function model), each hostile one with a benign twin.

Written with the formats' own tools: zipfile, tarfile, gzip/bz2/lzma, py7zr, skops. Nothing in
hostile/ is loaded: pickles are written by pickle.dumps of a stand-in whose __reduce__ names
os.system, handlers and configs are text. Payloads are inert (`touch /tmp/aiscout-pwned-*`).

make-fixtures.py calls make() for a full regeneration. Alone, with only the small libraries:

    python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy py7zr skops
    /tmp/v/bin/python scripts/make_archive_fixtures.py

rewrites these files and their entries in expected.json (marked "generator": "archives"),
leaving every other entry alone, and the corpus README. skops writes object ids into schema.json and py7zr writes
the time into its header: those files differ from run to run (SAFETY_NONDETERMINISTIC).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import shutil
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

GENERATOR = "archives"
EPOCH = 1704067200  # 2024-01-01T00:00:00Z
DATE = (2024, 1, 1, 0, 0, 0)
PWN = "/tmp/aiscout-pwned-"
# Files whose bytes change on every run.
NONDETERMINISTIC = ("skops_benign.skops", "skops_hostile.skops", "nested_7z_in_tar.tar", "nested_7z_in_tar_ok.tar")


class _System:
    """Pickles as os.system(<inert command>): what a malicious __reduce__ returns. Never loaded."""

    def __init__(self, tag: str):
        self.tag = tag

    def __reduce__(self):
        return (os.system, (f"touch {PWN}{self.tag}",))


def hostile_pickle(tag: str) -> bytes:
    return pickle.dumps({"weights": [0.5, 1.5], "hook": _System(tag)}, protocol=2)


def safe_pickle() -> bytes:
    return pickle.dumps({"weights": [0.5, 1.5], "bias": 0.25, "name": "tiny"}, protocol=4)


def npy() -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(2, 3))
    return buf.getvalue()


def torch_zip(payload: bytes) -> bytes:
    """The layout torch.save writes (root folder, data.pkl, version, byteorder)."""
    return zip_of([("archive/data.pkl", payload), ("archive/byteorder", b"little"), ("archive/version", b"3\n")])


def zip_of(members: list[tuple[str, bytes]], deflate: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, DATE)
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def tar_of(members: list[tuple[str, bytes]], compression: str = "") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), EPOCH, 0o644
            tf.addfile(ti, io.BytesIO(data))
    data = raw.getvalue()
    if compression == "gz":
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
            g.write(data)
        return out.getvalue()
    if compression == "bz2":
        return bz2.compress(data)
    if compression == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ)
    return data


def sevenz_of(members: list[tuple[str, bytes]]) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(data, name)
    return buf.getvalue()


def set_flags(data: bytes, name: str, flags: int) -> bytes:
    """Sets the general-purpose flags of member `name` in its local and central headers."""
    out = bytearray(data)
    enc = name.encode()
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = 0
        while (i := out.find(sig, i)) >= 0:
            name_at = i + (30 if sig == b"PK\x03\x04" else 46)
            if out[name_at:name_at + len(enc)] == enc:
                struct.pack_into("<H", out, i + off, flags)
            i += 4
    return bytes(out)


def break_crc(data: bytes, name: str) -> bytes:
    out = bytearray(data)
    enc = name.encode()
    for sig, off in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        i = 0
        while (i := out.find(sig, i)) >= 0:
            name_at = i + (30 if sig == b"PK\x03\x04" else 46)
            if out[name_at:name_at + len(enc)] == enc:
                struct.pack_into("<I", out, i + off, 0xDEADBEEF)
            i += 4
    return bytes(out)


def hide_from_central(data: bytes, hidden: str) -> bytes:
    """Drops `hidden`'s central directory record (fixing the end record): zipfile no longer
    sees the member; its local header and data stay where they were."""
    eocd = data.rindex(b"PK\x05\x06")
    count, cd_size, cd_off = struct.unpack_from("<HII", data, eocd + 10)
    cd = data[cd_off:cd_off + cd_size]
    kept, i = b"", 0
    while i < len(cd):
        n, e, c = struct.unpack_from("<HHH", cd, i + 28)
        rec = cd[i:i + 46 + n + e + c]
        if cd[i + 46:i + 46 + n].decode() != hidden:
            kept += rec
        i += len(rec)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count - 1, count - 1, len(kept), cd_off, 0)
    return data[:cd_off] + kept + end


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes sizes in data descriptors after each member."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


def streamed_zip(members: list[tuple[str, bytes]]) -> bytes:
    out = _Unseekable()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return bytes(out.buf)


def duplicate_names(first: bytes, second: bytes) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": zipfile writes it anyway
        with zipfile.ZipFile(buf, "w") as zf:
            for data in (first, second):
                info = zipfile.ZipInfo("weights.pkl", DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
    return buf.getvalue()


def nested_zips(depth: int, inner: bytes) -> bytes:
    data = zip_of([("weights.pkl", inner)])
    for level in range(depth - 1, 0, -1):
        data = zip_of([(f"level{level}.zip", data)])
    return data


MANIFEST = {
    "createdOn": "01/01/2024 00:00:00",
    "runtime": "python",
    "model": {"modelName": "tiny", "serializedFile": "model.pt", "handler": "handler.py", "modelVersion": "1.0"},
    "archiverVersion": "0.12.0",
}
HANDLER_OK = b'''"""TorchServe handler for the tiny model."""
import json
import os

import torch
from ts.torch_handler.base_handler import BaseHandler

LABELS = os.path.join(os.path.dirname(__file__), "labels.json")


class TinyHandler(BaseHandler):
    def preprocess(self, data):
        return torch.tensor([row.get("body") for row in data])

    def postprocess(self, output):
        return json.loads(json.dumps(output.tolist()))
'''
HANDLER_BAD = b'''"""TorchServe handler for the tiny model."""
import subprocess

import torch
from ts.torch_handler.base_handler import BaseHandler

subprocess.run(["touch", "''' + PWN.encode() + b'''mar_handler"])


class TinyHandler(BaseHandler):
    def preprocess(self, data):
        return torch.tensor([row.get("body") for row in data])
'''


def mar(handler: bytes) -> bytes:
    """The layout torch-model-archiver writes: the model file, the handler, MAR-INF/MANIFEST.json."""
    return zip_of([
        ("model.pt", torch_zip(safe_pickle())),
        ("handler.py", handler),
        ("MAR-INF/MANIFEST.json", json.dumps(MANIFEST, indent=2).encode()),
    ])


NEMO_CONFIG = """target: nemo.collections.asr.models.EncDecCTCModel
preprocessor:
  _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor
  sample_rate: 16000
decoder:
  _target_: {decoder}
  feat_in: 64
"""


def nemo(decoder: str) -> bytes:
    """NeMo's save_to: a tar of ./model_config.yaml and ./model_weights.ckpt."""
    return tar_of([
        ("./model_config.yaml", NEMO_CONFIG.format(decoder=decoder).encode()),
        ("./model_weights.ckpt", torch_zip(safe_pickle())),
    ])


MLMODEL = """artifact_path: model
flavors:
  python_function:
    cloudpickle_version: 3.0.0
    code: code
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.11.0
mlflow_version: 2.12.1
model_uuid: 0123456789abcdef0123456789abcdef
utc_time_created: '2024-01-01 00:00:00.000000'
"""
MODULE_OK = b'''"""Feature helpers the model imports."""
import math

SCALE = math.sqrt(2.0)


def features(x):
    return [v * SCALE for v in x]
'''
MODULE_BAD = b'''"""Feature helpers the model imports."""
import socket

socket.create_connection(("127.0.0.1", 9))


def features(x):
    return x
'''


def mlflow_pyfunc(module: bytes) -> bytes:
    return zip_of([
        ("model/MLmodel", MLMODEL.encode()),
        ("model/python_model.pkl", safe_pickle()),
        ("model/code/features.py", module),
    ])


def skops_file(obj) -> bytes:
    import skops.io as sio

    return sio.dumps(obj)


def logreg():
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))


def make(root: Path, sx) -> None:
    """Writes the archive fixtures under root/{benign,hostile} and records them in sx (make-fixtures.py's
    SafetyExpected, or the stand-in below)."""
    b, h = root / "benign", root / "hostile"

    def benign(name: str, data: bytes, technique: str):
        (b / name).write_bytes(data)
        sx.b(b / name, "archive")
        sx.benign[-1].update(generator=GENERATOR, technique=technique)

    def hostile(name: str, data: bytes, technique: str, min_verdict: str, imports=(), **extra):
        (h / name).write_bytes(data)
        sx.h(h / name, "archive", technique, "aiscout issue 12", min_verdict, imports, generator=GENERATOR, **extra)

    evil, ok = hostile_pickle, safe_pickle()
    hostile("nested_tgz_in_zip.zip", zip_of([("inner.tar.gz", tar_of([("model/weights.pkl", evil("nested"))], "gz"))]),
            "a pickle with an os.system reduce inside a tar.gz inside a zip", "dangerous", ["posix.system"],
            location="inner.tar.gz!model/weights.pkl")
    benign("nested_tgz_in_zip_ok.zip",
           zip_of([("inner.tar.gz", tar_of([("model/weights.pkl", ok), ("model/embed.npy", npy())], "gz"))]),
           "a safe pickle and a NumPy array inside a tar.gz inside a zip")
    hostile("nested_tar_formats.tar", tar_of([
        ("a.tar.bz2", tar_of([("w.pkl", evil("bz2"))], "bz2")),
        ("b.tar.xz", tar_of([("w.pkl", evil("xz"))], "xz")),
        ("c.pkl.gz", gzip.compress(evil("gz"), mtime=0)),
    ]), "os.system pickles inside a tar.bz2, a tar.xz and a gzip-compressed pickle, all inside a tar",
        "dangerous", ["posix.system"], location="a.tar.bz2!w.pkl")
    benign("nested_tar_formats_ok.tar", tar_of([
        ("a.tar.bz2", tar_of([("w.pkl", ok)], "bz2")),
        ("b.tar.xz", tar_of([("w.npy", npy())], "xz")),
        ("c.pkl.gz", gzip.compress(ok, mtime=0)),
    ]), "safe pickles and arrays inside a tar.bz2, a tar.xz and a .pkl.gz inside a tar")
    hostile("nested_7z_in_tar.tar", tar_of([("m.7z", sevenz_of([("evil.pkl", evil("7z"))]))]),
            "an os.system pickle inside a 7z (py7zr) inside a tar", "dangerous", ["posix.system"],
            location="m.7z!evil.pkl")
    benign("nested_7z_in_tar_ok.tar", tar_of([("m.7z", sevenz_of([("ok.pkl", ok)]))]),
           "a safe pickle inside a 7z inside a tar")
    # A renamed archive: detection goes by content.
    hostile("renamed_tgz.bin", tar_of([("w.pkl", evil("renamed"))], "gz"),
            "a tar.gz named .bin holding an os.system pickle", "dangerous", ["posix.system"])

    # Zip tricks that loaders ignore.
    plain = zip_of([("readme.txt", b"tiny model\n"), ("weights.pkl", evil("flag"))])
    hostile("zip_encrypted_flag.zip", set_flags(plain, "weights.pkl", 0x1),
            "the encryption flag set on a plain (unencrypted) member", "dangerous", ["posix.system"])
    hostile("zip_central_hides_member.zip",
            hide_from_central(zip_of([("readme.txt", b"tiny model\n"), ("weights.pkl", evil("hidden"))]),
                              "weights.pkl"),
            "the central directory omits a member the local headers hold (zipfile does not list it, "
            "a streaming extractor does)", "dangerous", ["posix.system"], finding="hidden_member")
    renamed = bytearray(zip_of([("notes.txt", evil("renamed_local"))]))
    at = renamed.index(b"PK\x03\x04") + 30
    renamed[at:at + 9] = b"model.pkl"  # the local header only; the central directory keeps notes.txt
    hostile("zip_local_name_differs.zip", bytes(renamed),
            "the local header names the member model.pkl, the central directory notes.txt", "dangerous",
            ["posix.system"], finding="header_mismatch")
    hostile("zip_streamed_hides_member.zip",
            hide_from_central(streamed_zip([("readme.txt", b"tiny model\n"), ("weights.pkl", evil("streamed"))]),
                              "weights.pkl"),
            "written to a stream (sizes in data descriptors, not the local headers), then the central "
            "directory record of the hostile member dropped", "dangerous", ["posix.system"], finding="hidden_member")
    benign("zip_streamed_ok.zip", streamed_zip([("readme.txt", b"tiny model\n"), ("weights.pkl", ok)]),
           "written to a stream (data descriptors), safe pickle")
    hostile("zip_prefixed.zip", b"#!/bin/sh\nexit 0\n" + b"\0" * 64 + zip_of([("weights.pkl", evil("prefix"))]),
            "data before the first local header (a shell stub, as self-extracting archives have)",
            "dangerous", ["posix.system"])
    hostile("zip_bad_crc.zip", break_crc(zip_of([("weights.pkl", evil("crc"))]), "weights.pkl"),
            "a wrong CRC on the hostile member", "dangerous", ["posix.system"])
    hostile("zip_duplicate_names.zip", duplicate_names(ok, evil("dup")),
            "two members named weights.pkl, the second hostile (zipfile reads the last)",
            "dangerous", ["posix.system"])
    benign("zip_tricks_ok.zip", b"#!/bin/sh\nexit 0\n" + duplicate_names(ok, ok),
           "data before the first header and duplicate names, both members safe")
    hostile("nested_past_depth.zip", nested_zips(6, ok),
            "zips nested 6 deep: past the walk's depth bound, so what is inside is not seen",
            "suspicious", finding="bound_exceeded")
    hostile("bomb_member.tar.bz2", tar_of([("zeros.bin", bytes(70 << 20)), ("w.pkl", ok)], "bz2"),
            "a tar.bz2 of a few hundred bytes whose first member expands to 70 MiB: past the per-member bound",
            "suspicious", finding="bound_exceeded", location="zeros.bin")
    benign("nested_in_depth.zip", nested_zips(3, ok), "zips nested 3 deep holding a safe pickle")

    # Archives that carry code by design.
    hostile("torchserve_hostile.mar", mar(HANDLER_BAD),
            "TorchServe archive whose handler.py runs subprocess.run at import", "dangerous",
            finding="dangerous_code")
    benign("torchserve_ok.mar", mar(HANDLER_OK), "TorchServe archive with a handler that only defines a class")
    hostile("nemo_hostile.nemo", nemo("subprocess.Popen"),
            "NeMo checkpoint whose model_config.yaml _target_ is subprocess.Popen", "dangerous",
            finding="config_target")
    benign("nemo_ok.nemo", nemo("nemo.collections.asr.modules.ConvASRDecoder"),
           "NeMo checkpoint whose targets are all nemo classes")
    hostile("mlflow_pyfunc_hostile.zip", mlflow_pyfunc(MODULE_BAD),
            "zipped MLflow python_function model whose code/ module opens a socket at import", "dangerous",
            finding="dangerous_code")
    benign("mlflow_pyfunc_ok.zip", mlflow_pyfunc(MODULE_OK), "zipped MLflow python_function model, plain code/ module")
    for side, module in ((h, MODULE_BAD), (b, MODULE_OK)):
        d = side / ("mlflow_pyfunc_dir" if side == h else "mlflow_pyfunc_dir_ok")
        (d / "code").mkdir(parents=True, exist_ok=True)
        (d / "MLmodel").write_text(MLMODEL)
        (d / "python_model.pkl").write_bytes(safe_pickle())
        (d / "code" / "features.py").write_bytes(module)
    sx.h(h / "mlflow_pyfunc_dir", "mlflow", "MLflow python_function model directory whose code/ module opens a "
         "socket at import", "aiscout issue 12", "dangerous", [], generator=GENERATOR, finding="dangerous_code",
         location="code/features.py")
    sx.b(b / "mlflow_pyfunc_dir_ok", "mlflow")
    sx.benign[-1].update(generator=GENERATOR, technique="MLflow python_function model directory, plain code/ module")
    hostile("skops_hostile.skops", skops_file({"model": logreg(), "hook": os.system}),
            "skops file whose schema names posix.system (written by skops.io.dumps)", "dangerous",
            ["posix.system"], finding="untrusted_type")
    benign("skops_benign.skops", skops_file(logreg()), "skops file of a LogisticRegression")


def verify(root: Path, entries: list[dict]) -> None:
    """Self-check, reading back with the formats' own libraries and never loading a hostile
    file: every zip and tar opens, the hostile pickles name posix.system, skops lists (or not)
    the untrusted type."""
    import skops.io as sio

    for e in entries:
        p = root / e["path"]
        if p.is_dir():
            assert (p / "MLmodel").is_file() and (p / "code" / "features.py").is_file(), e["path"]
            continue
        if p.suffix == ".skops":
            untrusted = sio.get_untrusted_types(file=p)
            assert (untrusted == []) == p.parent.name.endswith("benign"), (e["path"], untrusted)
        elif p.read_bytes()[:4] == b"PK\x03\x04" and "hides" not in p.name:
            with zipfile.ZipFile(p) as zf:
                assert zf.namelist(), e["path"]
        elif p.suffix in (".tar", ".nemo"):
            with tarfile.open(p) as tf:
                assert tf.getnames(), e["path"]


class _Expected:
    """SafetyExpected's interface, for a run of this script alone."""

    def __init__(self, root: Path):
        self.root, self.benign, self.hostile = root, [], []

    def b(self, path: Path, fmt: str):
        self.benign.append({"path": path.relative_to(self.root).as_posix(), "format": fmt})

    def h(self, path: Path, fmt: str, technique: str, source: str, min_verdict: str, imports=(), **extra):
        e = {"path": path.relative_to(self.root).as_posix(), "format": fmt, "technique": technique,
             "source": source, "min_verdict": min_verdict, "imports": list(imports)}
        e.update(extra)
        self.hostile.append(e)


def main() -> int:
    root = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "safety"
    expected_path = root / "expected.json"
    expected = json.loads(expected_path.read_text())
    for side in ("benign", "hostile"):
        for e in expected[side]:
            if e.get("generator") == GENERATOR:
                p = root / e["path"]
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
        expected[side] = [e for e in expected[side] if e.get("generator") != GENERATOR]
    sx = _Expected(root)
    make(root, sx)
    for side in ("benign", "hostile"):
        expected[side] = sorted(expected[side] + getattr(sx, side), key=lambda e: e["path"])
    verify(root, sx.benign + sx.hostile)
    expected_path.write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    # The corpus README lists every file: rewrite it with make-fixtures.py's own writer.
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", Path(__file__).with_name("make-fixtures.py"))
    if spec and spec.loader:
        make_fixtures = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make_fixtures)
        (root / "README.md").write_text(make_fixtures.safety_readme(expected))
    total = sum(f.stat().st_size for e in sx.benign + sx.hostile for f in [root / e["path"], *(root / e["path"]).rglob("*")]
                if f.is_file())
    print(f"wrote {len(sx.benign)} benign and {len(sx.hostile)} hostile archives ({total // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
