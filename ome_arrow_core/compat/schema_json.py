"""JSON objects in Arrow schema metadata (the shapes and relationship tables keep theirs there)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ..errors import SchemaError

__all__ = ["json_meta", "with_json"]


def with_json(schema: pa.Schema, key: bytes, payload: Mapping[str, Any]) -> pa.Schema:
    """``schema`` with ``payload`` as JSON under metadata ``key``."""
    return schema.with_metadata({**(schema.metadata or {}), key: json.dumps(payload, sort_keys=True).encode()})


def json_meta(schema: pa.Schema, key: bytes, kind: str, what: str) -> dict[str, Any]:
    """The JSON object under metadata ``key`` of ``schema``, whose ``type`` must be ``kind`` (SchemaError naming ``what``)."""
    raw = (schema.metadata or {}).get(key)
    if raw is None:
        raise SchemaError(f"{what} schema metadata is missing OME-Arrow {kind.split('.')[-1]} ({key.decode()})")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{what} schema metadata {key.decode()} is not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("type") != kind:
        raise SchemaError(f"{what} metadata type must be {kind!r}")
    return meta
