"""The base of every status section: a pydantic model that says what it holds and nothing else."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A status section: built once per status, never changed afterwards. Unknown keys are refused, so a
    section and what reads it cannot drift apart."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True, validate_by_alias=True
    )
