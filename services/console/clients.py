"""Calling the services' public APIs with the signed-in person's admin token.

One :class:`Api` per request, over the three shared httpx clients built in the lifespan.
A refusal comes back as :class:`ApiError` carrying the API's ``{"code", "message",
"errors"}``, so a page can put each message where it belongs; a service that cannot be
reached is an :class:`ApiError` with status 502.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Service = Literal["ingest", "engine", "messenger"]

LABELS: dict[Service, str] = {
    "ingest": "ingest",
    "engine": "the trigger engine",
    "messenger": "the messenger",
}


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def by_field(self) -> dict[str, list[str]]:
        """Messages by their ``loc`` ("steps.1.wait" → [...]); "" for the whole body."""
        found: dict[str, list[str]] = {}
        for error in self.errors:
            loc = str(error.get("loc", ""))
            found.setdefault(loc, []).append(str(error.get("message", "")))
        return found


def _error_of(service: Service, response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    errors = body.get("errors")
    return ApiError(
        status=response.status_code,
        code=str(body.get("code", "http_error")),
        message=str(body.get("message") or f"{LABELS[service]} answered {response.status_code}"),
        errors=errors if isinstance(errors, list) else [],
    )


class Api:
    """The three APIs for one signed-in person."""

    def __init__(self, clients: dict[Service, httpx.AsyncClient], token: str) -> None:
        self.clients = clients
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204), or :class:`ApiError`."""
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = await self.clients[service].request(
                method, path, json=json, params=query, headers=self.headers
            )
        except httpx.HTTPError as exc:
            raise ApiError(
                502, "unreachable", f"{LABELS[service]} cannot be reached: {exc or type(exc)}"
            ) from exc
        if response.status_code >= 400:
            raise _error_of(service, response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def get(self, service: Service, path: str, **params: Any) -> Any:
        return await self.call(service, "GET", path, params=params)

    async def post(self, service: Service, path: str, body: Any = None, **params: Any) -> Any:
        return await self.call(service, "POST", path, json=body, params=params)

    async def put(self, service: Service, path: str, body: Any) -> Any:
        return await self.call(service, "PUT", path, json=body)

    async def patch(self, service: Service, path: str, body: Any) -> Any:
        return await self.call(service, "PATCH", path, json=body)

    async def delete(self, service: Service, path: str, **params: Any) -> Any:
        return await self.call(service, "DELETE", path, params=params)


async def token_is_valid(clients: dict[Service, httpx.AsyncClient], token: str) -> bool:
    """Whether the services take ``token``: asked of each in turn until one answers.

    Raises :class:`ApiError` (502) when none can be reached, so the sign-in page can say so
    instead of calling a good token wrong.
    """
    probes: list[tuple[Service, str]] = [
        ("engine", "/v1/send-policy"),
        ("messenger", "/v1/templates"),
        ("ingest", "/v1/write-keys"),
    ]
    api = Api(clients, token)
    last: ApiError | None = None
    for service, path in probes:
        try:
            await api.get(service, path)
            return True
        except ApiError as error:
            if error.status == 401:
                return False
            last = error
    assert last is not None
    raise last
