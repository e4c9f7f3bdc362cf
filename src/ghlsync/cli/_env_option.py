"""`--env NAME` on every command that reads `ghlsync.yaml` (those with a `--config` option).

Added once, after every area registered its commands, instead of in each command's
signature: a command that takes `config` gets an `env` option whose value selects the
environment for the duration of the call (`mapping.selected_environment`), so every config
the command loads, directly or through a helper, is that environment's.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

__all__ = ["ENV_HELP", "add_env_option"]

ENV_HELP = (
    "The environment of ghlsync.yaml to run (its environments: section); default: "
    "$GHLSYNC_ENV, else the file's environment: key."
)
_ENV_ANNOTATION = Annotated[
    str | None, typer.Option("--env", metavar="NAME", help=ENV_HELP, show_default=False)
]


def add_env_option(app: typer.Typer) -> None:
    """Give every command of `app` (and of its sub-apps) that has a `config` parameter and
    no `env` parameter of its own an `--env` option."""
    for command in app.registered_commands:
        callback = command.callback
        if callback is not None and _wants_env(callback):
            command.callback = _with_env(callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            add_env_option(group.typer_instance)


def _wants_env(callback: Callable[..., Any]) -> bool:
    parameters = inspect.signature(callback).parameters
    return "config" in parameters and "env" not in parameters


def _with_env(callback: Callable[..., Any]) -> Callable[..., Any]:
    from ghlsync.mapping import selected_environment

    @functools.wraps(callback)
    def with_env(*args: Any, env: str | None = None, **kwargs: Any) -> Any:
        with selected_environment(env):
            return callback(*args, **kwargs)

    # The command's annotations resolved here, in its own module: left as strings, typer
    # would read them without their `Annotated` options (a `-p` alias, its help).
    hints = typing.get_type_hints(callback, include_extras=True)
    signature = inspect.signature(callback)
    parameters = [
        parameter.replace(annotation=hints.get(name, parameter.annotation))
        for name, parameter in signature.parameters.items()
    ]
    option = inspect.Parameter(
        "env", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=_ENV_ANNOTATION
    )
    with_env.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*parameters, option]
    )
    with_env.__annotations__ = {**hints, "env": _ENV_ANNOTATION}
    return with_env
