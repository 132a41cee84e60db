#!/usr/bin/env python3
"""Checks export files with the formats' own reference libraries, offline.

    check-exports.py cyclonedx FILE...   CycloneDX: cyclonedx-python-lib's
                                         JsonStrictValidator(SchemaVersion.V1_6)
    check-exports.py spdx FILE...        SPDX 3.0.1: spdx-python-model's v3_0_1 JSON-LD
                                         deserializer (unknown types or properties fail),
                                         then a serialization of what it read (a missing
                                         required property fails) and every reference resolved

Prints one line per file with what it holds; exits 1 naming the first problem of each bad file.
Run it with the Python of scripts/exports-venv.sh.
"""
import io
import json
import sys
from collections import Counter


def check_cyclonedx(path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = open(path, encoding="utf-8").read()
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        return f"not valid CycloneDX 1.6: {error}"
    doc = json.loads(text)
    kinds = Counter(c.get("type") for c in doc.get("components", []))
    return "ok: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + \
        f", {len(doc.get('services', []))} services, {len(doc.get('dependencies', []))} dependencies"


def check_spdx(path):
    from spdx_python_model import v3_0_1 as spdx

    objects = spdx.SHACLObjectSet()
    with open(path, encoding="utf-8") as f:
        spdx.JSONLDDeserializer().read(f, objects)
    # Serialising checks every required property and cardinality of what was read.
    spdx.JSONLDSerializer().write(objects, io.BytesIO())
    missing = set()
    objects.link()
    for o in objects.objects:
        o.link_helper(objects, missing, set())
    if missing:
        return f"references to elements not in the document: {sorted(missing)[:5]}"
    kinds = Counter(type(o).__name__ for o in objects.objects)
    return "ok: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("cyclonedx", "spdx"):
        print(__doc__, file=sys.stderr)
        return 2
    check = check_cyclonedx if sys.argv[1] == "cyclonedx" else check_spdx
    failed = False
    for path in sys.argv[2:]:
        try:
            result = check(path)
        except Exception as e:  # the libraries raise many kinds; each is a refusal
            result = f"refused: {type(e).__name__}: {e}"
        failed |= not result.startswith("ok")
        print(f"{path}: {result}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
