"""Each service's Alembic history produces exactly the tables its models declare
(what `alembic check` verifies), so a model change without a migration fails here."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from clm.runtime import SERVICES
from shared.db import create_engine
from tests.support.services import Infra


def _diff(connection: Connection, metadata: MetaData) -> list[Any]:
    schema = metadata.schema

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return name == schema if type_ == "schema" else True

    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": include_name,
            "version_table_schema": schema,
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, metadata))


MIGRATED = [spec for spec in SERVICES if spec.schema is not None]


@pytest.mark.parametrize("spec", MIGRATED, ids=[s.name for s in MIGRATED])
async def test_migrations_match_models(infra: Infra, spec: Any) -> None:
    metadata: MetaData = importlib.import_module(f"{spec.package}.models").Base.metadata
    engine = create_engine(infra.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff, metadata)
    finally:
        await engine.dispose()
    assert diff == [], f"{spec.name}: models and migrations differ: {diff}"
