"""Pytrees: nested containers flattened to a list of leaves plus a hashable treedef.

Every transformation flattens its arguments and unflattens its results, and `jit` keys its
cache on treedefs, so flattening, unflattening, hashing and equality sit on the dispatch hot
path. The representation is chosen for that:

- A treedef wraps a nested tuple ``node = (node_type, aux_data, kids)``; a leaf is ``None``.
  ``kids`` is an ``int`` when every child is a leaf (the usual case for the innermost
  containers) and a tuple of child nodes otherwise, so the form is canonical and equality and
  hashing are plain tuple operations done in C (the hash is cached).
- Flattening dispatches on ``type(x)`` through a dict. A set of types already seen to be leaves
  lets a container whose children are all leaves be flattened with ``set.issuperset`` and
  ``list.extend``, without a Python-level loop over its children.
- Node types are exact: a subclass of ``dict`` or ``list`` is a leaf unless registered. Any
  tuple subclass with ``_fields`` is a namedtuple node. ``None`` is a node with no children.
- Dicts flatten in sorted key order, as in JAX; keys that do not sort fall back to insertion
  order. ``OrderedDict`` keeps insertion order. The sort order is cached per key tuple.
- A treedef that is unflattened many times (a jitted function's output structure) compiles a
  generated Python function that builds the whole tree in one expression.
- Structure mismatches (``tree_map``, ``flatten_up_to``) raise a ValueError that names the key
  path where the trees first differ and describes both nodes.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import operator
from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import islice
from typing import Any, TypeVar

PyTree = Any
T = TypeVar("T")
_NoneType = type(None)

# --------------------------------------------------------------------------------------------
# Key paths


@dataclasses.dataclass(frozen=True, slots=True)
class DictKey:
    """Path entry for a dict (or OrderedDict, defaultdict) child: ``['a']``."""

    key: Hashable

    def __str__(self) -> str:
        return f"[{self.key!r}]"


@dataclasses.dataclass(frozen=True, slots=True)
class SequenceKey:
    """Path entry for a tuple or list child: ``[0]``."""

    idx: int

    def __str__(self) -> str:
        return f"[{self.idx!r}]"


@dataclasses.dataclass(frozen=True, slots=True)
class GetAttrKey:
    """Path entry for an attribute (namedtuple field, dataclass field): ``.name``."""

    name: str

    def __str__(self) -> str:
        return f".{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class FlattenedIndexKey:
    """Path entry for the i-th child of a custom node registered without key information."""

    key: int

    def __str__(self) -> str:
        return f"[<flat index {self.key}>]"


KeyEntry = DictKey | SequenceKey | GetAttrKey | FlattenedIndexKey | Hashable
KeyPath = tuple[Any, ...]


def keystr(keys: KeyPath, *, simple: bool = False, separator: str = "") -> str:
    """Render a key path for messages, e.g. ``['params'][0].w``.

    With ``simple=True`` each entry is rendered bare (``params``, ``0``, ``w``) and joined with
    ``separator``, which suits file names and logging keys.
    """
    if not simple:
        return separator.join(map(str, keys))
    return separator.join(map(_simple_keystr, keys))


def _simple_keystr(key: Any) -> str:
    if isinstance(key, DictKey | FlattenedIndexKey):
        return str(key.key)
    if isinstance(key, SequenceKey):
        return str(key.idx)
    if isinstance(key, GetAttrKey):
        return key.name
    return str(key)


_SEQUENCE_KEYS: list[SequenceKey] = []


def _sequence_keys(n: int) -> list[SequenceKey]:
    """Shared ``SequenceKey(0..n-1)``; keys are frozen, so one instance per index suffices."""
    for i in range(len(_SEQUENCE_KEYS), n):
        _SEQUENCE_KEYS.append(SequenceKey(i))
    return _SEQUENCE_KEYS[:n]


# --------------------------------------------------------------------------------------------
# Node registry


_Flatten = Callable[[Any], tuple[Iterable[Any], Any]]  # x -> (children, aux)
_FlattenWithKeys = Callable[[Any], tuple[Iterable[tuple[Any, Any]], Any]]  # -> ([(key, c)], aux)
_Build = Callable[[Any, Iterable[Any]], Any]  # aux, children -> x
_Fast = Callable[[Any, list[Any]], tuple]  # x, leaves -> node (appends x's leaves)


class _NodeKind:
    """How to take one node type apart (``flatten``) and put it back (``build``)."""

    __slots__ = ("type", "flatten", "flatten_with_keys", "build", "registered")

    def __init__(
        self,
        nodetype: type,
        flatten: _Flatten,
        flatten_with_keys: _FlattenWithKeys,
        build: _Build,
        registered: bool,
    ) -> None:
        self.type = nodetype
        self.flatten = flatten
        self.flatten_with_keys = flatten_with_keys
        self.build = build
        self.registered = registered


# The four tables below are all keyed by exact type and kept in sync by `_install`.
_KINDS: dict[type, _NodeKind] = {}  # every node type seen so far
_FAST: dict[type, _Fast] = {}
_BUILD: dict[type, _Build] = {}
_LEAF_TYPES: set[type] = set()  # types already classified as leaves
_MAX_LEAF_TYPES = 10_000  # bound the cache when classes are created dynamically
_all_leaf_types = _LEAF_TYPES.issuperset


def _install(kind: _NodeKind, fast: _Fast) -> None:
    _KINDS[kind.type] = kind
    _FAST[kind.type] = fast
    _BUILD[kind.type] = kind.build
    _LEAF_TYPES.discard(kind.type)


def _classify(t: type) -> _NodeKind | None:
    """Decide once per type whether it is a node; the answer is cached in the tables."""
    kind = _KINDS.get(t)
    if kind is not None:
        return kind
    if issubclass(t, tuple) and hasattr(t, "_fields"):
        kind = _namedtuple_kind(t)
        _install(kind, _fast_namedtuple)
        return kind
    if len(_LEAF_TYPES) >= _MAX_LEAF_TYPES:
        _LEAF_TYPES.clear()
    _LEAF_TYPES.add(t)
    return None


def _node_kind(t: type) -> _NodeKind:
    """The kind of a type known to be a node (e.g. from a treedef, perhaps unpickled)."""
    kind = _classify(t)
    if kind is None:
        raise TypeError(f"{_type_name(t)} is in a treedef but is not a registered pytree node")
    return kind


# Sorting every dict's keys on every flatten is the main cost of flattening, so the order is
# computed once per distinct key tuple (in insertion order) and cached as C-level getters:
# `_SORTED` if insertion order is already sorted (or the keys do not sort, in which case
# insertion order is kept), else `(sort_keys, get_values)`, which permute the dict's own key
# tuple and fetch the values in sorted order. Keys are permuted rather than taken from the
# cache because equal keys may differ in type (1, 1.0, True; a StrEnum member and its str).
_SORTED = (None, None)
_DICT_ORDERS: dict[tuple, tuple] = {}
_MAX_DICT_ORDERS = 10_000


def _dict_order(keys: tuple) -> tuple:
    try:
        perm = sorted(range(len(keys)), key=keys.__getitem__)
    except TypeError:  # keys that do not sort: keep insertion order
        perm = list(range(len(keys)))
    if perm == list(range(len(keys))):
        order = _SORTED
    else:
        order = (operator.itemgetter(*perm), operator.itemgetter(*[keys[i] for i in perm]))
    if len(_DICT_ORDERS) >= _MAX_DICT_ORDERS:
        _DICT_ORDERS.clear()
    _DICT_ORDERS[keys] = order
    return order


def _dict_keys(x: dict) -> tuple:
    """The keys of ``x`` in flatten order: sorted, or insertion order if they do not sort."""
    keys = tuple(x)
    order = _DICT_ORDERS.get(keys) or _dict_order(keys)
    return keys if order is _SORTED else order[0](keys)


def _flatten_children(vals: Sequence[Any], leaves: list[Any]) -> int | tuple:
    """Flatten the children of one node into ``leaves`` and return that node's ``kids``."""
    if _all_leaf_types(map(type, vals)):
        leaves.extend(vals)
        return len(vals)
    return _flatten_mixed(vals, leaves)


def _flatten_mixed(vals: Sequence[Any], leaves: list[Any]) -> int | tuple:
    """`_flatten_children` once some child may be a node (or of a type not yet seen)."""
    kids = []
    append = kids.append
    any_node = False
    for v in vals:
        fast = _FAST.get(type(v))
        if fast is None and (type(v) in _LEAF_TYPES or _classify(type(v)) is None):
            leaves.append(v)
            append(None)
        else:
            append((fast or _FAST[type(v)])(v, leaves))
            any_node = True
    return tuple(kids) if any_node else len(kids)


# The all-leaves check of `_flatten_children` is inlined in the three common containers.
def _fast_tuple(x: tuple, leaves: list[Any]) -> tuple:
    if _all_leaf_types(map(type, x)):
        leaves.extend(x)
        return (tuple, None, len(x))
    return (tuple, None, _flatten_mixed(x, leaves))


def _fast_list(x: list, leaves: list[Any]) -> tuple:
    if _all_leaf_types(map(type, x)):
        leaves.extend(x)
        return (list, None, len(x))
    return (list, None, _flatten_mixed(x, leaves))


def _fast_dict(x: dict, leaves: list[Any]) -> tuple:
    keys = tuple(x)
    order = _DICT_ORDERS.get(keys) or _dict_order(keys)
    if order is _SORTED:
        vals: Any = x.values()
    else:
        keys = order[0](keys)
        vals = order[1](x)
    if _all_leaf_types(map(type, vals)):
        leaves.extend(vals)
        return (dict, keys, len(vals))
    return (dict, keys, _flatten_mixed(vals, leaves))


def _fast_none(x: None, leaves: list[Any]) -> tuple:
    return _NONE_NODE


def _fast_namedtuple(x: tuple, leaves: list[Any]) -> tuple:
    return (type(x), None, _flatten_children(x, leaves))


def _fast_ordereddict(x: collections.OrderedDict, leaves: list[Any]) -> tuple:
    return (collections.OrderedDict, tuple(x), _flatten_children(list(x.values()), leaves))


def _fast_defaultdict(x: collections.defaultdict, leaves: list[Any]) -> tuple:
    vals, keys = _dict_flatten(x)
    return (collections.defaultdict, (x.default_factory, keys), _flatten_children(vals, leaves))


_NONE_NODE = (_NoneType, None, 0)


def _seq_with_keys(x: Sequence[Any]) -> tuple[list[tuple[Any, Any]], None]:
    return list(zip(_sequence_keys(len(x)), x, strict=True)), None


def _dict_flatten(x: dict) -> tuple[list[Any], tuple]:
    keys = _dict_keys(x)
    return [x[k] for k in keys], keys


def _dict_flatten_with_keys(x: dict) -> tuple[list[tuple[Any, Any]], tuple]:
    keys = _dict_keys(x)
    return [(DictKey(k), x[k]) for k in keys], keys


def _ordereddict_flatten(x: collections.OrderedDict) -> tuple[list[Any], tuple]:
    return list(x.values()), tuple(x)


def _ordereddict_flatten_with_keys(x: collections.OrderedDict) -> tuple[list, tuple]:
    return [(DictKey(k), v) for k, v in x.items()], tuple(x)


def _defaultdict_flatten(x: collections.defaultdict) -> tuple[list[Any], tuple]:
    vals, keys = _dict_flatten(x)
    return vals, (x.default_factory, keys)


def _defaultdict_flatten_with_keys(x: collections.defaultdict) -> tuple[list, tuple]:
    keyed, keys = _dict_flatten_with_keys(x)
    return keyed, (x.default_factory, keys)


def _namedtuple_kind(t: type) -> _NodeKind:
    fields = tuple(t._fields)  # type: ignore[attr-defined]

    def flatten_with_keys(x: tuple) -> tuple[list[tuple[Any, Any]], None]:
        return [(GetAttrKey(f), c) for f, c in zip(fields, x, strict=True)], None

    return _NodeKind(t, lambda x: (x, None), flatten_with_keys, lambda _, ch: t(*ch), False)


def _builtin(
    t: type, flatten: _Flatten, flatten_with_keys: _FlattenWithKeys, build: _Build, fast: _Fast
) -> None:
    _install(_NodeKind(t, flatten, flatten_with_keys, build, False), fast)


_builtin(tuple, lambda x: (x, None), _seq_with_keys, lambda _, ch: tuple(ch), _fast_tuple)
_builtin(list, lambda x: (x, None), _seq_with_keys, lambda _, ch: list(ch), _fast_list)
_builtin(
    dict,
    _dict_flatten,
    _dict_flatten_with_keys,
    lambda keys, ch: dict(zip(keys, ch, strict=True)),
    _fast_dict,
)
_builtin(_NoneType, lambda x: ((), None), lambda x: ((), None), lambda _, ch: None, _fast_none)
_builtin(
    collections.OrderedDict,
    _ordereddict_flatten,
    _ordereddict_flatten_with_keys,
    lambda keys, ch: collections.OrderedDict(zip(keys, ch, strict=True)),
    _fast_ordereddict,
)
_builtin(
    collections.defaultdict,
    _defaultdict_flatten,
    _defaultdict_flatten_with_keys,
    lambda aux, ch: collections.defaultdict(aux[0], zip(aux[1], ch, strict=True)),
    _fast_defaultdict,
)
_BUILTIN_NODE_TYPES = frozenset(_KINDS)


def register_pytree_node(
    nodetype: type,
    flatten_func: Callable[[Any], tuple[Iterable[Any], Hashable]],
    unflatten_func: Callable[[Any, Iterable[Any]], Any],
    flatten_with_keys_func: Callable[[Any], tuple[Iterable[tuple[Any, Any]], Hashable]]
    | None = None,
) -> None:
    """Make ``nodetype`` a pytree node, so transformations see through it to its children.

    ``flatten_func(x) -> (children, aux_data)``; ``unflatten_func(aux_data, children) -> x``.
    ``aux_data`` goes into the treedef, so it must be hashable and comparable (jit caches on it).
    Without ``flatten_with_keys_func``, key paths name children ``FlattenedIndexKey(i)``.
    """
    if nodetype in _BUILTIN_NODE_TYPES or (nodetype in _KINDS and _KINDS[nodetype].registered):
        raise ValueError(
            f"register_pytree_node: {_type_name(nodetype)} is already registered as a pytree "
            "node; a type can be registered only once."
        )
    if flatten_with_keys_func is None:

        def flatten_with_keys_func(x: Any) -> tuple[list[tuple[Any, Any]], Any]:
            children, aux = flatten_func(x)
            return [(FlattenedIndexKey(i), c) for i, c in enumerate(children)], aux

    def build(aux: Any, children: Iterable[Any]) -> Any:
        return unflatten_func(aux, tuple(children))

    def fast(x: Any, leaves: list[Any]) -> tuple:
        children, aux = flatten_func(x)
        if type(children) is not tuple and type(children) is not list:
            children = tuple(children)
        return (nodetype, aux, _flatten_children(children, leaves))

    kind = _NodeKind(nodetype, flatten_func, flatten_with_keys_func, build, True)
    _install(kind, fast)


def register_pytree_with_keys(
    nodetype: type,
    flatten_with_keys: Callable[[Any], tuple[Iterable[tuple[Any, Any]], Hashable]],
    unflatten_func: Callable[[Any, Iterable[Any]], Any],
    flatten_func: Callable[[Any], tuple[Iterable[Any], Hashable]] | None = None,
) -> None:
    """Register a node whose flatten also names each child, for readable key paths.

    ``flatten_with_keys(x) -> ([(key, child), ...], aux_data)``. ``flatten_func`` is an optional
    faster flatten without keys; it must give the same children and aux data.
    """
    if flatten_func is None:

        def flatten_func(x: Any) -> tuple[list[Any], Any]:
            keyed, aux = flatten_with_keys(x)
            return [c for _, c in keyed], aux

    register_pytree_node(nodetype, flatten_func, unflatten_func, flatten_with_keys)


def register_pytree_node_class(cls: type[T]) -> type[T]:
    """Class decorator: register ``cls`` using its ``tree_flatten`` method and
    ``tree_unflatten(aux_data, children)`` classmethod, as in JAX."""
    register_pytree_node(cls, operator.methodcaller("tree_flatten"), cls.tree_unflatten)  # type: ignore[attr-defined]
    return cls


def _getter(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A fast ``x -> tuple(getattr(x, n) for n in names)``."""
    if not names:
        return lambda x: ()
    if len(names) == 1:
        (name,) = names
        return lambda x: (getattr(x, name),)
    return operator.attrgetter(*names)


def register_dataclass(
    nodetype: type[T] | None = None,
    data_fields: Sequence[str] | None = None,
    meta_fields: Sequence[str] | None = None,
    drop_fields: Sequence[str] = (),
) -> Any:
    """Register a dataclass as a pytree whose data fields are children and meta fields static.

    Used bare (``@register_dataclass``), data and meta fields are read from
    ``dataclasses.fields``: a field declared ``field(metadata={"static": True})`` is a meta
    field, every other ``init`` field is data. Or pass ``data_fields`` and ``meta_fields``
    explicitly (the class then need not be a dataclass). Meta field values go into the treedef,
    so they must be hashable. Unflattening calls the constructor with keyword arguments.
    """
    if nodetype is None:
        return functools.partial(
            register_dataclass,
            data_fields=data_fields,
            meta_fields=meta_fields,
            drop_fields=drop_fields,
        )
    if (data_fields is None) != (meta_fields is None):
        raise TypeError(
            "register_dataclass: pass both data_fields and meta_fields, or neither to infer them "
            f"from the dataclass fields; got data_fields={data_fields!r}, "
            f"meta_fields={meta_fields!r}."
        )
    is_dc = dataclasses.is_dataclass(nodetype)
    if data_fields is None or meta_fields is None:
        if not is_dc:
            raise TypeError(
                f"register_dataclass: {_type_name(nodetype)} is not a dataclass, so data_fields "
                "and meta_fields must be given explicitly (or apply @dataclasses.dataclass "
                "first, beneath @register_dataclass)."
            )
        fields = [f for f in dataclasses.fields(nodetype) if f.init and f.name not in drop_fields]
        data_fields = [f.name for f in fields if not f.metadata.get("static", False)]
        meta_fields = [f.name for f in fields if f.metadata.get("static", False)]
    else:
        data_fields, meta_fields = list(data_fields), list(meta_fields)
        if is_dc:
            init = {f.name for f in dataclasses.fields(nodetype) if f.init} - set(drop_fields)
            given = set(data_fields) | set(meta_fields)
            if given != init:
                raise ValueError(
                    f"register_dataclass: data_fields and meta_fields of {_type_name(nodetype)} "
                    f"must together name every init field; missing {sorted(init - given)}, "
                    f"unknown {sorted(given - init)}."
                )
    data_get, meta_get = _getter(data_fields), _getter(meta_fields)
    data_keys = [GetAttrKey(n) for n in data_fields]
    cls: Any = nodetype

    def flatten(x: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return data_get(x), meta_get(x)

    def flatten_with_keys(x: Any) -> tuple[list[tuple[Any, Any]], tuple[Any, ...]]:
        return list(zip(data_keys, data_get(x), strict=True)), meta_get(x)

    def unflatten(meta: tuple[Any, ...], data: Iterable[Any]) -> Any:
        kwargs = dict(zip(meta_fields, meta, strict=True))
        kwargs.update(zip(data_fields, data, strict=True))
        return cls(**kwargs)

    register_pytree_node(nodetype, flatten, unflatten, flatten_with_keys)
    return nodetype


# --------------------------------------------------------------------------------------------
# Treedefs


class PyTreeDef:
    """The structure of a pytree: everything but its leaves. Hashable, cheap to compare."""

    __slots__ = ("_node", "num_leaves", "_hash", "_uses", "_compiled")

    def __init__(self, node: tuple | None, num_leaves: int) -> None:
        self._node = node
        self.num_leaves = num_leaves
        self._hash: int | None = None
        self._uses = 0  # unflattens so far; a reused treedef gets a compiled unflatten
        self._compiled: Callable[[Sequence[Any]], Any] | None = None

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not PyTreeDef:
            return NotImplemented
        if self.num_leaves != other.num_leaves:
            return False
        if self._hash is not None and other._hash is not None and self._hash != other._hash:
            return False
        return self._node == other._node

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            try:
                h = self._hash = hash(self._node)
            except TypeError as e:
                raise TypeError(
                    f"PyTreeDef is not hashable: {_unhashable_aux(self._node)}. Aux data "
                    "(including static dataclass fields) must be hashable, because treedefs "
                    "key the jit cache."
                ) from e
        return h

    def __reduce__(self) -> tuple:
        return (PyTreeDef, (self._node, self.num_leaves))  # the cached hash is per process

    def __repr__(self) -> str:
        return f"PyTreeDef({_repr_node(self._node)})"

    @property
    def num_nodes(self) -> int:
        """Number of nodes, leaves included (as in JAX)."""
        return _count_nodes(self._node)

    def unflatten(self, leaves: Iterable[Any]) -> PyTree:
        """Rebuild a tree of this structure from ``leaves`` (in flatten order)."""
        return tree_unflatten(self, leaves)

    def flatten_up_to(self, tree: PyTree) -> list[Any]:
        """Flatten ``tree`` only as deep as this treedef: each of this treedef's leaves takes
        the whole subtree at that position. Used for prefix trees (e.g. ``in_axes``)."""
        return _flatten_up_to(self._node, tree, "flatten_up_to", "")

    def children(self) -> list[PyTreeDef]:
        """Treedefs of the root's children."""
        node = self._node
        if node is None:
            return []
        kids = node[2]
        if kids.__class__ is int:
            return [_LEAF_TREEDEF] * kids
        return [_LEAF_TREEDEF if k is None else PyTreeDef(k, _count_leaves(k)) for k in kids]

    def node_data(self) -> tuple[type, Any] | None:
        """``(node_type, aux_data)`` of the root, or None for a leaf."""
        return None if self._node is None else (self._node[0], self._node[1])


_LEAF_TREEDEF = PyTreeDef(None, 1)


def _count_leaves(node: tuple | None) -> int:
    if node is None:
        return 1
    kids = node[2]
    if kids.__class__ is int:
        return kids
    return sum(_count_leaves(k) for k in kids)


def _count_nodes(node: tuple | None) -> int:
    if node is None:
        return 1
    kids = node[2]
    if kids.__class__ is int:
        return 1 + kids
    return 1 + sum(_count_nodes(k) for k in kids)


def _kids_list(node: tuple) -> list[tuple | None]:
    kids = node[2]
    return [None] * kids if kids.__class__ is int else list(kids)


def _unhashable_aux(node: tuple | None) -> str:
    if node is None:
        return "unknown"
    try:
        hash(node[1])
    except TypeError:
        return f"the aux data {node[1]!r} of a {_type_name(node[0])} node is unhashable"
    for k in _kids_list(node):
        if k is not None:
            try:
                hash(k)
            except TypeError:
                return _unhashable_aux(k)
    return "unknown"


def _repr_node(node: tuple | None) -> str:
    if node is None:
        return "*"
    t, aux, _ = node
    kids = [_repr_node(k) for k in _kids_list(node)]
    if t is _NoneType:
        return "None"
    if t is tuple:
        return "(" + ", ".join(kids) + ("," if len(kids) == 1 else "") + ")"
    if t is list:
        return "[" + ", ".join(kids) + "]"
    if t is dict:
        return "{" + ", ".join(f"{k!r}: {s}" for k, s in zip(aux, kids, strict=True)) + "}"
    if t is collections.OrderedDict:
        return (
            "OrderedDict({"
            + ", ".join(f"{k!r}: {s}" for k, s in zip(aux, kids, strict=True))
            + "})"
        )
    if t is collections.defaultdict:
        items = ", ".join(f"{k!r}: {s}" for k, s in zip(aux[1], kids, strict=True))
        return f"defaultdict({aux[0]!r}, {{{items}}})"
    if not _node_kind(t).registered and issubclass(t, tuple):  # namedtuple
        fields = ", ".join(f"{f}={s}" for f, s in zip(t._fields, kids, strict=True))
        return f"{t.__name__}({fields})"
    return f"CustomNode({t.__name__}[{aux!r}], [{', '.join(kids)}])"


# --------------------------------------------------------------------------------------------
# Flatten and unflatten


def _flatten_node(tree: PyTree, leaves: list[Any]) -> tuple | None:
    """Fast path (no ``is_leaf``): append the leaves of ``tree``, return its node."""
    fast = _FAST.get(type(tree))
    if fast is None:
        if type(tree) in _LEAF_TYPES or _classify(type(tree)) is None:
            leaves.append(tree)
            return None
        fast = _FAST[type(tree)]
    return fast(tree, leaves)


def _flatten_general(
    x: Any,
    leaves: list[Any],
    is_leaf: Callable[[Any], bool] | None,
    path: KeyPath,
    paths: list[KeyPath] | None,
) -> tuple | None:
    """Slow path for ``is_leaf`` and key paths (``paths`` is None when not collecting)."""
    if is_leaf is not None and is_leaf(x):
        kind = None
    else:
        kind = _KINDS.get(type(x))
        if kind is None and type(x) not in _LEAF_TYPES:
            kind = _classify(type(x))
    if kind is None:
        leaves.append(x)
        if paths is not None:
            paths.append(path)
        return None
    if paths is None:
        children, aux = kind.flatten(x)
        kids = [_flatten_general(c, leaves, is_leaf, path, None) for c in children]
    else:
        keyed, aux = kind.flatten_with_keys(x)
        kids = [_flatten_general(c, leaves, is_leaf, (*path, k), paths) for k, c in keyed]
    any_node = any(k is not None for k in kids)
    return (type(x), aux, tuple(kids) if any_node else len(kids))


def tree_flatten(
    tree: PyTree, is_leaf: Callable[[Any], bool] | None = None
) -> tuple[list[Any], PyTreeDef]:
    """Split a pytree into its leaves (in a fixed order) and its structure.

    ``is_leaf(x) -> True`` stops the descent at ``x`` and makes it a leaf.
    """
    leaves: list[Any] = []
    if is_leaf is None:
        node = _flatten_node(tree, leaves)
    else:
        node = _flatten_general(tree, leaves, is_leaf, (), None)
    if node is None:
        return leaves, _LEAF_TREEDEF
    return leaves, PyTreeDef(node, len(leaves))


def tree_leaves(tree: PyTree, is_leaf: Callable[[Any], bool] | None = None) -> list[Any]:
    """The leaves of a pytree, in flatten order."""
    leaves: list[Any] = []
    if is_leaf is None:
        _flatten_node(tree, leaves)
    else:
        _flatten_general(tree, leaves, is_leaf, (), None)
    return leaves


def tree_structure(tree: PyTree, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    """The treedef of a pytree (its structure without the leaves)."""
    return tree_flatten(tree, is_leaf)[1]


def _unflatten(node: tuple, it: Iterable[Any]) -> Any:
    t, aux, kids = node
    if kids.__class__ is int:
        if t is dict:
            # zip stops after the last key without taking another leaf; strict= costs 0.1 us
            return dict(zip(aux, it))  # noqa: B905
        if t is tuple:
            return tuple(islice(it, kids))
        children: Iterable[Any] = islice(it, kids)
    else:
        children = [next(it) if k is None else _unflatten(k, it) for k in kids]  # type: ignore[call-overload]
        if t is tuple:
            return tuple(children)
        if t is dict:
            return dict(zip(aux, children))  # noqa: B905
    try:
        build = _BUILD[t]
    except KeyError:  # a namedtuple treedef unpickled before this process saw the type
        build = _node_kind(t).build
    return build(aux, children)


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> PyTree:
    """Rebuild a pytree from its treedef and leaves (the inverse of ``tree_flatten``)."""
    if type(leaves) is not list and type(leaves) is not tuple:
        leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:  # type: ignore[arg-type]
        raise ValueError(
            f"tree_unflatten: the treedef has {treedef.num_leaves} leaves, but "
            f"{len(leaves)} leaves were given. Treedef: {_short(repr(treedef))}"  # type: ignore[arg-type]
        )
    compiled = treedef._compiled
    if compiled is not None:
        return compiled(leaves)  # type: ignore[arg-type]
    node = treedef._node
    if node is None:
        return leaves[0]  # type: ignore[index]
    treedef._uses += 1
    if treedef._uses >= _COMPILE_AFTER:
        treedef._compiled = _compile_unflatten(node)
    return _unflatten(node, iter(leaves))


# A treedef that is unflattened again and again (a jitted function's output structure, kept in
# its cache) gets a generated function that builds the whole tree in one expression, e.g.
# ``lambda l: {'a': (l[0], l[1]), 'b': l[2]}``. Measured for 100 leaves: 2.2 us instead of 6 us
# (dict of dicts) and 2.6 us instead of 25 us (list of 25 tuples of an array and a dict), for a
# one-off compile of about 0.5 ms, hence the threshold. Very deep or large trees keep the
# interpreter.
_COMPILE_AFTER = 32
_COMPILE_MAX_DEPTH = 50  # well below the parser's nesting limit
_COMPILE_MAX_NODES = 5_000
_LITERAL_TYPES = (str, int, bool, _NoneType)  # types whose repr is a literal of the same type


def _constant(env: dict[str, Any], value: Any) -> str:
    """``value`` in generated source: its literal, or a name bound to it in ``env``."""
    if type(value) in _LITERAL_TYPES:
        return repr(value)
    name = f"_c{len(env)}"
    env[name] = value
    return name


def _compile_unflatten(node: tuple) -> Callable[[Sequence[Any]], Any]:
    if _count_nodes(node) > _COMPILE_MAX_NODES:
        return functools.partial(_unflatten_seq, node)
    env: dict[str, Any] = {}
    n_leaves = 0

    const = functools.partial(_constant, env)

    def expr(node: tuple | None, depth: int) -> str:
        nonlocal n_leaves
        if node is None:
            n_leaves += 1
            return f"l[{n_leaves - 1}]"
        if depth > _COMPILE_MAX_DEPTH:
            raise RecursionError
        t, aux, _ = node
        parts = [expr(k, depth + 1) for k in _kids_list(node)]
        if t is dict:
            return (
                "{" + ", ".join(f"{const(k)}: {p}" for k, p in zip(aux, parts, strict=True)) + "}"
            )
        if t is list:
            return "[" + ", ".join(parts) + "]"
        items = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        if t is tuple:
            return items
        if t is _NoneType:
            return "None"
        build = _BUILD.get(t) or _node_kind(t).build
        return f"{const(build)}({const(aux)}, {items})"

    try:
        src = f"def unflatten(l):\n    return {expr(node, 0)}\n"
    except RecursionError:
        return functools.partial(_unflatten_seq, node)
    exec(compile(src, "<funcgrad.tree_util unflatten>", "exec"), env)
    fn = env["unflatten"]
    fn.__source__ = src
    return fn


def _unflatten_seq(node: tuple, leaves: Sequence[Any]) -> Any:
    return _unflatten(node, iter(leaves))


def unflattener(treedef: PyTreeDef) -> Callable[[Sequence[Any]], Any]:
    """A fast ``leaves -> tree`` for ``treedef``, compiled now rather than after a few uses.

    For callers that unflatten one structure many times and already know the leaf count is
    right (jit's output trees), so the checks of ``tree_unflatten`` are skipped.
    """
    node = treedef._node
    if node is None:
        return operator.itemgetter(0)
    if treedef._compiled is None:
        treedef._compiled = _compile_unflatten(node)
    return treedef._compiled


# A treedef that one caller flattens again and again (the input structure of a jitted
# function) gets a generated function that takes a tree apart *assuming* that structure, and
# checks it on the way: each container's exact type and length, and each dict key (a dict of
# the right length in which every expected key is found has exactly those keys). For a dict
# of 50 dicts of 2 arrays it takes about a fifth of the time of `tree_flatten`, and builds no
# treedef to hash and compare. What it cannot check cheaply is that each leaf position holds
# a leaf; the caller checks the leaves' types (jit accepts arrays and scalars only).
# Dicts whose keys do not sort (flattened in insertion order, which the generated lookups do
# not see), OrderedDict, defaultdict and custom nodes get no getter.
class _NoGetter(Exception):
    pass


def leaves_getter(treedef: PyTreeDef) -> Callable[[Any], list[Any] | None] | None:
    """``tree -> leaves`` if ``tree`` has ``treedef``'s structure, else None; see above.

    The returned leaves are those of ``tree_flatten(tree)`` and its treedef equals
    ``treedef`` provided every returned leaf is of a leaf type, which the caller must check.
    Returns None (no getter) for structures it does not handle or that are very large.
    """
    node = treedef._node
    if node is None:
        return lambda tree: [tree]
    if _count_nodes(node) > _COMPILE_MAX_NODES:
        return None
    env: dict[str, Any] = {}
    lines: list[str] = []
    leaves: list[str] = []
    names = iter(range(1 << 30))

    const = functools.partial(_constant, env)

    def visit(node: tuple | None, var: str) -> None:
        if node is None:
            leaves.append(var)
            return
        t, aux, _ = node
        kids = _kids_list(node)
        n = len(kids)
        if t is _NoneType:
            lines.append(f"if {var} is not None: return None")
            return
        kind = _KINDS.get(t)
        is_seq = t is tuple or t is list
        if is_seq or (kind is not None and not kind.registered and issubclass(t, tuple)):
            lines.append(f"if type({var}) is not {const(t)} or len({var}) != {n}: return None")
            if n:
                kid_vars = [f"v{next(names)}" for _ in kids]
                lines.append(f"{', '.join(kid_vars)}, = {var}")
                for k, kv in zip(kids, kid_vars, strict=True):
                    visit(k, kv)
            return
        if t is not dict:
            raise _NoGetter
        try:
            in_order = list(aux) == sorted(aux)
        except TypeError:
            in_order = False
        if not in_order:
            raise _NoGetter
        lines.append(f"if type({var}) is not {const(dict)} or len({var}) != {n}: return None")
        for key, k in zip(aux, kids, strict=True):
            if k is None:
                leaves.append(f"{var}[{const(key)}]")  # read in the final list, in order
            else:
                kv = f"v{next(names)}"
                lines.append(f"{kv} = {var}[{const(key)}]")
                visit(k, kv)

    try:
        visit(node, "tree")
    except _NoGetter:
        return None
    body = "".join(f"        {line}\n" for line in lines)
    src = (
        f"def leaves(tree):\n    try:\n{body}        return [{', '.join(leaves)}]\n"
        "    except KeyError:\n        return None\n"
    )
    exec(compile(src, "<funcgrad.tree_util leaves_getter>", "exec"), env)
    fn = env["leaves"]
    fn.__source__ = src
    return fn


def tree_map(
    f: Callable[..., Any],
    tree: PyTree,
    *rest: PyTree,
    is_leaf: Callable[[Any], bool] | None = None,
) -> PyTree:
    """Apply ``f`` leafwise: ``f(leaf, *matching leaves of rest)``, keeping ``tree``'s shape.

    Each tree in ``rest`` must have ``tree``'s structure or have it as a prefix: where ``tree``
    has a leaf, the whole subtree of ``rest`` at that position is passed to ``f``.
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    if not rest:
        out = list(map(f, leaves))
    else:
        many = len(rest) > 1
        others = [
            _leaves_like(treedef, r, "tree_map", f" (in rest[{i}])" if many else "")
            for i, r in enumerate(rest)
        ]
        out = list(map(f, leaves, *others))
    if treedef._node is None:
        return out[0]
    return _unflatten(treedef._node, iter(out))


def _leaves_like(treedef: PyTreeDef, tree: PyTree, what: str, where: str) -> list[Any]:
    """Leaves of ``tree`` matched to ``treedef``'s leaves; structure errors name the path."""
    leaves: list[Any] = []
    node = _flatten_node(tree, leaves)
    if node == treedef._node:
        return leaves
    return _flatten_up_to(treedef._node, tree, what, where)


# --------------------------------------------------------------------------------------------
# Prefix flattening and structure-mismatch errors


class _Mismatch(Exception):
    """Raised inside `_up_to`; each frame adds its key on the way out to build the path."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(expected, got)
        self.expected = expected
        self.got = got
        self.keys: list[Any] = []


def _flatten_up_to(node: tuple | None, tree: PyTree, what: str, where: str) -> list[Any]:
    out: list[Any] = []
    try:
        _up_to(node, tree, out)
    except _Mismatch as e:
        path = keystr(tuple(reversed(e.keys))) or "the root"
        raise ValueError(
            f"{what}: structure mismatch at {path}{where}: expected {e.expected}, got {e.got}"
        ) from None
    return out


def _up_to(node: tuple | None, x: Any, out: list[Any]) -> None:
    if node is None:
        out.append(x)
        return
    t, aux, kids = node
    n = kids if kids.__class__ is int else len(kids)
    if type(x) is not t:
        raise _Mismatch(_describe_node(t, aux, n), _describe(x))
    if t is dict or t is collections.OrderedDict or t is collections.defaultdict:
        keys = aux[1] if t is collections.defaultdict else aux
        if len(x) != len(keys) or any(k not in x for k in keys):
            raise _Mismatch(_describe_node(t, aux, n), _describe(x))
        children = [x[k] for k in keys]
    else:
        got, got_aux = _node_kind(t).flatten(x)
        children = list(got)
        if len(children) != n:
            raise _Mismatch(_describe_node(t, aux, n), _describe(x))
        if _differs(aux, got_aux):
            raise _Mismatch(
                _describe_node(t, aux, n) + f" with aux data {aux!r}",
                _describe_node(t, got_aux, n) + f" with aux data {got_aux!r}",
            )
    if kids.__class__ is int:
        out.extend(children)
        return
    for i, (k, c) in enumerate(zip(kids, children, strict=True)):
        if k is None:
            out.append(c)
            continue
        try:
            _up_to(k, c, out)
        except _Mismatch as e:
            e.keys.append(_child_key(t, aux, i, x))
            raise


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except Exception:  # noqa: BLE001 - e.g. arrays in aux data: fall back to identity
        return a is not b


def _child_key(t: type, aux: Any, i: int, x: Any) -> Any:
    if t is dict or t is collections.OrderedDict:
        return DictKey(aux[i])
    if t is collections.defaultdict:
        return DictKey(aux[1][i])
    if t is tuple or t is list:
        return SequenceKey(i)
    keyed, _ = _node_kind(t).flatten_with_keys(x)
    return list(keyed)[i][0]


def _type_name(t: type) -> str:
    return getattr(t, "__qualname__", repr(t))


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _n_children(n: int) -> str:
    return "1 child" if n == 1 else f"{n} children"


def _short(s: str, limit: int = 200) -> str:
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _describe_node(t: type, aux: Any, n: int) -> str:
    """E.g. 'a tuple of 2 children', "a dict with keys ['a', 'b']", 'None'."""
    if t is _NoneType:
        return "None"
    if t is tuple or t is list:
        return f"a {t.__name__} of {_n_children(n)}"
    if t is dict or t is collections.OrderedDict or t is collections.defaultdict:
        keys = aux[1] if t is collections.defaultdict else aux
        return _a(t.__name__) + f" with keys {_short(repr(list(keys)))}"
    kind = _KINDS.get(t)
    if kind is not None and not kind.registered and issubclass(t, tuple):
        return f"{_a(t.__name__)} namedtuple of {_n_children(n)}"
    return f"{_a(_type_name(t))} node of {_n_children(n)}"


def _describe(x: Any) -> str:
    """Describe an object found where a node was expected."""
    t = type(x)
    kind = _classify(t)
    if kind is None:
        return f"a leaf of type {_type_name(t)}"
    children, aux = kind.flatten(x)
    return _describe_node(t, aux, len(list(children)))


# --------------------------------------------------------------------------------------------
# Key-path variants


def tree_flatten_with_path(
    tree: PyTree, is_leaf: Callable[[Any], bool] | None = None
) -> tuple[list[tuple[KeyPath, Any]], PyTreeDef]:
    """Like ``tree_flatten``, but each leaf comes with its key path (render with ``keystr``)."""
    leaves: list[Any] = []
    paths: list[KeyPath] = []
    node = _flatten_general(tree, leaves, is_leaf, (), paths)
    treedef = _LEAF_TREEDEF if node is None else PyTreeDef(node, len(leaves))
    return list(zip(paths, leaves, strict=True)), treedef


def tree_leaves_with_path(
    tree: PyTree, is_leaf: Callable[[Any], bool] | None = None
) -> list[tuple[KeyPath, Any]]:
    """``(key_path, leaf)`` pairs in flatten order."""
    return tree_flatten_with_path(tree, is_leaf)[0]


def tree_map_with_path(
    f: Callable[..., Any],
    tree: PyTree,
    *rest: PyTree,
    is_leaf: Callable[[Any], bool] | None = None,
) -> PyTree:
    """Like ``tree_map``, but ``f(key_path, leaf, *rest_leaves)`` also gets the leaf's path."""
    pairs, treedef = tree_flatten_with_path(tree, is_leaf)
    many = len(rest) > 1
    others = [
        _leaves_like(treedef, r, "tree_map_with_path", f" (in rest[{i}])" if many else "")
        for i, r in enumerate(rest)
    ]
    out = [f(path, leaf, *xs) for (path, leaf), *xs in zip(pairs, *others, strict=True)]
    return tree_unflatten(treedef, out)


# --------------------------------------------------------------------------------------------
# Further utilities


def treedef_is_leaf(treedef: PyTreeDef) -> bool:
    """True for a single leaf and for ``None`` (one node, no children), as in JAX."""
    return treedef._node is None or (treedef._node[2] == 0)


def treedef_children(treedef: PyTreeDef) -> list[PyTreeDef]:
    """Treedefs of the root's children."""
    return treedef.children()


def all_leaves(iterable: Iterable[Any], is_leaf: Callable[[Any], bool] | None = None) -> bool:
    """True if every element is a leaf (``None`` is not: it is an empty node)."""
    if is_leaf is None:
        return all(_classify(type(x)) is None for x in iterable)
    items = list(iterable)
    leaves = tree_leaves(items, is_leaf)
    return len(leaves) == len(items) and all(a is b for a, b in zip(leaves, items, strict=True))


_NO_INITIALIZER = object()


def tree_reduce(
    function: Callable[[Any, Any], Any],
    tree: PyTree,
    initializer: Any = _NO_INITIALIZER,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """``functools.reduce`` over the leaves of a tree."""
    leaves = tree_leaves(tree, is_leaf)
    if initializer is _NO_INITIALIZER:
        return functools.reduce(function, leaves)
    return functools.reduce(function, leaves, initializer)


def tree_all(tree: PyTree, is_leaf: Callable[[Any], bool] | None = None) -> bool:
    """True if every leaf is truthy."""
    return all(tree_leaves(tree, is_leaf))


def tree_transpose(
    outer_treedef: PyTreeDef, inner_treedef: PyTreeDef | None, pytree_to_transpose: PyTree
) -> PyTree:
    """Turn an outer tree of inner trees into an inner tree of outer trees.

    E.g. a list of ``(x, y)`` pairs into a pair of lists. ``inner_treedef=None`` takes the
    inner structure from the first inner tree.
    """
    inners = _flatten_up_to(outer_treedef._node, pytree_to_transpose, "tree_transpose", "")
    if inner_treedef is None:
        inner_treedef = tree_structure(inners[0]) if inners else _LEAF_TREEDEF
    columns = [
        _flatten_up_to(inner_treedef._node, x, "tree_transpose", f" (in outer leaf {i})")
        for i, x in enumerate(inners)
    ]
    if not columns:
        columns_t: list[Any] = [[] for _ in range(inner_treedef.num_leaves)]
    else:
        columns_t = [list(c) for c in zip(*columns, strict=True)]
    return tree_unflatten(inner_treedef, [tree_unflatten(outer_treedef, c) for c in columns_t])


def broadcast_prefix(
    prefix_tree: PyTree, full_tree: PyTree, is_leaf: Callable[[Any], bool] | None = None
) -> list[Any]:
    """One prefix leaf per leaf of ``full_tree``: each prefix leaf is repeated over the subtree
    it covers. This is how ``vmap``'s ``in_axes`` spreads over the arguments (pass
    ``is_leaf=lambda x: x is None`` so that ``None`` counts as an axis spec)."""
    prefix_leaves, prefix_def = tree_flatten(prefix_tree, is_leaf)
    subtrees = _flatten_up_to(prefix_def._node, full_tree, "broadcast_prefix", "")
    out: list[Any] = []
    for leaf, sub in zip(prefix_leaves, subtrees, strict=True):
        out.extend([leaf] * len(tree_leaves(sub)))
    return out


class _PartialFunc:
    """Holds a ``functools.partial`` as the ``func`` of a `Partial`, so that ``partial``'s
    constructor does not merge its arguments into the pytree's leaves."""

    __slots__ = ("partial",)

    def __init__(self, p: functools.partial) -> None:
        self.partial = p

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.partial(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return type(other) is _PartialFunc and other.partial is self.partial

    def __hash__(self) -> int:
        return id(self.partial)


class Partial(functools.partial):
    """A ``functools.partial`` that is a pytree: the bound arguments are the leaves and the
    function is static, so a closure over arrays can be passed through ``jit`` and ``grad``."""

    def __new__(cls, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Partial:
        if isinstance(func, functools.partial):
            func = _PartialFunc(func)
        return super().__new__(cls, func, *args, **kwargs)


register_pytree_node(
    Partial,
    lambda p: ((p.args, p.keywords), p.func),
    lambda func, children: Partial(func, *children[0], **children[1]),
)
