"""JSON Schema of program.md's two YAML blocks, for editors.

``python -m mlr_action.commands.schema`` regenerates ``program.schema.json`` beside this
file from the pydantic models, so the schema can never drift from the
validator (a test checks the committed file is current). Durations are
strings or seconds; flavors are the known HF Jobs flavors.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("program.schema.json")


def build_schema() -> dict:
    from mlr_action.core.flavors import KNOWN_FLAVORS
    from mlr_action.core.program import Campaign, Envelope

    def block(model) -> dict:
        schema = model.model_json_schema(mode="validation")
        _patch(schema, KNOWN_FLAVORS)
        return schema

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/mlr-action/mlr-action/program.schema.json",
        "title": "mlr-action program.md blocks",
        "description": "The '## Budget envelope' and '## Campaign' YAML blocks of program.md.",
        "$defs": {"envelope": block(Envelope), "campaign": block(Campaign)},
        "oneOf": [{"$ref": "#/$defs/envelope"}, {"$ref": "#/$defs/campaign"}],
    }


def _patch(schema: dict, flavors: tuple[str, ...]) -> None:
    """Durations accept strings like 2h30m or seconds; flavors are an enum (in nested blocks too: ``final``)."""
    for nested in schema.get("$defs", {}).values():
        _patch(nested, flavors)
    duration = {"anyOf": [{"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$|^\d+$"}, {"type": "integer", "exclusiveMinimum": 0}]}
    flavor = {"type": "string", "enum": list(flavors)}
    props = schema.get("properties", {})
    for key in ("max_walltime", "max_timeout", "timeout", "scheduling_timeout"):
        if key in props:
            desc = props[key].get("description")
            nullable = key == "timeout"
            props[key] = {**duration, "description": desc} if not nullable else {"anyOf": [*duration["anyOf"], {"type": "null"}], "description": desc}
    if "allowed_flavors" in props:
        props["allowed_flavors"]["items"] = flavor
    if "flavor" in props:
        props["flavor"] = {"anyOf": [flavor, {"type": "null"}], "description": props["flavor"].get("description")}


def main() -> None:
    SCHEMA_PATH.write_text(json.dumps(build_schema(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
