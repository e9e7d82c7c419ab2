"""Options and errors shared by several commands."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click


class GraderSetupError(click.ClickException):
    """A bad assignment spec, answer key or folder: the grader's setup, not a student's file."""

    exit_code = 2


assignment_option = click.option(
    "--assignment",
    default="cifar10",
    show_default=True,
    help="Built-in assignment name or path of a spec .toml file.",
)
solution_option = click.option(
    "--solution",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Labels CSV to grade against (default: the assignment's).",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Data folder (default: $GRADER_DATA_DIR, else ~/.cache/grader/data).",
)


def retired_option(*decls: str, why: str, is_flag: bool = False) -> Callable:
    """A hidden option kept so that old scripts still run: using it prints ``why`` to stderr,
    and the command never sees its value."""

    def warn(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value not in (None, False, ()):
            click.echo(f"warning: {param.opts[0]} does nothing and will be removed: {why}",
                       err=True)  # fmt: skip

    return click.option(*decls, is_flag=is_flag, default=None, hidden=True, expose_value=False,
                        callback=warn)  # fmt: skip


# --- options made from a settings dataclass -------------------------------------------------------


def _parse_numbers(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        numbers = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give comma-separated numbers, e.g. 1e-3,2e-3,1e-4,5e-4"
        ) from None
    if not numbers or any(not number > 0 for number in numbers):
        raise click.BadParameter(f"{value!r}: give positive numbers, comma-separated")
    return numbers


def _option_type(hint: Any, meta: Mapping[str, Any]) -> tuple[Any, bool]:
    """The click type of a field's hint, and whether it is a comma-separated list."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _option_type(args[0], meta)
    if origin is typing.Literal:
        return click.Choice([str(a) for a in args]), False
    if origin is tuple:
        return str, True
    minimum, open_ = meta.get("min"), bool(meta.get("min_open"))
    if hint is int:
        return (click.INT if minimum is None else click.IntRange(min=int(minimum))), False
    if hint is float:
        if minimum is None:
            return click.FLOAT, False
        return click.FloatRange(min=minimum, min_open=open_), False
    if hint is Path:
        return click.Path(path_type=Path), False
    return click.STRING, False


def settings_options(
    cls: type,
    *,
    skip: Sequence[str] = (),
    default_help: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """click options for the fields of dataclass ``cls``, from the fields' own metadata.

    Each field becomes ``--name-with-dashes`` (or its metadata ``flag``) with the field's default,
    its ``help``, and a lower bound from ``min``/``min_open``; booleans become ``--x/--no-x``,
    Literals choices, tuples comma-separated numbers. Fields whose metadata says ``cli: False``,
    and those in ``skip``, are left out. With ``default_help`` (field -> text) every option
    defaults to None (the caller fills it in) and its help states that text as the default.
    """
    hints = typing.get_type_hints(cls)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for item in reversed(dataclasses.fields(cls)):
            meta = item.metadata
            if item.name in skip or not meta.get("cli", True) or "help" not in meta:
                continue
            flag = meta.get("flag") or f"--{item.name.replace('_', '-')}"
            if default_help is not None:
                default, shown = None, default_help.get(item.name, "")
            else:
                default = item.default
                shown = meta.get("default_text") or _shown(default)
            help_text = f"{meta['help']} [default: {shown}]" if shown else meta["help"]
            hint = hints[item.name]
            if hint is bool or hint == bool | None:
                name = flag.removeprefix("--")
                decl = f"--{name}/--no-{name}"
                option = click.option(decl, item.name, default=default, help=help_text)
            else:
                kind, is_list = _option_type(hint, meta)
                option = click.option(
                    flag,
                    item.name,
                    type=kind,
                    default=default,
                    help=help_text,
                    callback=_parse_numbers if is_list else None,
                )
            command = option(command)
        return command

    return decorate


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
