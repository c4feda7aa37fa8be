"""The Tracking API's OpenAPI document says what each call takes, and /docs works offline."""

from __future__ import annotations

from tests.support.services import RunningService


async def test_tracking_routes_document_their_request_bodies(ingest: RunningService) -> None:
    async with ingest.client() as client:
        spec = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    for call in ("track", "identify", "page", "screen", "alias", "group"):
        body = spec["paths"][f"/v1/{call}"]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["properties"]["type"]["const"] == call
        assert "userId" in body["schema"]["properties"] and body["example"]
    assert spec["paths"]["/v1/track"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]["required"] == ["event"]
    batch = spec["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]
    members = batch["schema"]["properties"]["batch"]["items"]["oneOf"]
    assert [m["properties"]["type"]["const"] for m in members] == [
        "track",
        "identify",
        "page",
        "screen",
        "alias",
        "group",
    ]
    assert len(batch["example"]["batch"]) == 6
    assert "/v1/rejected" in spec["paths"]
    assert docs.status_code == 200 and "/docs-assets/swagger-ui.css" in docs.text
