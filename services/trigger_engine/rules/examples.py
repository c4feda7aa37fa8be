"""Installing the example plays (``services/trigger_engine/examples/*.json``) on an engine.

Used by ``clm rules install-examples``: each file is POSTed to the running engine's rules
API with the admin token; a rule that exists already is PUT as a new version unless it is
unchanged, so running the command twice changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from services.trigger_engine.core.rules import Rule

EXAMPLES_DIR: Final = Path(__file__).resolve().parents[1] / "examples"


@dataclass(frozen=True)
class Installed:
    key: str
    outcome: str  # created, updated, unchanged, failed
    version: int | None = None
    detail: str = ""


def load_examples(directory: Path = EXAMPLES_DIR) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def _same(example: dict[str, Any], current: dict[str, Any]) -> bool:
    try:
        wanted = Rule.model_validate({**example, "version": current["version"]})
        stored = Rule.model_validate(
            {k: v for k, v in current.items() if k not in ("created_at", "updated_at")}
        )
    except ValueError:
        return False
    return wanted == stored


def _failed(key: str, response: httpx.Response) -> Installed:
    try:
        detail = str(response.json().get("message", response.text))
    except ValueError:
        detail = response.text
    return Installed(key, "failed", detail=f"HTTP {response.status_code}: {detail}")


def install(client: httpx.Client, rules: list[dict[str, Any]]) -> list[Installed]:
    """Create or update every rule through the API ``client`` points at (with the token)."""
    results: list[Installed] = []
    for body in rules:
        key = str(body.get("key"))
        response = client.post("/v1/rules", json=body)
        if response.status_code == 201:
            results.append(Installed(key, "created", response.json()["version"]))
            continue
        if response.status_code != 409:
            results.append(_failed(key, response))
            continue
        current = client.get(f"/v1/rules/{key}")
        if current.status_code == 200 and _same(body, current.json()):
            results.append(Installed(key, "unchanged", current.json()["version"]))
            continue
        response = client.put(f"/v1/rules/{key}", json=body)
        if response.status_code == 200:
            results.append(Installed(key, "updated", response.json()["version"]))
        else:
            results.append(_failed(key, response))
    return results
