"""jit's call path for pytree arguments: the generated leaf getters and the fast lookups must
give exactly what the general path gives (cache hits only for the same structure, shapes,
dtypes, weak types and static values; odd leaves converted; no aliasing). Behaviour only,
never timings.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import errors, tree_util
from funcgrad.interpreters import jit as jit_mod

P = collections.namedtuple("P", ["w", "b"])


@pytest.fixture
def lowerings(monkeypatch):
    """Counts the kernels jit lowers (one per compile)."""
    count = [0]
    real = jit_mod._lower

    def counting(closed, name):
        count[0] += 1
        return real(closed, name)

    monkeypatch.setattr(jit_mod, "_lower", counting)
    return count


def count_general_calls(f, monkeypatch):
    """Counts calls that leave the fast paths for ``JitFunction._call``."""
    count = [0]
    real = f._call

    def counting(args, kwargs):
        count[0] += 1
        return real(args, kwargs)

    monkeypatch.setattr(f, "_call", counting)
    return count


def params(n_layers=50, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return {
        f"layer{i:02d}": {
            "kernel": rng.standard_normal((3, 4)).astype(dtype),
            "bias": rng.standard_normal(4).astype(dtype),
        }
        for i in range(n_layers)
    }


def scale(p, s=0.5):
    return tree_util.tree_map(lambda a: a * s, p)


def assert_tree_close(got, want):
    got_leaves, got_tree = tree_util.tree_flatten(got)
    want_leaves, want_tree = tree_util.tree_flatten(want)
    assert got_tree == want_tree
    for g, w in zip(got_leaves, want_leaves, strict=True):
        assert type(g) is np.ndarray
        assert g.dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=1e-6)


# ----------------------------------------------------------------------------------------
# Cache hits and misses


def test_repeated_pytree_calls_hit_the_fast_path(lowerings, monkeypatch):
    f = fg.jit(scale)
    p = params()
    assert_tree_close(f(p), scale(p))
    general = count_general_calls(f, monkeypatch)
    for seed in range(5):
        q = params(seed=seed)
        assert_tree_close(f(q), scale(q))
    assert lowerings[0] == 1
    assert general[0] == 0


@pytest.mark.parametrize("n_leaves", [1, 10, 100])
def test_pytree_sizes(n_leaves, lowerings):
    p = {f"k{i:03d}": np.full(2, float(i), np.float32) for i in range(n_leaves)}
    f = fg.jit(scale)
    for _ in range(3):
        assert_tree_close(f(p), scale(p))
    assert lowerings[0] == 1


def test_changed_shape_dtype_or_structure_recompiles(lowerings):
    f = fg.jit(scale)
    p = params(3)
    assert_tree_close(f(p), scale(p))
    cases = [
        {**p, "layer00": {"kernel": np.ones((5, 4), np.float32), "bias": p["layer00"]["bias"]}},
        params(3, np.float64),
        {**p, "extra": np.ones(2, np.float32)},  # one more key
        {k: v for k, v in p.items() if k != "layer01"},  # one key fewer
        {**{k: v for k, v in p.items() if k != "layer01"}, "layer09": p["layer01"]},  # renamed
        {**p, "layer00": [p["layer00"]["kernel"], p["layer00"]["bias"]]},  # dict -> list
        {**p, "layer00": (p["layer00"]["kernel"], p["layer00"]["bias"])},  # dict -> tuple
        {**p, "layer00": p["layer00"]["kernel"]},  # node -> leaf
        {**p, "layer00": {"kernel": [p["layer00"]["kernel"]], "bias": p["layer00"]["bias"]}},
    ]
    for i, q in enumerate(cases):
        out = f(q)
        assert_tree_close(out, scale(q))
        assert type(out["layer00"]) is type(q["layer00"])
        assert lowerings[0] == 2 + i
    for q in [p, *cases]:  # every one cached now, in any order
        assert_tree_close(f(q), scale(q))
    assert lowerings[0] == 1 + len(cases)


def test_dict_insertion_order_does_not_matter(lowerings):
    f = fg.jit(lambda d: {k: v + 1 for k, v in d.items()})
    a, b = np.ones(2, np.float32), np.zeros(3, np.float32)
    out1 = f({"a": a, "b": b})
    out2 = f({"b": b, "a": a})
    assert lowerings[0] == 1
    for out in (out1, out2):
        np.testing.assert_array_equal(out["a"], a + 1)
        np.testing.assert_array_equal(out["b"], b + 1)


def test_same_shapes_alternating_dtypes(lowerings):
    f = fg.jit(lambda t: (t[0] * 2, t[1] + 1))
    t32 = (np.ones(3, np.float32), np.ones(2, np.int32))
    t64 = (np.ones(3, np.float64), np.ones(2, np.int64))
    t_mixed = (np.ones(3, np.float32), np.ones(2, np.int64))
    for _ in range(3):
        for t in (t32, t64, t_mixed):
            out = f(t)
            assert out[0].dtype == t[0].dtype and out[1].dtype == t[1].dtype
            np.testing.assert_array_equal(out[0], 2.0)
            np.testing.assert_array_equal(out[1], 2)
    assert lowerings[0] == 3


def test_static_values(lowerings, monkeypatch):
    f = fg.jit(
        lambda p, s, *, mode: scale(p, s if mode == "a" else -s),
        static_argnums=1,
        static_argnames="mode",
    )
    p = params(2)
    assert_tree_close(f(p, 2.0, mode="a"), scale(p, 2.0))
    assert_tree_close(f(p, 2.0, mode="a"), scale(p, 2.0))
    assert lowerings[0] == 1
    assert_tree_close(f(p, 3.0, mode="a"), scale(p, 3.0))
    assert_tree_close(f(p, 3.0, mode="b"), scale(p, -3.0))
    assert lowerings[0] == 3
    general = count_general_calls(f, monkeypatch)
    assert_tree_close(f(p, 3.0, mode="b"), scale(p, -3.0))
    assert_tree_close(f(p, 3, mode="b"), scale(p, -3.0))  # equal static value: same kernel
    assert general[0] == 0
    assert_tree_close(f(p, 2.0, mode="a"), scale(p, 2.0))  # another structure: general path
    assert lowerings[0] == 3
    with pytest.raises(TypeError):
        f(p, 2.0)  # missing keyword: the function's own error


def test_static_argument_that_is_a_pytree_of_arrays_is_rejected_alike():
    f = fg.jit(lambda p, n: scale(p, n), static_argnums=1)
    p = params(1)
    assert_tree_close(f(p, 2), scale(p, 2))
    with pytest.raises(ValueError, match="unhashable"):
        f(p, [2])


# ----------------------------------------------------------------------------------------
# Leaves the kernel cannot take as they are


def test_non_contiguous_read_only_and_byte_swapped_leaves(lowerings):
    f = fg.jit(scale)
    p = params(4)
    f(p)
    base = np.arange(48, dtype=np.float32).reshape(4, 12)
    ro = np.ones(4, np.float32)
    ro.flags.writeable = False
    odd = {
        "layer00": {"kernel": base[:3, ::3], "bias": ro},  # strided, read-only
        "layer01": {"kernel": np.asfortranarray(base[:3, :4]), "bias": base[0, ::3]},
        "layer02": {"kernel": base[:3, :4].astype(">f4"), "bias": p["layer02"]["bias"]},
        "layer03": p["layer03"],
    }
    for _ in range(3):
        assert_tree_close(
            f(odd), scale({k: tree_util.tree_map(np.array, v) for k, v in odd.items()})
        )
        assert_tree_close(f(p), scale(p))
    assert lowerings[0] == 1


def test_non_ndarray_leaves_are_converted():
    class ArrayLike:
        def __array__(self, dtype=None, copy=None):
            return np.arange(3, dtype=np.float32)

    class Sub(np.ndarray):
        pass

    f = fg.jit(lambda t: tree_util.tree_map(lambda a: a * 2, t))
    x = np.ones(3, np.float32)
    for _ in range(2):
        np.testing.assert_array_equal(f((x, x))[0], 2.0)
    out = f(([1.0, 2.0, 3.0], x))  # a list where a leaf was: a new tree
    assert type(out[0]) is list and len(out[0]) == 3
    for _ in range(2):
        out = f(
            (np.array([[1.0, 2.0]]).view(Sub), ArrayLike())
        )  # an ndarray subclass, an array-like
        assert type(out[0]) is np.ndarray and type(out[1]) is np.ndarray
        np.testing.assert_array_equal(out[0], [[2.0, 4.0]])
        np.testing.assert_array_equal(out[1], [0.0, 2.0, 4.0])


def test_python_scalar_leaves_stay_weak(lowerings):
    f = fg.jit(lambda p, lr: tree_util.tree_map(lambda a: a - lr * a, p))
    p = params(2)
    for lr in (0.1, 0.2, 1, True):
        out = f(p, lr)
        assert_tree_close(out, tree_util.tree_map(lambda a, lr=lr: a - np.float32(lr) * a, p))
    n = lowerings[0]
    assert n == 3  # float, int, bool
    out = f(p, np.float64(0.1))  # a strong scalar: promotes to float64, another kernel
    assert out["layer00"]["bias"].dtype == np.float64
    out = f(p, 0.1)
    assert out["layer00"]["bias"].dtype == np.float32
    out = f(p, np.float32(0.5))
    assert out["layer00"]["bias"].dtype == np.float32
    assert lowerings[0] == n + 2
    g = fg.jit(lambda t: tree_util.tree_map(lambda a: a * 2, t))
    out = g({"a": 1.5, "b": [2, np.float32(3)]})
    assert out["a"] == 3.0 and out["b"][0] == 4 and out["b"][1].dtype == np.float32


def test_outputs_never_alias_inputs():
    f = fg.jit(lambda t: t)
    p = params(3)
    for _ in range(3):
        out = f(p)
        for a, b in zip(tree_util.tree_leaves(out), tree_util.tree_leaves(p), strict=True):
            assert a is not b
            assert not np.shares_memory(a, b)
            np.testing.assert_array_equal(a, b)
    g = fg.jit(lambda t: (t["x"], t["x"], t["y"]))
    x = np.ones(3, np.float32)
    out = g({"x": x, "y": x})
    assert not any(np.shares_memory(o, x) for o in out)


def test_leaked_tracer_still_raises():
    leaked = []

    def keep(t):
        leaked.append(t["a"])
        return t["a"]

    fg.make_jaxpr(keep)({"a": np.ones(3, np.float32)})
    f = fg.jit(lambda t: t["a"] * 2)
    f({"a": np.ones(3, np.float32)})
    f({"a": np.ones(3, np.float32)})
    with pytest.raises(errors.UnexpectedTracerError):
        f({"a": leaked[0]})


# ----------------------------------------------------------------------------------------
# Containers


def test_nested_containers(lowerings):
    def fun(t):
        return tree_util.tree_map(lambda a: a * 3, t)

    f = fg.jit(fun)
    x = np.arange(3, dtype=np.float32)
    tree = {
        "a": [(x, None, x + 1), (x + 2,), []],
        "b": P(w=x, b={"z": x, "y": (x,)}),
        "c": None,
        "d": (),
        "e": {},
    }
    for _ in range(3):
        out = f(tree)
        assert_tree_close(out, fun(tree))
        assert type(out["b"]) is P
        assert out["a"][0][1] is None and out["c"] is None and out["e"] == {}
    assert lowerings[0] == 1
    # Same leaves, one container deep inside swapped: each is a new structure.
    variants = [
        {**tree, "a": [(x, None, x + 1), [x + 2], []]},
        {**tree, "a": [(x, x, x + 1), (x + 2,), []]},
        {**tree, "b": (x, {"z": x, "y": (x,)})},
        {**tree, "c": x},
        {**tree, "d": (None,)},
    ]
    for v in variants:
        out = f(v)
        assert_tree_close(out, fun(v))
    assert lowerings[0] == 1 + len(variants)
    assert type(f(variants[0])["a"][1]) is list


def test_custom_nodes_and_unsortable_keys_take_the_general_path(lowerings):
    @tree_util.register_dataclass
    @dataclasses.dataclass
    class Layer:
        w: np.ndarray
        b: np.ndarray

    f = fg.jit(lambda t: tree_util.tree_map(lambda a: a + 1, t))
    x = np.zeros(2, np.float32)
    for _ in range(2):
        out = f({"l": Layer(x, x), 1: x, "s": collections.OrderedDict(b=x, a=x)})
        assert type(out["l"]) is Layer and list(out["s"]) == ["b", "a"]
        np.testing.assert_array_equal(out[1], 1.0)
    assert lowerings[0] == 1
    # Unsortable keys keep insertion order, so insertion order is part of the structure.
    out = f({1: x, "a": x + 1})
    assert list(out) == [1, "a"]
    out = f({"a": x + 1, 1: x})
    assert list(out) == ["a", 1]
    np.testing.assert_array_equal(out["a"], 2.0)


def test_kwargs(lowerings, monkeypatch):
    f = fg.jit(lambda x, p=None, s=1.0: (x * s, scale(p) if p is not None else None))
    x = np.ones(2, np.float32)
    p = params(2)
    want = (x, scale(p))
    for _ in range(2):
        out = f(x, p=p)
        assert_tree_close(out[0], want[0])
        assert_tree_close(out[1], want[1])
    general = count_general_calls(f, monkeypatch)
    f(x, p=p)
    assert general[0] == 0
    assert_tree_close(f(x, p)[1], want[1])  # positionally: another tree
    out = f(x, p=p, s=2.0)
    assert_tree_close(out[0], 2 * x)
    out = f(x, s=2.0)
    assert out[1] is None
    # A positional call shaped like (args, kwargs) must not be mistaken for keywords.
    g = fg.jit(lambda *a, **k: (a, k))
    out = g((x,), {"b": x})
    assert len(out[0]) == 2 and out[1] == {}
    out = g(x, b=x)
    assert len(out[0]) == 1 and set(out[1]) == {"b"}
    out = g((x,), {"b": x})
    assert len(out[0]) == 2 and out[1] == {}


def test_switching_between_structures():
    f = fg.jit(scale)
    trees = [params(1), params(2), (np.ones(2, np.float32),), [np.ones(3)], params(1, np.float64)]
    for _ in range(3):
        for t in trees:
            assert_tree_close(f(t), scale(t))


def test_returns_without_leaves_and_single_leaf():
    f = fg.jit(lambda t: None)
    assert f({"a": np.ones(2)}) is None
    assert f({"a": np.ones(2)}) is None
    g = fg.jit(lambda t: {"only": t["a"] + 1})
    for _ in range(3):
        out = g({"a": np.ones(2)})
        assert list(out) == ["only"]
        np.testing.assert_array_equal(out["only"], 2.0)


def test_under_transformations_the_fast_path_is_not_used():
    f = fg.jit(lambda p: sum(tree_util.tree_leaves(tree_util.tree_map(lambda a: (a * a).sum(), p))))
    p = params(2)
    f(p)
    f(p)
    grads = fg.grad(f)(p)
    assert_tree_close(grads, tree_util.tree_map(lambda a: 2 * a, p))
    batched = fg.vmap(f)(tree_util.tree_map(lambda a: np.stack([a, a]), p))
    np.testing.assert_allclose(batched, [f(p), f(p)], rtol=1e-6)


# ----------------------------------------------------------------------------------------
# tree_util.leaves_getter and unflattener


GETTER_TREES = [
    np.ones(2),
    (),
    {"a": 1, "b": (2, [3, None])},
    [P(1, 2), {"x": {"y": 3}}],
    ((1,), [2], {"k": 3}),
]


@pytest.mark.parametrize("tree", GETTER_TREES)
def test_leaves_getter_matches_tree_flatten(tree):
    leaves, treedef = tree_util.tree_flatten(tree)
    getter = tree_util.leaves_getter(treedef)
    assert getter is not None
    got = getter(tree)
    assert len(got) == len(leaves) and all(a is b for a, b in zip(got, leaves, strict=True))
    rebuilt = tree_util.unflattener(treedef)(leaves)
    assert tree_util.tree_structure(rebuilt) == treedef
    assert all(a is b for a, b in zip(tree_util.tree_leaves(rebuilt), leaves, strict=True))


def test_leaves_getter_rejects_other_structures():
    _, treedef = tree_util.tree_flatten({"a": 1, "b": (2, [3, None])})
    getter = tree_util.leaves_getter(treedef)
    for other in [
        {"a": 1, "b": (2, [3, None]), "c": 4},
        {"a": 1, "c": (2, [3, None])},
        {"a": 1, "b": [2, [3, None]]},
        {"a": 1, "b": (2, (3, None))},
        {"a": 1, "b": (2, [3, 4])},
        {"a": 1, "b": (2, [3])},
        collections.OrderedDict(a=1, b=(2, [3, None])),
        [1, (2, [3, None])],
        None,
    ]:
        assert getter(other) is None, other


def test_leaves_getter_declines_what_it_cannot_check():
    @tree_util.register_pytree_node_class
    class Box:
        def __init__(self, x):
            self.x = x

        def tree_flatten(self):
            return (self.x,), None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

    for tree in [{1: 1, "a": 2}, collections.OrderedDict(a=1), {"a": Box(1)}]:
        assert tree_util.leaves_getter(tree_util.tree_structure(tree)) is None


def test_numpy_scalar_leaves_take_the_shape_keyed_path(lowerings, monkeypatch):
    # A step counter as a NumPy scalar: strong, keyed like a 0-d array; another scalar dtype
    # of the same shape is refused by the kernel and recompiles on the general path.
    f = fg.jit(lambda p, t: tree_util.tree_map(lambda a: a * t, p))
    p = params(3)
    general = count_general_calls(f, monkeypatch)
    out = f(p, np.float32(2.0))
    assert out["layer00"]["bias"].dtype == np.float32
    before = general[0]
    for t in (np.float32(3.0), np.float32(4.0)):
        assert_tree_close(f(p, t), tree_util.tree_map(lambda a, t=t: a * t, p))
    assert general[0] == before  # no trip to the general path
    out = f(p, np.float64(2.0))
    assert out["layer00"]["bias"].dtype == np.float64
    assert_tree_close(out, tree_util.tree_map(lambda a: a.astype(np.float64) * 2.0, p))
    out = f(p, 2.0)  # a Python scalar is weak: float32 again, its own kernel
    assert out["layer00"]["bias"].dtype == np.float32
    assert lowerings[0] == 3
