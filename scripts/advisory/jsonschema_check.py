#!/usr/bin/env python3
"""Validates JSON documents against a JSON Schema with python-jsonschema (format checks on).

A second, independent JSON Schema implementation for the advisory documents that have no
dedicated offline validator (OSV). Usage: jsonschema_check.py SCHEMA FILE...
Exit 0 when every file is valid, 1 otherwise, 2 on usage errors.
"""

import json
import sys

import jsonschema


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: jsonschema_check.py SCHEMA FILE...", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    ok = True
    for path in argv[2:]:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            ok = False
            print(f"INVALID {path}")
            for e in errors:
                print(f"  /{'/'.join(map(str, e.absolute_path))}: {e.message}")
        else:
            print(f"VALID {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
