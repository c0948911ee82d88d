"""Tests for funcgrad.tree_util.

Expected leaves, paths and structures are written by hand or computed by `_ref_flatten`, a small
independent reference flattener defined here; messages are checked for their content.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import pickle
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcgrad import tree_util as tu
from funcgrad.tree_util import (
    DictKey,
    FlattenedIndexKey,
    GetAttrKey,
    SequenceKey,
    keystr,
    tree_flatten,
    tree_flatten_with_path,
    tree_leaves,
    tree_map,
    tree_structure,
    tree_unflatten,
)


class Point(NamedTuple):
    x: Any
    y: Any


Pair = collections.namedtuple("Pair", ["first", "second"])


# --------------------------------------------------------------------------------------------
# An independent reference: leaves in JAX order, and a strict structural equality


def _ref_flatten(x: Any) -> list[Any]:
    if x is None:
        return []
    if type(x) in (dict, collections.defaultdict):
        return [leaf for k in sorted(x) for leaf in _ref_flatten(x[k])]
    if type(x) is collections.OrderedDict:
        return [leaf for v in x.values() for leaf in _ref_flatten(v)]
    if type(x) in (tuple, list) or (isinstance(x, tuple) and hasattr(x, "_fields")):
        return [leaf for v in x for leaf in _ref_flatten(v)]
    return [x]


def _same(a: Any, b: Any) -> bool:
    """Equal values and equal types all the way down (OrderedDicts: equal key order)."""
    if type(a) is not type(b):
        return False
    if type(a) is collections.OrderedDict and list(a) != list(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def _shape(x: Any) -> Any:
    """The tree with every leaf replaced by '*', for comparing structures by hand."""
    if x is None:
        return None
    if isinstance(x, dict):
        return (type(x), sorted((k, _shape(v)) for k, v in x.items()))
    if isinstance(x, tuple | list):
        return (type(x), [_shape(v) for v in x])
    return "*"


leaf_ints = st.integers(-5, 5)


def _trees(leaves: st.SearchStrategy) -> st.SearchStrategy:
    keys = st.sampled_from(["a", "b", "c", "w", "z"])
    return st.recursive(
        leaves | st.none(),
        lambda kids: st.one_of(
            st.lists(kids, max_size=4),
            st.lists(kids, max_size=4).map(tuple),
            st.dictionaries(keys, kids, max_size=4),
            st.builds(Point, kids, kids),
            st.builds(Pair, kids, kids),
        ),
        max_leaves=20,
    )


trees = _trees(leaf_ints)


# --------------------------------------------------------------------------------------------
# Round trips and structures


@given(trees)
def test_round_trip_matches_reference(tree):
    leaves, treedef = tree_flatten(tree)
    assert leaves == _ref_flatten(tree)
    assert treedef.num_leaves == len(leaves)
    assert _same(tree_unflatten(treedef, leaves), tree)
    assert _same(treedef.unflatten(leaves), tree)
    assert tree_leaves(tree) == leaves
    assert tree_structure(tree) == treedef


@given(trees, trees)
def test_treedef_equality_and_hash_follow_structure(a, b):
    da, db = tree_structure(a), tree_structure(b)
    same_shape = _shape(a) == _shape(b) and _same_types(a, b)
    assert (da == db) == same_shape
    if same_shape:
        assert hash(da) == hash(db)


def _same_types(a: Any, b: Any) -> bool:
    if _shape(a) == "*" or _shape(b) == "*":
        return _shape(a) == _shape(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return all(_same_types(u, v) for u, v in zip(a, b, strict=True))
    return True


@given(trees)
def test_compiled_unflatten_agrees(tree):
    leaves, treedef = tree_flatten(tree)
    new_leaves = [f"leaf{i}" for i in range(len(leaves))]
    expected = tree_unflatten(tu.PyTreeDef(treedef._node, treedef.num_leaves), new_leaves)
    for _ in range(tu._COMPILE_AFTER + 2):  # past the threshold the generated code is used
        assert _same(tree_unflatten(treedef, new_leaves), expected)
    assert tree_leaves(expected) == new_leaves


@given(trees)
def test_tree_map_matches_reference(tree):
    out = tree_map(lambda x: x * 10 + 1, tree)
    assert tree_leaves(out) == [x * 10 + 1 for x in _ref_flatten(tree)]
    assert tree_structure(out) == tree_structure(tree)


def test_dict_keys_sorted_and_unflatten_sorted():
    leaves, treedef = tree_flatten({"b": 2, "a": 1, "c": {"z": 4, "y": 3}})
    assert leaves == [1, 2, 3, 4]
    out = treedef.unflatten([10, 20, 30, 40])
    assert list(out) == ["a", "b", "c"] and list(out["c"]) == ["y", "z"]
    assert out == {"a": 10, "b": 20, "c": {"y": 30, "z": 40}}
    assert tree_structure({"a": 0, "b": 0}) == tree_structure({"b": 0, "a": 0})


def test_dict_unsortable_keys_keep_insertion_order():
    d = {1: "one", "a": "A", (2,): "two"}
    leaves, treedef = tree_flatten(d)
    assert leaves == ["one", "A", "two"]
    assert list(treedef.unflatten([1, 2, 3])) == [1, "a", (2,)]


def test_dict_key_types_survive_the_order_cache():
    class Color(enum.Enum):
        RED = "r"

    tree_flatten({"b": 1, "a": 2})  # prime the sort cache with an equal-keys dict of strs
    _, treedef = tree_flatten({1: "x", 0: "y"})
    out = treedef.unflatten(["X", "Y"])
    assert [type(k) for k in out] == [int, int]
    _, treedef = tree_flatten({1.0: "x", 0: "y"})  # equal to (1, 0) as a cache key
    out = treedef.unflatten(["X", "Y"])
    assert list(out) == [0, 1.0] and type(list(out)[1]) is float
    for _ in range(tu._COMPILE_AFTER + 1):
        out = treedef.unflatten(["X", "Y"])
    assert list(out) == [0, 1.0] and type(list(out)[1]) is float
    _, treedef = tree_flatten({Color.RED: 1, "s": 2, True: 3})
    for _ in range(tu._COMPILE_AFTER + 1):
        out = treedef.unflatten([1, 2, 3])
    assert list(out) == [Color.RED, "s", True]


def test_none_is_an_empty_node_not_a_leaf():
    assert tree_leaves(None) == []
    assert tree_leaves([1, None, {"a": None, "b": 2}]) == [1, 2]
    leaves, treedef = tree_flatten(None)
    assert leaves == [] and treedef.num_leaves == 0
    assert tree_unflatten(treedef, []) is None
    assert tree_structure(None) != tree_structure(())
    assert tree_map(lambda x: x + 1, [None, 1]) == [None, 2]
    assert tu.treedef_is_leaf(tree_structure(None))
    assert tu.all_leaves([1, "a", np.zeros(2)]) and not tu.all_leaves([1, None])


def test_single_leaf_and_leaf_types():
    arr = np.arange(3)
    for leaf in (3, 2.5, "s", arr, np.float32(1.0), object()):
        leaves, treedef = tree_flatten(leaf)
        assert leaves[0] is leaf and len(leaves) == 1
        assert tree_unflatten(treedef, ["new"]) == "new"
        assert tu.treedef_is_leaf(treedef)


def test_subclasses_of_containers_are_leaves():
    class MyDict(dict):
        pass

    class MyList(list):
        pass

    d, lst = MyDict(a=1), MyList([1, 2])
    assert tree_leaves([d, lst]) == [d, lst]


def test_ordered_dict_and_defaultdict():
    od = collections.OrderedDict([("b", 1), ("a", 2)])
    leaves, treedef = tree_flatten(od)
    assert leaves == [1, 2]
    out = treedef.unflatten([3, 4])
    assert type(out) is collections.OrderedDict and list(out.items()) == [("b", 3), ("a", 4)]
    assert treedef != tree_structure({"b": 1, "a": 2})

    dd = collections.defaultdict(list, {"b": 1, "a": 2})
    leaves, treedef = tree_flatten(dd)
    assert leaves == [2, 1]
    out = treedef.unflatten([5, 6])
    assert type(out) is collections.defaultdict and out.default_factory is list
    assert dict(out) == {"a": 5, "b": 6}
    assert treedef != tree_structure(collections.defaultdict(dict, {"b": 1, "a": 2}))


def test_namedtuples():
    p = Point(1, (2, 3))
    leaves, treedef = tree_flatten(p)
    assert leaves == [1, 2, 3]
    out = treedef.unflatten([4, 5, 6])
    assert type(out) is Point and out == Point(4, (5, 6))
    assert treedef != tree_structure((1, (2, 3)))
    assert treedef != tree_structure(Pair(1, (2, 3)))


def test_is_leaf():
    tree = {"a": (1, 2), "b": [3, (4, 5)], "c": None}
    leaves, treedef = tree_flatten(tree, is_leaf=lambda x: type(x) is tuple)
    assert leaves == [(1, 2), 3, (4, 5)]
    assert treedef.num_leaves == 3
    assert treedef.unflatten(["A", "B", "C"]) == {"a": "A", "b": ["B", "C"], "c": None}
    assert tree_leaves([None, 1], is_leaf=lambda x: x is None) == [None, 1]
    assert tree_leaves(tree, is_leaf=lambda x: True) == [tree]
    doubled = tree_map(lambda t: t * 2, tree, is_leaf=lambda x: type(x) is tuple)
    assert doubled == {"a": (1, 2, 1, 2), "b": [6, (4, 5, 4, 5)], "c": None}
    # same structure as the fast path when is_leaf never fires
    assert tree_structure(tree, is_leaf=lambda x: False) == tree_structure(tree)


# --------------------------------------------------------------------------------------------
# Treedefs


def test_treedef_equality_hash_and_use_as_key():
    a = tree_structure({"w": [1, 2], "b": None})
    b = tree_structure({"b": None, "w": [np.zeros(2), 3.0]})
    c = tree_structure({"w": (1, 2), "b": None})
    assert a == b and hash(a) == hash(b) and a != c
    assert {a: "cached"}[b] == "cached"
    assert a != "not a treedef"
    assert tree_structure([1, 2]) != tree_structure([1, 2, 3])
    assert tree_structure([1, [2]]) != tree_structure([1, 2])


def test_treedef_repr_children_and_counts():
    treedef = tree_structure({"a": (1, 2), "b": [3], "c": None, "d": Point(4, 5)})
    assert repr(treedef) == "PyTreeDef({'a': (*, *), 'b': [*], 'c': None, 'd': Point(x=*, y=*)})"
    assert repr(tree_structure((1,))) == "PyTreeDef((*,))"
    assert repr(tree_structure(5)) == "PyTreeDef(*)"
    kids = treedef.children()
    assert kids == [
        tree_structure((0, 0)),
        tree_structure([0]),
        tree_structure(None),
        tree_structure(Point(0, 0)),
    ]
    assert [k.num_leaves for k in kids] == [2, 1, 0, 2]
    assert treedef.num_leaves == 5
    assert treedef.num_nodes == 10  # root, tuple, list, None, Point, and 5 leaves
    assert tree_structure([1, 2]).children() == [tree_structure(0)] * 2
    assert treedef.node_data() == (dict, ("a", "b", "c", "d"))


def test_treedef_pickles():
    treedef = tree_structure({"a": Point(1, [2]), "b": None})
    hash(treedef)
    again = pickle.loads(pickle.dumps(treedef))
    assert again == treedef and hash(again) == hash(treedef)
    assert again.unflatten([1, 2]) == {"a": Point(1, [2]), "b": None}


def test_flatten_up_to():
    treedef = tree_structure([0, {"a": 0}])
    assert treedef.flatten_up_to([(1, 2), {"a": [3]}]) == [(1, 2), [3]]
    assert tu.broadcast_prefix((0, None), ((1, 2), [3, 4]), is_leaf=lambda x: x is None) == [
        0,
        0,
        None,
        None,
    ]


# --------------------------------------------------------------------------------------------
# tree_map with several trees


def test_tree_map_multiple_trees():
    a = {"x": 1, "y": (2, 3)}
    b = {"y": (20, 30), "x": 10}
    assert tree_map(lambda u, v: u + v, a, b) == {"x": 11, "y": (22, 33)}
    assert tree_map(lambda u, v, w: u + v + w, a, b, b) == {"x": 21, "y": (42, 63)}


def test_tree_map_prefix_tree():
    # where the first tree has a leaf, the other tree's whole subtree is passed
    out = tree_map(lambda n, sub: (n, sub), [1, 2], [(3, 4), {"k": 5}])
    assert out == [(1, (3, 4)), (2, {"k": 5})]


def test_tree_map_unsortable_keys_match_by_key():
    a = {1: "a", "s": "b"}
    b = {"s": "B", 1: "A"}
    assert tree_map(lambda u, v: u + v, a, b) == {1: "aA", "s": "bB"}


# --------------------------------------------------------------------------------------------
# Error messages


def test_tree_map_mismatch_names_path_and_both_nodes():
    a = {"a": 1, "b": [0, (1, 2)]}
    b = {"a": 1, "b": [0, [1, 2, 3]]}
    with pytest.raises(ValueError) as e:
        tree_map(lambda u, v: u, a, b)
    msg = str(e.value)
    assert msg.startswith("tree_map: structure mismatch at ['b'][1]:")
    assert "expected a tuple of 2 children, got a list of 3 children" in msg


@pytest.mark.parametrize(
    ("a", "b", "path", "expected", "got"),
    [
        ([1, 2], [1, 2, 3], "the root", "a list of 2 children", "a list of 3 children"),
        ((1,), [1], "the root", "a tuple of 1 child", "a list of 1 child"),
        (
            {"p": {"a": 1, "b": 2}},
            {"p": {"a": 1, "c": 2}},
            "['p']",
            "a dict with keys ['a', 'b']",
            "a dict with keys ['a', 'c']",
        ),
        ({"p": [None]}, {"p": [3]}, "['p'][0]", "None", "a leaf of type int"),
        ([(1, 2)], [5], "[0]", "a tuple of 2 children", "a leaf of type int"),
        (
            [Point(1, 2)],
            [(1, 2)],
            "[0]",
            "a Point namedtuple of 2 children",
            "a tuple of 2 children",
        ),
        (
            Point(1, [2]),
            Point(1, [2, 3]),
            ".y",
            "a list of 1 child",
            "a list of 2 children",
        ),
        (
            collections.OrderedDict(a=1),
            {"a": 1},
            "the root",
            "an OrderedDict with keys ['a']",
            "a dict with keys ['a']",
        ),
    ],
)
def test_mismatch_messages(a, b, path, expected, got):
    with pytest.raises(ValueError) as e:
        tree_map(lambda u, v: u, a, b)
    assert str(e.value) == f"tree_map: structure mismatch at {path}: expected {expected}, got {got}"


def test_mismatch_names_which_rest_tree():
    with pytest.raises(ValueError, match=r"at \[1\] \(in rest\[1\]\): expected a tuple"):
        tree_map(lambda *xs: 0, [1, (2,)], [1, (2,)], [1, [2]])


def test_mismatch_in_custom_node_aux_data_and_path():
    @tu.register_pytree_node_class
    class Box:
        def __init__(self, items, tag):
            self.items, self.tag = items, tag

        def tree_flatten(self):
            return self.items, self.tag

        @classmethod
        def tree_unflatten(cls, tag, items):
            return cls(list(items), tag)

    with pytest.raises(ValueError) as e:
        tree_map(lambda u, v: u, [Box([1], "a")], [Box([1], "b")])
    msg = str(e.value)
    assert "at [0]:" in msg
    assert "expected a " in msg and "Box node of 1 child with aux data 'a'" in msg
    assert "got a " in msg and "with aux data 'b'" in msg
    with pytest.raises(ValueError, match=r"at \[0\]\[<flat index 1>\]: expected a tuple"):
        tree_map(lambda u, v: u, [Box([1, (2,)], "a")], [Box([1, [2]], "a")])


def test_unflatten_wrong_leaf_count_names_both_counts():
    treedef = tree_structure({"a": 1, "b": (2, 3)})
    with pytest.raises(ValueError) as e:
        tree_unflatten(treedef, [1, 2])
    msg = str(e.value)
    assert "tree_unflatten" in msg and "3 leaves" in msg and "2 leaves were given" in msg
    assert "{'a': *, 'b': (*, *)}" in msg
    with pytest.raises(ValueError, match="has 3 leaves, but 4"):
        treedef.unflatten([1, 2, 3, 4])


def test_flatten_up_to_error():
    with pytest.raises(ValueError, match=r"flatten_up_to: structure mismatch at \['a'\]"):
        tree_structure({"a": (0, 0)}).flatten_up_to({"a": 1})


def test_duplicate_registration_raises():
    class Node:
        pass

    tu.register_pytree_node(Node, lambda n: ((), None), lambda aux, ch: Node())
    with pytest.raises(ValueError, match="Node is already registered"):
        tu.register_pytree_node(Node, lambda n: ((), None), lambda aux, ch: Node())
    for builtin in (dict, list, tuple, type(None), collections.OrderedDict):
        with pytest.raises(ValueError, match="already registered"):
            tu.register_pytree_node(builtin, lambda n: ((), None), lambda aux, ch: None)


def test_unhashable_aux_data_error():
    @tu.register_dataclass
    @dataclasses.dataclass
    class Cfg:
        w: Any
        opts: Any = dataclasses.field(metadata={"static": True})

    treedef = tree_structure(Cfg(1.0, opts=[1, 2]))
    with pytest.raises(TypeError, match=r"aux data \(\[1, 2\],\) of a .*Cfg node is unhashable"):
        hash(treedef)


def test_register_dataclass_argument_errors():
    class Plain:
        pass

    with pytest.raises(TypeError, match="not a dataclass"):
        tu.register_dataclass(Plain)
    with pytest.raises(TypeError, match="both data_fields and meta_fields"):
        tu.register_dataclass(Plain, data_fields=["a"])

    @dataclasses.dataclass
    class D:
        a: int
        b: int

    with pytest.raises(ValueError, match=r"missing \['b'\], unknown \['c'\]"):
        tu.register_dataclass(D, data_fields=["a"], meta_fields=["c"])


# --------------------------------------------------------------------------------------------
# Custom nodes


class Linear:
    def __init__(self, w, b, name):
        self.w, self.b, self.name = w, b, name

    def __eq__(self, other):
        return type(other) is Linear and (self.w, self.b, self.name) == (
            other.w,
            other.b,
            other.name,
        )


tu.register_pytree_node(
    Linear, lambda m: ((m.w, m.b), m.name), lambda name, ch: Linear(ch[0], ch[1], name)
)


def test_register_pytree_node():
    tree = [Linear(1, (2, 3), "l1"), Linear(4, None, "l2")]
    leaves, treedef = tree_flatten(tree)
    assert leaves == [1, 2, 3, 4]
    assert treedef.unflatten([5, 6, 7, 8]) == [Linear(5, (6, 7), "l1"), Linear(8, None, "l2")]
    assert tree_structure(Linear(0, 0, "l1")) != tree_structure(Linear(0, 0, "other"))
    assert repr(tree_structure(Linear(0, 0, "l1"))) == "PyTreeDef(CustomNode(Linear['l1'], [*, *]))"
    paths = [keystr(p) for p, _ in tree_flatten_with_path(tree)[0]]
    assert paths == [
        "[0][<flat index 0>]",
        "[0][<flat index 1>][0]",
        "[0][<flat index 1>][1]",
        "[1][<flat index 0>]",
    ]


def test_custom_node_flatten_may_return_a_generator():
    class Gen:
        def __init__(self, xs):
            self.xs = xs

    tu.register_pytree_node(Gen, lambda g: ((x for x in g.xs), None), lambda _, ch: Gen(ch))
    leaves, treedef = tree_flatten(Gen([1, [2]]))
    assert leaves == [1, 2]
    assert treedef.unflatten([3, 4]).xs == (3, [4])


def test_register_pytree_node_class():
    @tu.register_pytree_node_class
    class Pair2:
        def __init__(self, a, b):
            self.a, self.b = a, b

        def tree_flatten(self):
            return (self.a, self.b), None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

    leaves, treedef = tree_flatten({"p": Pair2(1, [2, 3])})
    assert leaves == [1, 2, 3]
    out = treedef.unflatten([4, 5, 6])["p"]
    assert type(out) is Pair2 and out.a == 4 and out.b == [5, 6]


def test_register_pytree_with_keys():
    class Named:
        def __init__(self, **kw):
            self.kw = kw

    tu.register_pytree_with_keys(
        Named,
        lambda n: ([(GetAttrKey(k), n.kw[k]) for k in sorted(n.kw)], tuple(sorted(n.kw))),
        lambda keys, ch: Named(**dict(zip(keys, ch, strict=True))),
    )
    pairs, treedef = tree_flatten_with_path([Named(b=2, a=(1,))])
    assert [(keystr(p), v) for p, v in pairs] == [("[0].a[0]", 1), ("[0].b", 2)]
    assert tree_leaves(Named(b=2, a=(1,))) == [1, 2]
    assert treedef.unflatten([7, 8])[0].kw == {"a": (7,), "b": 8}


def test_register_dataclass_decorator_with_static_fields():
    @tu.register_dataclass
    @dataclasses.dataclass(frozen=True)
    class Layer:
        w: Any
        b: Any
        act: str = dataclasses.field(default="relu", metadata={"static": True})

    layer = Layer(w=np.ones(2), b=0.5, act="tanh")
    leaves, treedef = tree_flatten(layer)
    assert len(leaves) == 2 and leaves[0] is layer.w and leaves[1] == 0.5
    out = treedef.unflatten([1, 2])
    assert out == Layer(1, 2, "tanh")
    assert tree_structure(Layer(0, 0, "relu")) != tree_structure(Layer(0, 0, "tanh"))
    assert hash(tree_structure(Layer(0, 0))) == hash(tree_structure(Layer(1, 2)))
    assert tree_map(lambda x: x * 2, Layer(1, 2, "tanh")) == Layer(2, 4, "tanh")
    pairs = tree_flatten_with_path({"l": layer})[0]
    assert [keystr(p) for p, _ in pairs] == ["['l'].w", "['l'].b"]
    with pytest.raises(ValueError, match="already registered"):
        tu.register_dataclass(Layer)


def test_register_dataclass_explicit_fields():
    class Opt:  # not a dataclass: fields must be named
        def __init__(self, lr, state):
            self.lr, self.state = lr, state

    assert tu.register_dataclass(Opt, data_fields=["state"], meta_fields=["lr"]) is Opt
    leaves, treedef = tree_flatten(Opt(0.1, {"m": 1, "v": 2}))
    assert leaves == [1, 2]
    out = treedef.unflatten([3, 4])
    assert out.lr == 0.1 and out.state == {"m": 3, "v": 4}

    @functools.partial(tu.register_dataclass, data_fields=["x"], meta_fields=[])
    @dataclasses.dataclass
    class WithDerived:
        x: Any
        n: int = dataclasses.field(init=False, default=0)

    assert tree_leaves(WithDerived(5)) == [5]


def test_partial_is_a_pytree():
    def f(a, b, *, c):
        return a + b + c

    p = tu.Partial(f, 1, c=10)
    assert p(2) == 13
    leaves, treedef = tree_flatten(p)
    assert leaves == [1, 10]
    q = treedef.unflatten([2, 20])
    assert isinstance(q, tu.Partial) and q(3) == 25
    nested = tu.Partial(tu.Partial(f, 1), 2)
    assert tree_leaves(nested) == [2] and nested(c=3) == 6
    assert tree_map(lambda x: x * 2, nested)(c=3) == 8  # 1 + 2 * 2 + 3: the inner 1 is static
    assert tree_structure(tu.Partial(f, 1)) == tree_structure(tu.Partial(f, 2))


# --------------------------------------------------------------------------------------------
# Key paths


def test_key_classes_str_and_keystr():
    assert str(DictKey("a")) == "['a']" and str(DictKey(1)) == "[1]"
    assert str(SequenceKey(0)) == "[0]"
    assert str(GetAttrKey("w")) == ".w"
    assert str(FlattenedIndexKey(2)) == "[<flat index 2>]"
    path = (DictKey("params"), SequenceKey(0), GetAttrKey("w"))
    assert keystr(path) == "['params'][0].w"
    assert keystr(path, simple=True, separator="/") == "params/0/w"
    assert DictKey("a") == DictKey("a") and hash(SequenceKey(1)) == hash(SequenceKey(1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        DictKey("a").key = "b"  # type: ignore[misc]


def test_flatten_with_path():
    tree = {"params": [Point(1, 2), None, {"b": 3}], "step": 4}
    pairs, treedef = tree_flatten_with_path(tree)
    assert pairs == [
        ((DictKey("params"), SequenceKey(0), GetAttrKey("x")), 1),
        ((DictKey("params"), SequenceKey(0), GetAttrKey("y")), 2),
        ((DictKey("params"), SequenceKey(2), DictKey("b")), 3),
        ((DictKey("step"),), 4),
    ]
    assert treedef == tree_structure(tree)
    assert tu.tree_leaves_with_path(tree) == pairs
    assert tree_flatten_with_path(7)[0] == [((), 7)]
    od = collections.OrderedDict([("z", 1), ("a", 2)])
    assert [keystr(p) for p, _ in tree_flatten_with_path(od)[0]] == ["['z']", "['a']"]


def test_flatten_with_path_is_leaf():
    pairs, _ = tree_flatten_with_path({"a": (1, 2), "b": 3}, is_leaf=lambda x: type(x) is tuple)
    assert pairs == [((DictKey("a"),), (1, 2)), ((DictKey("b"),), 3)]


def test_tree_map_with_path():
    tree = {"w": [1, 2], "b": 3}
    out = tu.tree_map_with_path(lambda p, x: f"{keystr(p)}={x}", tree)
    assert out == {"w": ["['w'][0]=1", "['w'][1]=2"], "b": "['b']=3"}
    out = tu.tree_map_with_path(lambda p, x, y: x + y, tree, {"w": [10, 20], "b": 30})
    assert out == {"w": [11, 22], "b": 33}
    with pytest.raises(ValueError, match=r"tree_map_with_path: structure mismatch at \['w'\]"):
        tu.tree_map_with_path(lambda p, x, y: x, tree, {"w": (1, 2), "b": 3})


# --------------------------------------------------------------------------------------------
# Other utilities


def test_tree_transpose_reduce_all():
    outer = tree_structure([0, 0, 0])
    inner = tree_structure((0, 0))
    tree = [(1, 2), (3, 4), (5, 6)]
    assert tu.tree_transpose(outer, inner, tree) == ([1, 3, 5], [2, 4, 6])
    assert tu.tree_transpose(outer, None, tree) == ([1, 3, 5], [2, 4, 6])
    assert tu.tree_reduce(lambda a, b: a + b, {"a": 1, "b": [2, 3]}) == 6
    assert tu.tree_reduce(lambda a, b: a + b, [], 10) == 10
    assert tu.tree_all([True, {"a": 1}]) and not tu.tree_all([True, (0,)])
    assert tu.treedef_children(tree_structure((1, [2]))) == [tree_structure(0), tree_structure([0])]


def test_new_leaf_type_seen_first_inside_a_container():
    class Fresh:
        pass

    a, b = Fresh(), Fresh()
    # the first flatten classifies Fresh; both must give the same canonical treedef
    first = tree_structure({"x": a, "y": b})
    second = tree_structure({"x": b, "y": a})
    assert first == second and hash(first) == hash(second)


def test_registering_a_type_already_seen_as_a_leaf():
    class Late:
        def __init__(self, v):
            self.v = v

    assert tree_leaves([Late(1)])[0].v == 1  # a leaf for now
    tu.register_pytree_node(Late, lambda x: ((x.v,), None), lambda _, ch: Late(*ch))
    assert tree_leaves([Late(1)]) == [1]


def test_deep_tree_falls_back_from_compiled_unflatten():
    deep: Any = 0
    for _ in range(tu._COMPILE_MAX_DEPTH + 10):
        deep = [deep]
    leaves, treedef = tree_flatten(deep)
    for _ in range(tu._COMPILE_AFTER + 2):
        assert tree_unflatten(treedef, [1]) == tree_map(lambda x: 1, deep)


@given(trees)
def test_leaves_and_paths_agree_with_jax(tree):
    jtu = pytest.importorskip("jax.tree_util")  # an external oracle, when installed
    assert tree_leaves(tree) == jtu.tree_leaves(tree)
    ours = [(keystr(p), x) for p, x in tree_flatten_with_path(tree)[0]]
    theirs = [(jtu.keystr(p), x) for p, x in jtu.tree_flatten_with_path(tree)[0]]
    assert ours == theirs
    assert tree_structure(tree).num_nodes == jtu.tree_structure(tree).num_nodes
