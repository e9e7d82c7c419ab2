"""The names under which a submission may define its model, and the message when none is found.

The assignment names one class (``entry``, default ``Net``) and may accept aliases (the names
course skeletons and public code use: ``VGG_A_BatchNorm`` for ``VGG_BatchNorm``); a function
``build_model()`` returning the model is accepted for every assignment. Both the static look on
the host and the capture in the box word a missing name with :func:`missing_entry_message`.
"""

from __future__ import annotations

from collections.abc import Iterable

BUILD_FUNCTION = "build_model"
MAX_LISTED = 10


def accepted_names(entry: str, aliases: Iterable[str] = ()) -> tuple[str, ...]:
    """The names tried, in order: the assignment's entry, its aliases, ``build_model``."""
    return tuple(dict.fromkeys([entry, *aliases, BUILD_FUNCTION]))


def missing_entry_message(
    filename: str,
    entry: str,
    aliases: Iterable[str],
    classes: Iterable[str],
    functions: Iterable[str],
) -> str:
    """Why no model was found in ``filename``: what the assignment wants, what the file defines
    (its ``nn.Module`` classes and argument-free functions), and how to fix it."""
    others = [a for a in accepted_names(entry, aliases) if a not in (entry, BUILD_FUNCTION)]
    also = f"{', '.join(others)}, or " if others else ""
    classes, functions = list(dict.fromkeys(classes)), list(dict.fromkeys(functions))
    defined = []
    if classes:
        defined.append(f"the nn.Module classes {_listing(classes)}")
    if functions:
        defined.append(f"the functions {_listing([f'{f}()' for f in functions])}")
    found = f"It defines {' and '.join(defined)}" if defined else (
        "It defines no nn.Module class and no function without arguments"
    )  # fmt: skip
    example = functions[-1] if functions else (classes[-1] if classes else "YourModel")
    return (
        f"{filename} defines no {entry}, the model this assignment asks for (also accepted: "
        f"{also}a function {BUILD_FUNCTION}() that returns the model). {found}. Name your model "
        f"class {entry}, or add: def {BUILD_FUNCTION}(): return {example}()"
    )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")
