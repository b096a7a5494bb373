"""What a model runs, as a hash: its code and its state, for the engine cache and in-session sharing.

Two models share an exported graph (and every engine built from it) exactly when their hashes
agree, so the hash must see everything a forward can read:

- code: every method of every class in the MRO of every submodule (torch's own classes are
  covered by torch's version in the cache key), and, following the names that code reads, the
  module-level functions, classes and values it reaches in its own module (and in modules it reads
  attributes of), transitively; functions by their bytecode, constants, defaults and closure;
- state: every attribute of every submodule (parameters and buffers, persistent or not, by
  their bytes; dicts, lists, tensors, functions, objects of the user's own classes by content) and
  the forward hooks.

Something that cannot be hashed by content (a lock, a file, an object of a library's class with
no known form) is reported in ``Identity.unhashable``: such a model is neither cached nor shared.
The hash never depends on memory addresses, hash randomisation or file paths (a cache hit must
survive a new process and a moved checkout); bytecode leaves out line numbers for the same reason.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

# Code from these is not hashed: torch's is pinned by its version in every cache key, the standard
# library's by Python's; numpy's functions are only ever called on values hashed elsewhere.
_LIBRARIES = frozenset({"torch", "functorch", "builtins", "numpy", "typing_extensions"}) | frozenset(
    sys.stdlib_module_names)
_ATOMS = (type(None), bool, int, float, complex, str, bytes)
# torch's own attributes of every Module that a forward runs through (the rest is bookkeeping for
# training and state dicts); parameters and buffers are hashed with them, submodules by path.
_FORWARD_BOOKKEEPING = ("_parameters", "_buffers", "_forward_pre_hooks", "_forward_hooks")
_HOOKS = ("_forward_pre_hooks", "_forward_hooks")  # keyed by a process-wide counter: values only
_TORCH_VALUES = (torch.dtype, torch.device, torch.layout, torch.memory_format)


@dataclass
class Identity:
    digest: str
    unhashable: list[str] = field(default_factory=list)  # "Model.lock (a _thread.lock)": not hashed
    # The values alone (every tensor and array the model holds, by where it is held): what an engine's error
    # depends on beside the code. The gate reads a changed state as another model's error figures, and a
    # change of code alone as a change to judge (baseline/comparison.py).
    state: str = ""


def is_library(module_name: Any) -> bool:
    return str(module_name or "builtins").split(".", 1)[0] in _LIBRARIES


@functools.lru_cache(maxsize=None)
def installed_version(module_name: str) -> Optional[str]:
    """The version of the installed package (site-packages) ``module_name`` belongs to; None for the user's code.

    An installed package's code is hashed where the model runs it (its classes' methods), but the
    names that code reads are not followed: they reach its whole import graph (locks, process
    ids); its version stands for the rest.
    """
    top = module_name.split(".", 1)[0]
    path = getattr(sys.modules.get(module_name) or sys.modules.get(top), "__file__", None) or ""
    if not {"site-packages", "dist-packages"} & set(Path(path).parts):
        return None
    return str(getattr(sys.modules.get(top), "__version__", "unknown"))


def tensor_bytes(tensor: torch.Tensor) -> Any:
    """A tensor's values as a flat uint8 array (any dtype, bf16 and fp8 too), for a hash to read."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


def _without_values(tensor: torch.Tensor) -> bool:
    """A meta tensor, or a FakeTensor (torch.export's and Dynamo's shape-only stand-ins)."""
    if tensor.is_meta:
        return True
    try:
        from torch._subclasses.fake_tensor import FakeTensor
    except ImportError:  # a torch without it has no fake tensors to meet
        return False
    return isinstance(tensor, FakeTensor)


def _type_name(value: Any) -> str:
    cls = value if isinstance(value, type) else type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


class Hasher:
    """Feeds values into one sha256, tracking what it has seen (cycles, shared objects) and what it cannot hash.

    ``strict``: a value that cannot be hashed is a problem (the model's own state and closures);
    lenient, it counts by its type only (a module-level logger the code happens to name).
    """

    def __init__(self, module_paths: dict[int, str]) -> None:
        self.digest = hashlib.sha256()
        self.state = hashlib.sha256()  # tensor and array values only (Identity.state)
        self.module_paths = module_paths  # id(submodule) -> its path: a reference, not a second copy
        self.seen: dict[int, int] = {}
        # The user's classes whose attributes are in the hash (or being hashed: a method naming its own class). Apart
        # from ``seen``: a class reached first as a value (a global a parent's __init__ names) is "seen" before its
        # attributes are hashed, and reading "seen" as "hashed" left every such submodule class's code out of the key.
        self.classes: dict[int, int] = {}
        self.alive: list[Any] = []  # keeps every seen object alive, so no id is reused meanwhile
        self.unhashable: list[str] = []

    def write(self, text: str) -> None:
        self.digest.update(text.encode("utf-8", "surrogatepass") + b"\0")

    def first_visit(self, value: Any) -> bool:
        """True the first time; later visits write a back-reference (cycles end, order stays stable)."""
        if id(value) in self.seen:
            self.write(f"ref:{self.seen[id(value)]}")
            return False
        self.seen[id(value)] = len(self.seen)
        self.alive.append(value)
        return True

    # -- values ---------------------------------------------------------------------------------------

    def value(self, value: Any, where: str, strict: bool = True) -> None:
        if isinstance(value, _ATOMS) or isinstance(value, _TORCH_VALUES):
            self.write(f"{type(value).__name__}:{value!r}")
        elif isinstance(value, torch.nn.Module) and id(value) in self.module_paths:
            self.write(f"submodule:{self.module_paths[id(value)]}")
        elif isinstance(value, enum.Enum):
            self.write(f"enum:{_type_name(value)}.{value.name}")
        elif self.first_visit(value):
            self.compound(value, where, strict)

    def compound(self, value: Any, where: str, strict: bool) -> None:
        if isinstance(value, torch.Tensor):
            self.tensor(value, where, strict)
        elif isinstance(value, (list, tuple)):
            self.write(f"{type(value).__name__}:{len(value)}")
            for index, item in enumerate(value):
                self.value(item, f"{where}[{index}]", strict)
        elif isinstance(value, dict):
            self.write(f"dict:{len(value)}")
            for key, item in value.items():
                self.value(key, where, strict)
                self.value(item, f"{where}[{key!r}]", strict)
        elif isinstance(value, (set, frozenset)):
            self.write(f"set:{''.join(sorted(self.sub_digest(item, where, strict) for item in value))}")
        elif isinstance(value, types.ModuleType):
            self.write(f"pymodule:{value.__name__}")
        elif callable(value) or isinstance(value, (type, property, staticmethod, classmethod)):
            self.callable(value, where, strict)
        else:
            self.instance(value, where, strict)

    def sub_digest(self, value: Any, where: str, strict: bool) -> str:
        """The hash of one set element alone: elements are sorted by it, as set order is not stable."""
        outer, seen, classes = self.digest, dict(self.seen), dict(self.classes)
        self.digest = hashlib.sha256()
        try:
            self.value(value, where, strict)
            return self.digest.hexdigest()
        finally:
            self.digest, self.seen, self.classes = outer, seen, classes

    def tensor(self, tensor: torch.Tensor, where: str, strict: bool) -> None:
        if _without_values(tensor):
            # A fake or meta tensor holds no values: its dtype, shape and strides are all there is to it (the
            # ``meta['val']`` of every node of a torch.export'ed GraphModule made such a module unhashable).
            self.write(f"tensor without values:{type(tensor).__name__}:{tensor.dtype}:{tuple(tensor.shape)}:"
                       f"{tuple(tensor.stride()) if tensor.layout == torch.strided else tensor.layout}")
            return
        try:
            data = tensor_bytes(tensor)
        except Exception as exc:  # sparse, meta, nested: no plain bytes stand for the values
            self.problem(where, f"a {tensor.layout} {tensor.dtype} tensor ({type(exc).__name__})", strict)
            return
        self.write(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}")
        self.digest.update(data)
        self.state.update(f"{where}:{tensor.dtype}:{tuple(tensor.shape)}".encode("utf-8", "surrogatepass") + b"\0")
        self.state.update(data)

    def instance(self, value: Any, where: str, strict: bool) -> None:
        """An object: a module outside the tree, or an object of the user's own class, by its class and state."""
        cls = type(value)
        import numpy as np

        if isinstance(value, np.ndarray) and value.dtype != object:
            self.write(f"ndarray:{value.dtype}:{value.shape}")
            data = np.ascontiguousarray(value).tobytes()
            self.digest.update(data)
            self.state.update(f"{where}:{value.dtype}:{value.shape}".encode("utf-8", "surrogatepass") + b"\0")
            self.state.update(data)
            return
        if is_library(cls.__module__) and not isinstance(value, torch.nn.Module):
            self.reduced(value, where, strict)
            return
        state = _object_state(value)
        if state is None:
            self.problem(where, f"a {_type_name(value)} without attributes", strict)
            return
        self.write(f"object:{_type_name(value)}")
        self.cls(cls, where)
        for key, item in sorted(state):  # attribute order is construction order, not meaning
            self.write(key)
            self.value(item, f"{where}.{key}", strict)

    def reduced(self, value: Any, where: str, strict: bool) -> None:
        """A library's object (a Fraction, a Path, a Random) by what pickle and copy.deepcopy use."""
        try:
            reduced = value.__reduce_ex__(4)
            if not isinstance(reduced, str):  # a string: a module-level singleton, pickled by name
                reduced = tuple(list(part) if isinstance(part, Iterator) else part for part in reduced)
        except Exception as exc:  # a lock, a file, a C handle: nothing says what it holds
            self.problem(where, f"a {_type_name(value)}, {type(exc).__name__}", strict)
            return
        self.write(f"reduce:{_type_name(value)}")
        self.value(reduced, where, strict)

    # -- code -----------------------------------------------------------------------------------------

    def callable(self, value: Any, where: str, strict: bool) -> None:
        if isinstance(value, types.FunctionType):
            self.function(value, where, strict)
        elif isinstance(value, types.MethodType):
            self.write("method")
            self.value(value.__func__, where, strict)
            self.value(value.__self__, f"{where}.__self__", strict)
        elif isinstance(value, (staticmethod, classmethod)):
            self.write(type(value).__name__)
            self.value(value.__func__, where, strict)
        elif isinstance(value, property):
            self.write("property")
            for accessor in (value.fget, value.fset, value.fdel):
                self.value(accessor, where, strict)
        elif isinstance(value, functools.partial):
            self.write("partial")
            for part in (value.func, value.args, value.keywords):
                self.value(part, where, strict)
        elif isinstance(value, type):
            self.cls(value, where)
        elif is_library(getattr(value, "__module__", None)) and hasattr(value, "__qualname__"):
            self.write(f"named:{getattr(value, '__module__', None)}.{value.__qualname__}")  # torch.relu, an op
        else:
            self.instance(value, where, strict)  # a callable object: its class's __call__ and its state

    def function(self, fn: types.FunctionType, where: str, strict: bool) -> None:
        if is_library(fn.__module__):
            self.write(f"named:{fn.__module__}.{fn.__qualname__}")
            return
        self.write("function")
        self.code(fn.__code__, fn.__globals__, where)
        self.value(fn.__defaults__, f"{where} (defaults)", strict)
        self.value(fn.__kwdefaults__, f"{where} (defaults)", strict)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                contents = cell.cell_contents
            except ValueError:  # a cell not yet filled
                self.write("empty-cell")
                continue
            self.value(contents, f"{where} (closure {name})", strict)

    def code(self, code: types.CodeType, namespace: dict[str, Any], where: str) -> None:
        """Bytecode, names and constants (no file name, no line numbers), then what the names reach."""
        self.write(f"code:{code.co_argcount}:{code.co_posonlyargcount}:{code.co_kwonlyargcount}:{code.co_flags}:"
                   f"{code.co_names}:{code.co_varnames}:{code.co_freevars}:{code.co_cellvars}")
        self.digest.update(code.co_code)
        self.digest.update(getattr(code, "co_exceptiontable", b""))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const, namespace, where)
            else:
                self.value(const, where, strict=False)
        module_name = str(namespace.get("__name__", ""))
        version = installed_version(module_name)
        if version is None:
            self.globals_read(code.co_names, namespace)
        else:
            self.write(f"installed:{module_name.split('.', 1)[0]}:{version}")

    def globals_read(self, names: tuple[str, ...], namespace: dict[str, Any]) -> None:
        """Module-level values the code names: its own module's, and attributes of the user's modules it reads.

        A name is also an attribute name (``self.scale``): looking it up costs a harmless extra
        hash at worst. Lenient: a module-level logger or registry is not the model's state.
        """
        for name in names:
            if name in namespace:
                target = namespace[name]
                if not isinstance(target, types.ModuleType):
                    self.write(f"global:{name}")
                    self.value(target, f"global {name}", strict=False)
                elif not is_library(target.__name__):
                    for attribute in names:
                        if attribute in vars(target) and not isinstance(vars(target)[attribute], types.ModuleType):
                            self.write(f"global:{name}.{attribute}")
                            self.value(vars(target)[attribute], f"global {name}.{attribute}", strict=False)

    def cls(self, cls: type, where: str) -> None:
        """A class by name; the user's own classes in its MRO also by every attribute (methods by code)."""
        self.write(f"class:{_type_name(cls)}")
        for base in cls.__mro__:
            if is_library(base.__module__):
                continue
            if id(base) in self.classes:
                self.write(f"class-ref:{self.classes[id(base)]}")
                continue
            self.classes[id(base)] = len(self.classes)
            self.alive.append(base)
            self.write(f"base:{_type_name(base)}")
            for name, attribute in sorted(vars(base).items()):
                if name in ("__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__annotations__"):
                    continue
                self.write(name)
                self.value(attribute, f"{base.__qualname__}.{name}", strict=False)

    def problem(self, where: str, what: str, strict: bool) -> None:
        self.write(f"unhashable:{what}")
        if strict:
            self.unhashable.append(f"{where} ({what})")


def _object_state(value: Any) -> "list[tuple[str, Any]] | None":
    """An object's attributes (``__dict__`` and ``__slots__``), or None when it has neither."""
    state = dict(vars(value)) if hasattr(value, "__dict__") else {}
    slots = [slot for cls in type(value).__mro__ for slot in getattr(cls, "__slots__", ())]
    for slot in slots:
        if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
            state[slot] = getattr(value, slot)
    if not state and not hasattr(value, "__dict__"):
        return None
    return list(state.items())


def module_identity(model: torch.nn.Module, hasher: Hasher) -> None:
    """Every submodule's class (by code) and attributes; children by their path."""
    modules = list(model.named_modules(remove_duplicate=False))
    for path, module in modules:  # all paths first: an attribute may name a module hashed later
        hasher.module_paths.setdefault(id(module), path)
    for path, module in modules:
        hasher.write(f"module:{path}")
        if hasher.module_paths[id(module)] != path:  # one module reached by two paths
            hasher.write(f"alias:{hasher.module_paths[id(module)]}")
            continue
        name = f"{type(model).__name__}{'.' if path else ''}{path}"
        hasher.cls(type(module), name)
        for key, value in vars(module).items():
            # Children come by path, eval() is forced on every copy, the rest of torch's own
            # attributes is for training and state dicts.
            if key in _TORCH_BOOKKEEPING and key not in _FORWARD_BOOKKEEPING:
                continue
            hasher.write(f"attr:{key}")
            hasher.value(list(value.values()) if key in _HOOKS else value, f"{name}.{key}")


_TORCH_BOOKKEEPING = frozenset(vars(torch.nn.Module()))
