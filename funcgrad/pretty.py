"""The jaxpr printer, in JAX's text form.

``{ lambda ; a:f32[3]. let b:f32[3] = sin a; c:f32[3] = mul b 2.0:f32[] in (c,) }`` when it
fits in ``width`` columns, else one equation per line. Variables are named a, b, ..., z,
ba, bb, ... in order of binding, shared across nested jaxprs as JAX does. Parameters print
sorted as ``prim[k=v ...]``; primitives may add their own rules to ``pp_param_rules``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var

#: Per-parameter-name formatting overrides: ``name -> fn(value, namer) -> str``.
pp_param_rules: dict[str, Callable[[Any, Namer], str]] = {}


def _alphabetic(n: int) -> str:
    s = ""
    while True:
        n, r = divmod(n, 26)
        s = chr(ord("a") + r) + s
        if n == 0:
            return s


class Namer:
    """Gives each Var a short name the first time it is printed."""

    def __init__(self) -> None:
        self.names: dict[Var, str] = {}

    def bind(self, v: Var) -> str:
        name = self.names.get(v)
        if name is None:
            name = self.names[v] = _alphabetic(len(self.names))
        return name

    def atom(self, x: Any) -> str:
        if isinstance(x, Literal):
            return f"{_literal_text(x.val)}:{x.aval.str_short()}"
        return self.bind(x)

    def binder(self, v: Var) -> str:
        return f"{self.bind(v)}:{v.aval.str_short()}"


def _literal_text(val: Any) -> str:
    val = np.asarray(val)
    if val.dtype.kind == "b":
        return str(bool(val))
    return str(val[()])


def _param_text(value: Any, namer: Namer, width: int, indent: int) -> str:
    if isinstance(value, (Jaxpr, ClosedJaxpr)):
        jaxpr = value.jaxpr if isinstance(value, ClosedJaxpr) else value
        return _pp_jaxpr(jaxpr, namer, width, indent)
    if (
        isinstance(value, tuple)
        and value
        and all(isinstance(v, (Jaxpr, ClosedJaxpr)) for v in value)
    ):
        inner = [_param_text(v, namer, width, indent + 2) for v in value]
        return "(\n" + "\n".join(" " * (indent + 2) + s for s in inner) + "\n" + " " * indent + ")"
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return repr(value) if not isinstance(value, str) else value


def pp_eqn(eqn: Eqn, namer: Namer | None = None, width: int = 80, indent: int = 0) -> str:
    """``c:f32[3] = mul b 2.0:f32[]``; params go one per line (as JAX prints them) when the
    equation does not fit in ``width`` or a param (a sub-jaxpr) spans lines."""
    namer = namer or Namer()
    ins = " ".join(namer.atom(x) for x in eqn.inputs)
    # Outputs are named before the variables of sub-jaxprs in the params, as in JAX.
    outs = " ".join(namer.binder(v) for v in eqn.outvars)
    lhs = f"{outs} = " if outs else ""
    tail = f" {ins}" if ins else ""
    params = ""
    if eqn.params:
        items = []
        for k in sorted(eqn.params):
            rule = pp_param_rules.get(k)
            v = eqn.params[k]
            text = rule(v, namer) if rule else _param_text(v, namer, width, indent + 2)
            items.append(f"{k}={text}")
        params = "[" + " ".join(items) + "]"
        line = f"{lhs}{eqn.primitive.name}{params}{tail}"
        if "\n" in line or indent + len(line) > width:
            pad = " " * (indent + 2)
            params = "[\n" + "\n".join(pad + item for item in items) + "\n" + " " * indent + "]"
    return f"{lhs}{eqn.primitive.name}{params}{tail}"


def _pp_jaxpr(jaxpr: Jaxpr, namer: Namer, width: int, indent: int) -> str:
    consts = " ".join(namer.binder(v) for v in jaxpr.constvars)
    invars = " ".join(namer.binder(v) for v in jaxpr.invars)
    head = f"{{ lambda {consts}; {invars}. let" if consts else f"{{ lambda ; {invars}. let"
    eqns = [pp_eqn(e, namer, width, indent + 4) for e in jaxpr.eqns]
    outs = ", ".join(namer.atom(x) for x in jaxpr.outvars)
    tail = f"in ({outs}{',' if len(jaxpr.outvars) == 1 else ''}) }}"
    one_line = f"{head} {'; '.join(eqns)} {tail}"
    if indent + len(one_line) <= width and "\n" not in one_line:
        return one_line
    pad = " " * (indent + 4)
    body = "\n".join(pad + e for e in eqns)
    return f"{head}\n{body}\n{' ' * (indent + 2)}{tail}"


def pp_jaxpr(jaxpr: Jaxpr, width: int = 80) -> str:
    """The text form of a jaxpr, exactly as JAX prints it."""
    return _pp_jaxpr(jaxpr, Namer(), width, 0)


# ----------------------------------------------------------------------------------------
# Rich display (Jupyter): a jaxpr as text plus a drawing of its graph, highlighted source,
# parameter tables. Everything optional degrades to plain text: Graphviz's ``dot`` if it is
# installed, else networkx + matplotlib (``pip install funcgrad[notebook]``), else no drawing.


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def _graph(jaxpr: Jaxpr) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Nodes ``(id, label, kind)`` and edges ``(src, dst, label)`` of a jaxpr's top level.

    Kinds: ``"in"`` (arguments and constants), ``"op"`` (equations), ``"out"``, ``"lit"``."""
    namer = Namer()
    nodes: list[tuple[str, str, str]] = []
    edges: list[tuple[str, str, str]] = []
    producer: dict[Var, str] = {}
    for i, v in enumerate([*jaxpr.constvars, *jaxpr.invars]):
        node = f"in{i}"
        nodes.append((node, f"{namer.bind(v)}\n{v.aval.str_short()}", "in"))
        producer[v] = node
    for i, eqn in enumerate(jaxpr.eqns):
        node = f"op{i}"
        outs = ", ".join(namer.bind(v) for v in eqn.outvars)
        nodes.append(
            (node, f"{eqn.primitive.name}\n→ {outs}" if outs else eqn.primitive.name, "op")
        )
        for j, x in enumerate(eqn.inputs):
            if isinstance(x, Literal):
                lit = f"lit{i}_{j}"
                nodes.append((lit, _literal_text(x.val), "lit"))
                edges.append((lit, node, ""))
            elif x in producer:
                edges.append((producer[x], node, x.aval.str_short()))
        for v in eqn.outvars:
            producer[v] = node
    for i, x in enumerate(jaxpr.outvars):
        node = f"out{i}"
        if isinstance(x, Literal):
            nodes.append((node, f"out {i}: {_literal_text(x.val)}", "out"))
            continue
        nodes.append((node, f"out {i}\n{x.aval.str_short()}", "out"))
        if x in producer:
            edges.append((producer[x], node, x.aval.str_short()))
    return nodes, edges


def to_dot(jaxpr: Jaxpr | ClosedJaxpr) -> str:
    """The jaxpr's dataflow graph in Graphviz's DOT language (top to bottom)."""
    jaxpr = jaxpr.jaxpr if isinstance(jaxpr, ClosedJaxpr) else jaxpr
    nodes, edges = _graph(jaxpr)
    style = {
        "in": 'shape=ellipse, style=filled, fillcolor="#dbeafe"',
        "op": 'shape=box, style="rounded,filled", fillcolor="#fef3c7"',
        "out": 'shape=ellipse, style=filled, fillcolor="#dcfce7"',
        "lit": 'shape=plaintext, fontcolor="#6b7280"',
    }
    lines = [
        "digraph jaxpr {",
        '  rankdir=TB; node [fontname="Helvetica", fontsize=11]; '
        'edge [fontname="Helvetica", fontsize=9, color="#6b7280"];',
    ]
    for node, label, kind in nodes:
        text = label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'  {node} [label="{text}", {style[kind]}];')
    for src, dst, label in edges:
        lines.append(f'  {src} -> {dst} [label="{label}"];' if label else f"  {src} -> {dst};")
    lines.append("}")
    return "\n".join(lines)


def _svg_with_dot(dot_source: str) -> str | None:
    import shutil
    import subprocess

    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, "-Tsvg"], input=dot_source.encode(), capture_output=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    svg = done.stdout.decode("utf-8", "replace")
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else None


def _svg_with_networkx(jaxpr: Jaxpr) -> str | None:
    """A layered drawing (networkx's multipartite layout by topological generation) rendered
    to SVG by matplotlib's non-interactive backend; None when either is missing."""
    try:
        import io

        import networkx as nx
        from matplotlib.figure import Figure
    except ImportError:
        return None
    nodes, edges = _graph(jaxpr)
    g = nx.DiGraph()
    for node, label, kind in nodes:
        g.add_node(node, label=label, kind=kind)
    g.add_edges_from((s, d) for s, d, _ in edges)
    for depth, generation in enumerate(nx.topological_generations(g)):
        for node in generation:
            g.nodes[node]["layer"] = depth
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal", scale=1.0)
    pos = {n: (x, -y) for n, (x, y) in pos.items()}  # inputs on top
    depth = 1 + max((d["layer"] for _, d in g.nodes(data=True)), default=0)
    width = 1 + max(
        (sum(1 for _, d in g.nodes(data=True) if d["layer"] == k) for k in range(depth)), default=1
    )
    fig = Figure(figsize=(min(2.0 + 1.6 * width, 14), min(1.0 + 0.9 * depth, 30)))
    ax = fig.add_subplot()
    colors = {"in": "#dbeafe", "op": "#fef3c7", "out": "#dcfce7", "lit": "#ffffff"}
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, edge_color="#6b7280", node_size=1800)
    for node, data in g.nodes(data=True):
        x, y = pos[node]
        ax.text(
            x, y, data["label"], ha="center", va="center", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": colors[data["kind"]], "edgecolor": "#9ca3af"},
        )  # fmt: skip
    ax.set_axis_off()
    ax.margins(0.15)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else None


#: Largest graph (in equations) drawn automatically in a notebook; bigger ones are text only.
MAX_DRAWN_EQNS = 200


def jaxpr_svg(jaxpr: Jaxpr | ClosedJaxpr) -> str | None:
    """An SVG drawing of the jaxpr's graph (Graphviz if installed, else networkx +
    matplotlib), or None if neither is available or the graph is too big to read."""
    jaxpr = jaxpr.jaxpr if isinstance(jaxpr, ClosedJaxpr) else jaxpr
    if len(jaxpr.eqns) > MAX_DRAWN_EQNS:
        return None
    return _svg_with_dot(to_dot(jaxpr)) or _svg_with_networkx(jaxpr)


def jaxpr_html(closed: Jaxpr | ClosedJaxpr) -> str:
    """The jaxpr's text and, when a drawing can be made, its graph side by side."""
    text = str(closed) if isinstance(closed, ClosedJaxpr) else pp_jaxpr(closed)
    pre = f'<pre style="margin:0">{_escape(text)}</pre>'
    svg = jaxpr_svg(closed)
    if svg is None:
        return pre
    return (
        '<div style="display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start">'
        f"<div>{pre}</div><div>{svg}</div></div>"
    )


def source_html(source: str, language: str = "python") -> str:
    """``source`` as HTML, highlighted by pygments when it is installed."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
    except ImportError:
        return f"<pre>{_escape(source)}</pre>"
    formatter = HtmlFormatter(noclasses=True, style="default")
    return highlight(source, get_lexer_by_name(language), formatter)


class ParamTable:
    """A table of a parameter pytree's leaves: path, shape, dtype, element count. Shown as
    text by ``print``/``repr`` and as an HTML table in Jupyter."""

    def __init__(self, params: Any) -> None:
        from funcgrad.tree_util import keystr, tree_flatten_with_path

        leaves, _ = tree_flatten_with_path(params)
        self.rows: list[tuple[str, tuple[int, ...], str, int]] = []
        for path, leaf in leaves:
            a = np.asarray(leaf) if not hasattr(leaf, "shape") else leaf
            shape = tuple(int(d) for d in a.shape)
            self.rows.append((keystr(path) or "(root)", shape, str(a.dtype), int(np.prod(shape))))
        self.total = sum(r[3] for r in self.rows)

    def __str__(self) -> str:
        head = ("path", "shape", "dtype", "count")
        body = [(p, str(s), d, f"{c:,}") for p, s, d, c in self.rows]
        body.append(("total", "", "", f"{self.total:,}"))
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(4)]
        line = lambda r: "  ".join(
            r[i].rjust(widths[i]) if i == 3 else r[i].ljust(widths[i]) for i in range(4)
        ).rstrip()
        rule = "-" * (sum(widths) + 6)
        return "\n".join([line(head), rule, *[line(r) for r in body[:-1]], rule, line(body[-1])])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td><code>{_escape(p)}</code></td><td>{s}</td><td>{d}</td>"
            f'<td style="text-align:right">{c:,}</td></tr>'
            for p, s, d, c in self.rows
        )
        return (
            "<table><thead><tr><th>path</th><th>shape</th><th>dtype</th><th>count</th></tr>"
            f"</thead><tbody>{cells}</tbody><tfoot><tr><th>total</th><td></td><td></td>"
            f'<th style="text-align:right">{self.total:,}</th></tr></tfoot></table>'
        )


def param_table(params: Any) -> ParamTable:
    """A :class:`ParamTable` of ``params`` (display it, or ``print`` it)."""
    return ParamTable(params)
