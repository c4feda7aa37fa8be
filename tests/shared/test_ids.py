"""Derived ids: the fast text form is exactly the uuid5 the rest of the system stores."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ids import CLM_NAMESPACE, derive_id, derive_text

parts = st.lists(
    st.one_of(st.text(max_size=30), st.integers(), st.sampled_from(["run", "timer", "é\x1f"])),
    min_size=1,
    max_size=6,
)


@settings(max_examples=500, deadline=None)
@given(parts)
def test_derive_text_is_the_text_of_derive_id(values: list[object]) -> None:
    assert derive_text(*values) == str(derive_id(*values))


def test_derive_id_is_uuid5_in_the_clm_namespace() -> None:
    assert derive_id("run", "cart", 1) == uuid.uuid5(CLM_NAMESPACE, "run\x1fcart\x1f1")
    assert uuid.UUID(derive_text("run", "cart", 1)).version == 5
