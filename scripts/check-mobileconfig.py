#!/usr/bin/env python3
"""Checks macOS configuration profiles (.mobileconfig) as MDM servers and macOS read them.

Usage: check-mobileconfig.py FILE...

Each file must parse as a property list (plistlib: XML or binary) and hold:
1. a top-level profile: PayloadType "Configuration", PayloadIdentifier, PayloadUUID,
   PayloadVersion 1, PayloadDisplayName, and a non-empty PayloadContent array;
2. in PayloadContent, payloads that each carry PayloadType, PayloadIdentifier, PayloadUUID and
   PayloadVersion 1;
3. UUIDs in the canonical 8-4-4-4-12 form, unique across every file given (two profiles with
   one UUID replace each other on the Mac), and identifiers unique likewise;
4. for the payload types aiscout ships, the keys macOS acts on: TCC (PPPC) services whose
   entries name Identifier, IdentifierType, CodeRequirement and Authorization (or the older
   Allowed); service management rules with a known RuleType; the agent's settings with an
   https collector URL, a PEM CA and a token.

Prints one line per problem, naming the file and the key path, and a summary; exits 1 when
there is any problem.
"""

import plistlib
import re
import sys

UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
PAYLOAD_KEYS = ("PayloadType", "PayloadIdentifier", "PayloadUUID", "PayloadVersion")
PROFILE_KEYS = PAYLOAD_KEYS + ("PayloadDisplayName", "PayloadContent")
# Apple's service management rule types (com.apple.servicemanagement, Rules).
RULE_TYPES = {"BundleIdentifier", "BundleIdentifierPrefix", "Label", "LabelPrefix", "TeamIdentifier"}
TCC_AUTHORIZATIONS = {"Allow", "Deny", "AllowStandardUserToSetSystemService"}


def check_tcc(where, payload, problems):
    services = payload.get("Services")
    if not isinstance(services, dict) or not services:
        problems.append(f"{where}.Services: missing or empty")
        return
    for service, entries in services.items():
        if not isinstance(entries, list) or not entries:
            problems.append(f"{where}.Services.{service}: must be a non-empty array")
            continue
        for i, entry in enumerate(entries):
            at = f"{where}.Services.{service}[{i}]"
            for key in ("Identifier", "IdentifierType", "CodeRequirement"):
                if not isinstance(entry.get(key), str) or not entry[key]:
                    problems.append(f"{at}.{key}: missing")
            if entry.get("IdentifierType") not in ("bundleID", "path"):
                problems.append(f"{at}.IdentifierType: must be bundleID or path")
            if entry.get("IdentifierType") == "path" and not str(entry.get("Identifier", "")).startswith("/"):
                problems.append(f"{at}.Identifier: a path identifier must be absolute")
            has_auth = "Authorization" in entry
            has_allowed = "Allowed" in entry
            if has_auth == has_allowed:
                problems.append(f"{at}: exactly one of Authorization and Allowed")
            if has_auth and entry["Authorization"] not in TCC_AUTHORIZATIONS:
                problems.append(f"{at}.Authorization: unknown value {entry['Authorization']!r}")
            if has_allowed and not isinstance(entry["Allowed"], bool):
                problems.append(f"{at}.Allowed: must be a boolean")


def check_service_management(where, payload, problems):
    rules = payload.get("Rules")
    if not isinstance(rules, list) or not rules:
        problems.append(f"{where}.Rules: missing or empty")
        return
    for i, rule in enumerate(rules):
        if rule.get("RuleType") not in RULE_TYPES:
            problems.append(f"{where}.Rules[{i}].RuleType: must be one of {sorted(RULE_TYPES)}")
        if not isinstance(rule.get("RuleValue"), str) or not rule["RuleValue"]:
            problems.append(f"{where}.Rules[{i}].RuleValue: missing")


def check_agent_settings(where, payload, problems):
    if not str(payload.get("CollectorURL", "")).startswith("https://"):
        problems.append(f"{where}.CollectorURL: must start with https://")
    ca = str(payload.get("CollectorCA", ""))
    if "-----BEGIN CERTIFICATE-----" not in ca or "-----END CERTIFICATE-----" not in ca:
        problems.append(f"{where}.CollectorCA: must be a PEM certificate")
    if not isinstance(payload.get("EnrollmentToken"), str) or not payload["EnrollmentToken"].strip():
        problems.append(f"{where}.EnrollmentToken: missing")


CHECKS = {
    "com.apple.TCC.configuration-profile-policy": check_tcc,
    "com.apple.servicemanagement": check_service_management,
    "com.aiscout.agent": check_agent_settings,
}


def check_keys(where, d, keys, problems):
    for key in keys:
        if key not in d:
            problems.append(f"{where}.{key}: missing")
    if "PayloadVersion" in d and d["PayloadVersion"] != 1:
        problems.append(f"{where}.PayloadVersion: must be the integer 1")
    if "PayloadUUID" in d and not UUID.match(str(d["PayloadUUID"])):
        problems.append(f"{where}.PayloadUUID: not a UUID: {d['PayloadUUID']!r}")


def main(paths):
    problems = []
    uuids = {}
    identifiers = {}
    payloads = 0

    def remember(table, what, value, where):
        key = str(value).upper() if what == "PayloadUUID" else value
        if key in table:
            problems.append(f"{where}.{what}: {value} already used by {table[key]}")
        else:
            table[key] = where

    for path in paths:
        try:
            with open(path, "rb") as f:
                profile = plistlib.load(f)
        except Exception as e:  # noqa: BLE001 - any parse failure is the finding
            problems.append(f"{path}: not a property list: {e}")
            continue
        if not isinstance(profile, dict):
            problems.append(f"{path}: the top level must be a dictionary")
            continue
        check_keys(path, profile, PROFILE_KEYS, problems)
        if profile.get("PayloadType") != "Configuration":
            problems.append(f"{path}.PayloadType: must be Configuration")
        for what, table in (("PayloadUUID", uuids), ("PayloadIdentifier", identifiers)):
            if what in profile:
                remember(table, what, profile[what], path)
        content = profile.get("PayloadContent")
        if not isinstance(content, list) or not content:
            problems.append(f"{path}.PayloadContent: must be a non-empty array")
            continue
        for i, payload in enumerate(content):
            where = f"{path}.PayloadContent[{i}]"
            if not isinstance(payload, dict):
                problems.append(f"{where}: must be a dictionary")
                continue
            payloads += 1
            check_keys(where, payload, PAYLOAD_KEYS, problems)
            for what, table in (("PayloadUUID", uuids), ("PayloadIdentifier", identifiers)):
                if what in payload:
                    remember(table, what, payload[what], where)
            check = CHECKS.get(payload.get("PayloadType"))
            if check:
                check(where, payload, problems)

    for p in problems:
        print(f"mobileconfig: {p}")
    print(f"mobileconfig: {len(paths)} profiles, {payloads} payloads, {len(uuids)} unique UUIDs, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
