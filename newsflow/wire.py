"""The wire format's JSON Schemas, generated from the models and kept in ``newsflow/wire_schemas/``.

Non-Python consumers validate against these files; ``newsflow schema --check`` (and a test)
fails when a model changed without its schema file, so wire changes are always deliberate.
"""

from __future__ import annotations

import json
from pathlib import Path

from newsflow.schemas import SCHEMA_VERSION, WIRE_MODELS

SCHEMA_DIR = Path(__file__).parent / "wire_schemas"


def schema_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for model in WIRE_MODELS:
        name = f"{model.topic_role}.v{SCHEMA_VERSION}.schema.json"
        schema = model.model_json_schema()
        schema["$id"] = f"https://newsflow.invalid/schemas/{name}"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        files[name] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return files


def export_schemas(check: bool = False) -> list[str]:
    """Write (or with ``check`` only compare) the schema files; returns the names that differ."""
    changed: list[str] = []
    for name, text in schema_files().items():
        path = SCHEMA_DIR / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            changed.append(name)
            if not check:
                SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return changed
