"""The static look at a model submission, on the host before any box starts (no code runs).

Common mistakes are found from the syntax tree of ``model.py`` and from the structure of the
weights file, never by executing or unpickling anything, so each is answered in milliseconds
with what to change, instead of after a box has started, imported the code and waited for a
time limit:

- code that runs when ``model.py`` is imported and trains a model, downloads data or weights,
  or loads a data set (the grader imports model.py to build the model; it has no network);
- ``.cuda()`` and hard-coded ``"cuda"`` devices outside an ``is_available()`` test (the grader
  runs the model on the CPU);
- torchvision transforms in ``preprocess`` that cannot take a tensor batch (``ToTensor``) or
  are random (``RandomCrop``: every evaluation would differ);
- no class or function under a name the assignment accepts;
- a weights file holding a pickled whole model or other pickled objects, or a TorchScript
  archive (the grader loads tensors only).

Findings that are certain stop the grading (``fatal``); the others are warnings.
"""

from __future__ import annotations

import ast
import pickletools
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from grader.models.entry import accepted_names, missing_entry_message

MAX_SOURCE_BYTES = 2 << 20
"""model.py files larger than this are not looked at (the box still runs them)."""
MAX_PICKLE_BYTES = 64 << 20
"""The most of a weights file's pickle that is read (a state_dict's pickle is a few KB per
tensor; the tensors themselves are stored apart)."""
LEGACY_PICKLES = 4
"""A pre-1.6 ``torch.save`` file is four pickles (magic, protocol, system info, the object)
followed by the raw storages."""
MAIN_GUARD = "__main__"
TRAINING_CALLS = frozenset({"backward", "zero_grad", "fit"})
DOWNLOAD_CALLS = frozenset({
    "urlretrieve", "urlopen", "load_state_dict_from_url", "hf_hub_download",
    "snapshot_download", "download_url", "download_and_extract_archive",
})  # fmt: skip
DATASET_CLASSES = frozenset({
    "CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "KMNIST", "EMNIST", "SVHN", "STL10",
    "ImageFolder", "ImageNet", "DatasetFolder",
})  # fmt: skip
PIL_TRANSFORMS = frozenset({"ToTensor", "PILToTensor", "ToPILImage"})
RANDOM_TRANSFORMS = frozenset({
    "ColorJitter", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix", "GaussianBlur",
})  # fmt: skip
SOFTMAX_CALLS = frozenset({"softmax", "Softmax"})
LIBRARY_MODULES = ("torch", "collections", "numpy", "builtins", "_codecs", "copyreg")
"""Modules whose globals a state_dict's pickle may name (tensors, storages, ordered dicts,
numbers); an object of any other module, or of torch's layers and optimizers, is a pickled
object the grader never loads."""
PYTHON2_NAMES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
PLAIN_BUILTINS = frozenset({"set", "frozenset", "slice", "complex", "bytearray", "range"})
"""Built-in types a pickle of plain values may name (never ``exec``, ``eval``, ``open``...)."""
OBJECT_MODULES = ("torch.nn.modules", "torch.nn.parallel", "torch.optim", "torch.jit",
                  "torchvision")  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One mistake found by the static look, with what to change."""

    message: str
    fatal: bool = True
    """Certain to fail (the submission is refused before any box starts); else a warning."""
    kind: str = ""
    """What was found (``training``, ``cuda``, ``softmax``, ``pickled_model``...)."""


def precheck(
    folder: Path,
    *,
    weights: str | None,
    entry: str = "Net",
    aliases: Iterable[str] = (),
    model_file: str = "model.py",
    where: Callable[[int], str] | None = None,
) -> list[Finding]:
    """Every mistake the static look finds in the staged submission ``folder``.

    ``where`` renders a line number of ``model_file`` for the student (a notebook's cell);
    the default is ``model.py line N``.
    """
    folder = Path(folder)
    where = where or (lambda line: f"{model_file} line {line}")
    findings: list[Finding] = []
    if weights is not None:
        findings += weights_findings(folder / weights)
    source_path = folder / model_file
    if source_path.is_file() and source_path.stat().st_size <= MAX_SOURCE_BYTES:
        source = source_path.read_text(encoding="utf-8", errors="replace")
        findings += code_findings(source, entry=entry, aliases=tuple(aliases),
                                  model_file=model_file, where=where)  # fmt: skip
    return findings


# --- model.py --------------------------------------------------------------------------------


def code_findings(
    source: str,
    *,
    entry: str = "Net",
    aliases: tuple[str, ...] = (),
    model_file: str = "model.py",
    where: Callable[[int], str] | None = None,
) -> list[Finding]:
    """The mistakes in the source of ``model.py`` (see the module docstring)."""
    where = where or (lambda line: f"{model_file} line {line}")
    try:
        tree = ast.parse(source, filename=model_file)
    except SyntaxError as exc:
        at = where(exc.lineno) if exc.lineno else model_file
        return [Finding(f"{at}: syntax error: {exc.msg}; run python {model_file} on your own "
                        "machine to see it", kind="syntax")]  # fmt: skip
    except (ValueError, RecursionError, MemoryError):
        return []  # null bytes, absurd nesting: the capture explains what Python makes of it
    try:
        look = _Look(tree, where, model_file, accepted_names(entry, aliases))
        findings = [*look.import_time(), *look.pretrained(), *look.devices(), *look.preprocess()]
        findings += look.entry(entry, aliases)
        findings += look.softmax_output()
    except RecursionError:
        return []  # a tree too deep to look at: the box runs it under its limits
    return findings


def last_name(node: ast.AST) -> str:
    """The last part of a (called) name: ``backward`` for ``loss.backward``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    parts = [node.test.left, *node.test.comparators]
    names = {p.id for p in parts if isinstance(p, ast.Name)}
    values = {p.value for p in parts if isinstance(p, ast.Constant)}
    return "__name__" in names and MAIN_GUARD in values


def _is_device_test(node: ast.AST) -> bool:
    """A test that chooses a device: ``torch.cuda.is_available()``, ``use_cuda``,
    ``args.gpu``, ``device == "cuda"``..."""
    for n in ast.walk(node):
        text = last_name(n) if isinstance(n, (ast.Attribute, ast.Name)) else ""
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            text = n.value
        if any(word in text.lower() for word in ("cuda", "gpu", "is_available", "device_count")):
            return True
    return False


def _is_cuda_value(node: ast.AST | None) -> bool:
    """``"cuda"``, ``"cuda:0"`` or ``torch.device("cuda")``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
        return text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit())
    if isinstance(node, ast.Call) and last_name(node.func) == "device" and node.args:
        return _is_cuda_value(node.args[0])
    return False


def _static_truth(test: ast.AST, assigned: dict[str, ast.AST]) -> bool | None:
    """The value of an ``if`` test that is a constant or a name bound to one, else None."""
    if isinstance(test, ast.Name) and test.id in assigned:
        test = assigned[test.id]
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _static_truth(test.operand, assigned)
        return None if inner is None else not inner
    return None


class _Look:
    """One walk over the module's tree, answering each question of the static look."""

    def __init__(
        self,
        tree: ast.Module,
        where: Callable[[int], str],
        model_file: str,
        names: tuple[str, ...],
    ) -> None:
        self.tree = tree
        self.where = where
        self.model_file = model_file
        self.names = names
        self.functions = {
            n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.assigned = self._module_assignments()
        self.training_functions = self._training_functions()

    # the statements that run when the file is imported

    def _executed(self) -> Iterator[tuple[ast.stmt, bool]]:
        """Top-level statements and the blocks they run (if/for/with/try), except function and
        class bodies and the ``if __name__ == "__main__":`` block; with whether the statement
        surely runs (an ``if`` whose test is not a constant may skip it). ``self.top`` maps each
        to the top-level statement it belongs to."""
        pending: list[tuple[ast.stmt, bool]] = [(s, True) for s in self.tree.body]
        self.top: dict[int, ast.stmt] = {id(s): s for s in self.tree.body}
        while pending:
            stmt, sure = pending.pop(0)
            top = self.top[id(stmt)]
            for child in ast.walk(stmt):
                if isinstance(child, ast.stmt):
                    self.top.setdefault(id(child), top)
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if _is_main_guard(stmt):
                pending = [(s, sure) for s in stmt.orelse] + pending
                continue
            yield stmt, sure
            if isinstance(stmt, ast.If):
                truth = _static_truth(stmt.test, self.assigned)
                inner = [] if truth is False else [(s, sure and truth is True) for s in stmt.body]
                other = [] if truth is True else [(s, sure and truth is False) for s in stmt.orelse]
                pending = inner + other + pending
                continue
            if isinstance(stmt, ast.Try):
                handlers = [s for h in stmt.handlers for s in h.body]
                pending = (
                    [(s, sure) for s in [*stmt.body, *stmt.orelse, *stmt.finalbody]]
                    + [(s, False) for s in handlers]
                    + pending
                )
                continue
            for name in ("body", "orelse"):
                pending = [(s, sure) for s in getattr(stmt, name, []) or []] + pending

    def _module_assignments(self) -> dict[str, ast.AST]:
        assigned: dict[str, ast.AST] = {}
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        assigned[target.id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if stmt.value is not None:
                    assigned[stmt.target.id] = stmt.value
        return assigned

    def _training_functions(self) -> set[str]:
        """Top-level functions that train, directly or through another such function."""
        callers: dict[str, set[str]] = {}
        training: set[str] = set()
        for name, fn in self.functions.items():
            called = {last_name(n.func) for n in ast.walk(fn) if isinstance(n, ast.Call)}
            if called & TRAINING_CALLS:
                training.add(name)
            for callee in called & self.functions.keys():
                callers.setdefault(callee, set()).add(name)
        pending = list(training)
        while pending:
            for caller in callers.get(pending.pop(), ()):
                if caller not in training:
                    training.add(caller)
                    pending.append(caller)
        return training

    def import_time(self) -> list[Finding]:
        """Training, downloads and data sets in the code that runs at import; certain when the
        code surely runs, a warning when an ``if`` may skip it."""
        found: dict[str, Finding] = {}
        for stmt, sure in self._executed():
            calls = [n for n in _own_nodes(stmt) if isinstance(n, ast.Call)]
            for call in calls:
                name = last_name(call.func)
                line = getattr(call, "lineno", stmt.lineno)
                if "training" not in found and (
                    name in TRAINING_CALLS or name in self.training_functions
                ):
                    what = f"{name}()" if name in TRAINING_CALLS else f"{name}(), which trains"
                    start = self.where(self.top[id(stmt)].lineno)
                    found["training"] = Finding(
                        f"{start} trains a model when {self.model_file} is imported "
                        f"(it calls {what}); the grader imports {self.model_file} to build your "
                        "model, so the training would run until the time limit. Put the "
                        'training under if __name__ == "__main__": (or in a function the '
                        "grader does not call) and submit the trained weights",
                        fatal=sure,
                        kind="training",
                    )
                downloads = (
                    any(
                        k.arg == "download" and isinstance(k.value, ast.Constant) and k.value.value
                        for k in call.keywords
                    )
                    or name in DOWNLOAD_CALLS
                    or _dotted(call.func).endswith("hub.load")
                )
                if downloads and "download" not in found:
                    found["download"] = Finding(
                        f"{self.where(line)} downloads data when {self.model_file} is imported "
                        f"({_dotted(call.func) or name}(...)); the grader has no network and "
                        'needs only the model: put it under if __name__ == "__main__":',
                        fatal=sure,
                        kind="download",
                    )
                elif name in DATASET_CLASSES and "dataset" not in found:
                    found["dataset"] = Finding(
                        f"{self.where(line)} loads the {name} data set when {self.model_file} "
                        "is imported; the grader feeds the test images itself and has no data "
                        'files: put data loading under if __name__ == "__main__":',
                        fatal=sure,
                        kind="dataset",
                    )
        return list(found.values())

    # the code that builds and runs the model

    def _graded_code(self) -> Iterator[tuple[ast.AST, bool]]:
        """Code that surely runs when the grader builds and runs the model: the import-time
        code, the model classes, and the entry functions, ``preprocess`` and the functions they
        call (a ``train()`` or ``test()`` the grader never calls is not looked at); with
        whether the node's nested blocks are yielded on their own (top-level statements)."""
        yield from ((stmt, True) for stmt, sure in self._executed() if sure)
        roots: list[ast.AST] = [
            cls for name, cls in self.classes.items()
            if name in self.names or self._is_module_class(name)
        ]  # fmt: skip
        roots += [fn for name, fn in self.functions.items() if name in (*self.names, "preprocess")]
        seen: set[str] = set()
        while roots:
            node = roots.pop()
            yield node, False
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                name = call.func.id if isinstance(call.func, ast.Name) else ""
                if name in self.functions and name not in seen:
                    seen.add(name)
                    roots.append(self.functions[name])

    def pretrained(self) -> list[Finding]:
        """Pretrained weights that a model builder would download."""
        for node, shallow in self._graded_code():
            for call in (n for n in _nodes(node, shallow) if isinstance(n, ast.Call)):
                for keyword in call.keywords:
                    value = keyword.value
                    downloads = (
                        keyword.arg == "pretrained"
                        and isinstance(value, ast.Constant)
                        and value.value is True
                    ) or (keyword.arg == "weights" and _names_published_weights(value))
                    if downloads:
                        return [Finding(
                            f"{self.where(call.lineno)}: {_dotted(call.func)}("
                            f"{keyword.arg}={ast.unparse(value)}) downloads pretrained weights, "
                            "and the grader has no network: build the model with weights=None "
                            "(pretrained=False); your trained weights come from the weights "
                            "file you submit",
                            kind="pretrained",
                        )]  # fmt: skip
        return []

    def devices(self) -> list[Finding]:
        """``.cuda()``, and ``"cuda"`` devices handed to a call, that no device test guards."""
        names = {name for name, value in self.assigned.items() if _is_cuda_value(value)}
        for node, shallow in self._graded_code():
            for hit in _unguarded_cuda(node, names, shallow=shallow, model_code=not shallow):
                what = (
                    ".cuda()"
                    if isinstance(hit.func, ast.Attribute) and hit.func.attr == "cuda"
                    else f"{ast.unparse(hit)[:80]}"
                )
                return [Finding(
                    f"{self.where(hit.lineno)}: {what} puts the model or its tensors on a GPU, "
                    "but the grader runs your model on the CPU. Leave the device to the grader: "
                    "remove .cuda() from the model and create new tensors on the input's device "
                    "(torch.zeros(..., device=x.device)), or choose the device with "
                    "'cuda' if torch.cuda.is_available() else 'cpu'",
                    kind="cuda",
                )]  # fmt: skip
        return []

    def preprocess(self) -> list[Finding]:
        """torchvision transforms in ``preprocess`` that cannot run on a tensor batch."""
        roots: list[ast.AST] = []
        if "preprocess" in self.functions:
            roots.append(self.functions["preprocess"])
        elif "preprocess" in self.assigned:
            roots.append(self.assigned["preprocess"])
        if not roots:
            return []
        used = {n.id for root in roots for n in ast.walk(root) if isinstance(n, ast.Name)}
        roots += [self.assigned[name] for name in sorted(used) if name in self.assigned]
        for root in roots:
            for call in (n for n in ast.walk(root) if isinstance(n, ast.Call)):
                name = last_name(call.func)
                if name in PIL_TRANSFORMS:
                    return [Finding(
                        f"{self.where(call.lineno)}: preprocess uses {name}(), which takes PIL "
                        "images; the grader hands preprocess a float tensor batch (N, C, H, W) "
                        f"with values in [0, 1] already: leave out {name}() (Normalize, Resize "
                        "and CenterCrop work on tensors)",
                        kind="transforms",
                    )]  # fmt: skip
                if name.startswith("Random") or name in RANDOM_TRANSFORMS:
                    return [Finding(
                        f"{self.where(call.lineno)}: preprocess uses {name}(), a random "
                        "augmentation, so every evaluation of the same image would differ: "
                        "augment only while training; preprocess may resize, crop the centre "
                        "and normalise",
                        kind="transforms",
                    )]  # fmt: skip
        return []

    def entry(self, entry: str, aliases: tuple[str, ...]) -> list[Finding]:
        """No class, function or imported name under any of the accepted names."""
        bound: set[str] = set()
        for stmt in self.tree.body:
            for node in ast.walk(stmt) if not isinstance(stmt, ast.ClassDef) else [stmt]:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is stmt:
                    bound.add(node.name)
                elif isinstance(node, ast.ClassDef):
                    bound.add(node.name)
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    for alias in node.names:
                        if alias.name == "*":
                            return []  # names we cannot see: the capture decides
                        bound.add((alias.asname or alias.name).split(".")[0])
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    bound.add(node.id)
                elif isinstance(node, ast.Call) and last_name(node.func) in ("globals", "setattr"):
                    return []
        if bound & set(accepted_names(entry, aliases)):
            return []
        classes = [name for name in self.classes if self._is_module_class(name)]
        functions = [name for name, fn in self.functions.items() if not _required_args(fn)]
        if not classes and not functions:
            return []  # not a model file under another name: the capture says what it is
        return [Finding(missing_entry_message(self.model_file, entry, aliases, classes, functions),
                        kind="entry")]  # fmt: skip

    def _is_module_class(self, name: str, seen: frozenset[str] = frozenset()) -> bool:
        node = self.classes.get(name)
        if node is None or name in seen:
            return False
        for base in node.bases:
            base_name = last_name(base)
            if base_name == "Module" or self._is_module_class(base_name, seen | {name}):
                return True
        return False

    def softmax_output(self) -> list[Finding]:
        """A warning when the model's ``forward`` returns a softmax (probabilities)."""
        names = self.names
        softmax_attrs = set()
        for cls in self.classes.values():
            for node in ast.walk(cls):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    if last_name(node.value.func) == "Softmax":
                        softmax_attrs |= {last_name(t) for t in node.targets}
        for cls_name in names:
            cls = self.classes.get(cls_name)
            forward = next(
                (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward"),
                None,
            ) if cls is not None else None  # fmt: skip
            if forward is None:
                continue
            returns = [n for n in ast.walk(forward) if isinstance(n, ast.Return) and n.value]
            for ret in returns:
                value = ret.value
                if isinstance(value, ast.Call) and (
                    last_name(value.func) in SOFTMAX_CALLS or last_name(value.func) in softmax_attrs
                ):
                    return [Finding(
                        f"{self.where(ret.lineno)}: forward returns a softmax, i.e. class "
                        "probabilities. Accuracy is the same, and the grader reads the outputs "
                        "as probabilities; but nn.CrossEntropyLoss applies log-softmax itself, "
                        "so train on (and return) the logits before the softmax",
                        fatal=False,
                        kind="softmax",
                    )]  # fmt: skip
        return []


def _required_args(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    return len(positional) - len(args.defaults)


def _names_published_weights(value: ast.AST) -> bool:
    """``weights="IMAGENET1K_V1"``, ``weights=ResNet18_Weights.DEFAULT`` and the like."""
    if isinstance(value, ast.Constant):
        return isinstance(value.value, str) and value.value.isupper()
    dotted = _dotted(value)
    return "_Weights" in dotted or dotted.endswith((".DEFAULT", "IMAGENET1K_V1", "IMAGENET1K_V2"))


def _own_nodes(stmt: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``stmt`` outside its nested statement blocks (an ``if``'s test, not its
    body: the body is a statement of its own in :meth:`_Look._executed`)."""
    blocks = ("body", "orelse", "finalbody", "handlers")
    pending: list[ast.AST] = [stmt]
    while pending:
        node = pending.pop()
        yield node
        for field, value in ast.iter_fields(node):
            if node is stmt and field in blocks:
                continue
            if isinstance(value, ast.AST):
                pending.append(value)
            elif isinstance(value, list):
                pending.extend(v for v in value if isinstance(v, ast.AST))


def _nodes(node: ast.AST, shallow: bool) -> Iterator[ast.AST]:
    return _own_nodes(node) if shallow else ast.walk(node)


def _unguarded_cuda(
    root: ast.AST, names: set[str], *, shallow: bool, model_code: bool
) -> Iterator[ast.Call]:
    """Calls that move something to a GPU (``.cuda()``, ``.to("cuda")``, ``device=DEVICE``
    with ``DEVICE = "cuda"``) outside a device test; in the model's own code also
    ``torch.device("cuda")``. ``shallow``: ``root``'s nested blocks are looked at apart."""
    pending: list[ast.AST] = list(_own_nodes(root)) if shallow else [root]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.If, ast.IfExp)) and _is_device_test(node.test):
            continue  # the device is chosen by a test: either branch is fine
        if isinstance(node, ast.Call):
            func = last_name(node.func)
            values = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(node.func, ast.Attribute) and func == "cuda" and not node.args:
                yield node
            elif func != "device" and any(
                _is_cuda_value(v) or (isinstance(v, ast.Name) and v.id in names) for v in values
            ):
                yield node
            elif model_code and func == "device" and _is_cuda_value(node):
                yield node
        if not shallow:
            pending.extend(reversed(list(ast.iter_child_nodes(node))))


# --- the weights file ------------------------------------------------------------------------


def weights_findings(path: Path) -> list[Finding]:
    """Pickled objects and TorchScript in a ``torch.save`` file, found from its pickle's
    opcodes (nothing is unpickled)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors" or not path.is_file():
        return []
    try:
        names = _pickled_globals(path)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return []  # unreadable here: the box's reader names the problem
    if names is None:
        return [Finding(
            f"{path.name} is a TorchScript archive (torch.jit.save); the grader loads tensors "
            "only: save the weights with torch.save(model.state_dict(), 'model.pt')",
            kind="torchscript",
        )]  # fmt: skip
    objects = sorted({n for n in names if _is_object(n)})
    if not objects:
        return []
    layers = [n for n in objects if n.startswith(("torch.nn.modules", "torch.nn.parallel",
                                                  "torchvision"))]  # fmt: skip
    if layers:  # a whole model: its layers are pickled with it
        own = [n for n in objects if n not in layers]
        shown = ", ".join((own + layers)[:4])
        return [Finding(
            f"{path.name} holds a whole pickled model ({shown}): torch.save(model, ...) stores "
            "the Python objects, which the grader never unpickles. Save the weights alone with "
            "torch.save(model.state_dict(), 'model.pt') (for a DataParallel model: "
            "model.module.state_dict()) and submit that file",
            kind="pickled_model",
        )]  # fmt: skip
    return [Finding(
        f"{path.name} holds pickled Python objects ({', '.join(objects[:4])}), which the grader "
        "never unpickles: save the weights alone with torch.save(model.state_dict(), "
        "'model.pt'), or a dict of such state_dicts and numbers",
        kind="pickled_objects",
    )]  # fmt: skip


def _is_object(name: str) -> bool:
    module, _, attribute = name.rpartition(".")
    module = PYTHON2_NAMES.get(module, module)  # protocol 2 names modules as Python 2 did
    if module.startswith(OBJECT_MODULES) or module == "__main__":
        return True
    if module == "builtins":
        return attribute not in PLAIN_BUILTINS
    return not any(module == m or module.startswith(f"{m}.") for m in LIBRARY_MODULES)


def _pickled_globals(path: Path) -> list[str] | None:
    """``module.name`` of every global the file's pickle names; None for TorchScript."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            if any(n.endswith("constants.pkl") or "/code/" in n for n in members):
                return None
            data = next((n for n in members if n.endswith("data.pkl")), None)
            if data is None:
                return []
            info = archive.getinfo(data)
            if info.file_size > MAX_PICKLE_BYTES:
                return []
            with archive.open(info) as stream:
                return _globals_of(stream, pickles=1)
    with open(path, "rb") as stream:
        if stream.read(1) != b"\x80":
            return []
        stream.seek(0)
        return _globals_of(stream, pickles=LEGACY_PICKLES)


def _globals_of(stream, *, pickles: int) -> list[str]:
    """The globals named by the next ``pickles`` pickles of ``stream``, read as opcodes."""
    found: list[str] = []
    for _ in range(pickles):
        memo: dict[int, object] = {}
        recent: list[object] = []
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name == "GLOBAL" or name == "INST":
                found.append(str(arg).replace(" ", "."))
            elif name == "STACK_GLOBAL" and len(recent) >= 2:
                found.append(f"{recent[-2]}.{recent[-1]}")
            if "UNICODE" in name or "STRING" in name:
                recent.append(arg)
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                recent.append(memo.get(int(arg)))
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = recent[-1] if recent else None
            elif name != "STACK_GLOBAL":
                recent.append(None)
            recent = recent[-2:]
    return found
