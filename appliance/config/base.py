"""What every config section shares: the strict base model, and config types built from registries.

`tagged_union(registry)` is the union of the registry's config classes with a discriminator on `type`
(the key a config table writes); `follow` keeps a model's field in step with its registry, so a plugin
that registers a new kind after the config modules were imported is validated like a built-in one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from hal.registry import Registry

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Settings(BaseModel):
    """Base of every section: unknown keys are errors, TOML types are taken as they are, and a number is
    finite (TOML's nan and inf would make a limit that nothing crosses, or one that everything does)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def tagged_union(registry: Registry[Any]) -> Any:
    """The registry's config classes as one type, told apart by their `type` field."""
    configs = registry.configs()
    if not configs:
        raise ValueError(f"no {registry.what} has a config class")
    # a registry with one config class gives that class, still checked by its `type` (as [buses] is)
    return Annotated[Union[configs], Field(discriminator="type")]  # noqa: UP007 (a tuple of classes)


def key_literal(registry: Registry[Any], *extra: str) -> Any:
    """Literal of `extra` and the registry's keys: a setting that names an entry, such as stop_line.gpio."""
    return Literal[(*extra, *registry.keys())]


def follow(
    registry: Registry[Any],
    model: type[BaseModel],
    field: str,
    annotation: Callable[[], Any],
    parents: tuple[type[BaseModel], ...] = (),
) -> None:
    """After each change to `registry`, give `model.field` the type `annotation()` and rebuild `model`,
    then `parents` (models that contain it, innermost first), so their validators see the new kinds."""

    def rebuild() -> None:
        old = model.model_fields[field]
        default = ... if old.is_required() else old.default
        new = FieldInfo.from_annotated_attribute(annotation(), default)
        new.description = old.description
        model.model_fields[field] = new
        model.model_rebuild(force=True)
        for parent in parents:
            parent.model_rebuild(force=True)

    registry.on_change(rebuild)
