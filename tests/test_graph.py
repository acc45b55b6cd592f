"""`bpc graph`: the computational graph as DOT text, or as a picture through Graphviz."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed.bp"


def graph(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "bpc", "graph", *map(str, args)], capture_output=True, env=env
    )


def test_dot_text_tells_forward_from_backward_with_shapes_on_edges(tmp_path):
    run = graph(SEED)
    assert run.returncode == 0
    dot = run.stdout.decode()
    assert dot.startswith("digraph bpc {") and 'label="graph seed"' in dot
    assert '"q\\nmatmul"' in dot and "#dbe9f6" in dot  # a forward node
    assert '"dW\\nouter"' in dot and "#fde3cf" in dot  # a backward node
    assert 'label="[n, m]"' in dot  # W's shape on its edges
    assert graph(SEED, "-o", tmp_path / "seed.dot").returncode == 0
    assert (tmp_path / "seed.dot").read_text() == dot


def test_pictures_through_graphviz_or_a_clear_message(tmp_path):
    target = tmp_path / "seed.svg"
    if shutil.which("dot"):
        run = graph(SEED, "-o", target)
        assert run.returncode == 0, run.stderr
        assert target.read_text().lstrip().startswith(("<?xml", "<svg"))
    env = dict(os.environ, PATH=str(tmp_path))  # no Graphviz here
    run = graph(SEED, "-o", tmp_path / "none.png", env=env)
    assert run.returncode == 1
    assert b"needs Graphviz's `dot`" in run.stderr and b"-o graph.dot" in run.stderr
    assert not (tmp_path / "none.png").exists()


def test_bad_output_kind_is_a_usage_error(tmp_path):
    assert graph(SEED, "-o", tmp_path / "x.txt").returncode == 2


RNN = """graph rnn(x: [N, T, D], h0: [N, H], Wx: [D, H], Wh: [H, H], b: [H]) -> hs {
    hs = zeros((N, T, H))
    h = h0
    for t in range(T) {
        h = tanh(x[:, t] @ Wx + h @ Wh + b)
        hs[:, t] = h
    }
}
"""

NESTED = """graph nested(x: [N, T, D], W: [D, D]) -> s {
    s = 0.0
    for i in range(T) {
        v = x[:, i]
        for j in range(2) {
            v = tanh(v @ W + j)
        }
        s = s + sum(v * v)
    }
}
"""


def _dot(tmp_path, source: str) -> str:
    path = tmp_path / "model.bp"
    path.write_text(source)
    run = graph(path)
    assert run.returncode == 0, run.stderr
    return run.stdout.decode()


def _parsed(dot: str):
    """Each node's label and the clusters it is in (their labels, outermost first); the edges
    as (source, target, attributes); every id declared once, every edge between declared ids."""
    nodes, edges, clusters = {}, [], []
    for line in dot.splitlines():
        line = line.strip()
        if line.startswith("subgraph cluster_"):
            clusters.append(None)
        elif line.startswith("label=") and clusters:
            clusters[-1] = re.match(r'label="(.*?)";', line)[1]
        elif line == "}" and clusters:
            clusters.pop()
        elif m := re.fullmatch(r"(n\d+) -> (n\d+) \[(.*)\];", line):
            edges.append(m.groups())
        elif m := re.fullmatch(r'(n\d+) \[label="(.*?)", (.*)\];', line):
            assert m[1] not in nodes, f"{m[1]} declared twice"
            nodes[m[1]] = (m[2], tuple(clusters))
    assert not clusters
    for a, b, _ in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


def test_a_loop_is_a_cluster_with_its_body(tmp_path):
    """The forward loop and its backward are clusters named by their headers, holding the
    body's nodes; edges bind the outer values to the body's params, carry the new h back, and
    take the body's values out to the loop's results: slots, and sums (the nested loops'
    `dW`; the RNN's `dWh` is one product after its loop)."""
    dot = _dot(tmp_path, RNN)
    assert "Region(" not in dot and "Dim(" not in dot and "region=" not in dot
    nodes, edges = _parsed(dot)
    where = {label: inside for label, inside in nodes.values()}
    forward, backward = "for t in range(T)", "for t in reversed(range(T))"
    assert where["h\\ntanh"] == ("graph rnn", forward)
    assert where["dh\\nmatmul"] == ("graph rnn", backward)
    assert where["dWh\\nmatmul"] == ("graph rnn",)
    by_label = {}
    for id_, (label, inside) in nodes.items():
        by_label.setdefault((label, inside), id_)
    h0 = by_label["h0\\n[N, H]", ("graph rnn",)]
    h = by_label["h\\n[N, H]", ("graph rnn", forward)]  # the carried h, a param of the body
    tanh = by_label["h\\ntanh", ("graph rnn", forward)]
    hs = by_label["hs\\nresult(index=1)", ("graph rnn",)]
    pairs = {(a, b): attrs for a, b, attrs in edges}
    assert pairs[h0, h] == 'label="[N, H]"'  # h0 binds the carried h
    assert "next" in pairs[tanh, h] and "dashed" in pairs[tanh, h]  # the new h, carried back
    assert pairs[tanh, hs] == 'label="[N, H], a slot"'  # hs[:, t] = h
    dxwx = by_label["dxwx\\nresult(index=1)", ("graph rnn",)]
    assert 'label="[N, H], a slot"' in [pairs[a, b] for a, b in pairs if b == dxwx]
    assert len([1 for _, inside in nodes.values() if inside[-1:] == (backward,)]) > 6
    nodes, edges = _parsed(_dot(tmp_path, NESTED))
    by_label = {(label, inside): id_ for id_, (label, inside) in nodes.items()}
    inner = ("graph nested", "for i in reversed(range(T))", "for j in reversed(range(2))")
    dW = by_label["dW\\nmatmul", inner]
    total = by_label["dW\\nresult(index=1)", inner[:2]]
    assert {(a, b): attrs for a, b, attrs in edges}[dW, total] == 'label="[D, D], summed"'


def test_nested_loops_are_nested_clusters_with_unique_ids(tmp_path):
    nodes, _ = _parsed(_dot(tmp_path, NESTED))
    inside = {where for _, where in nodes.values()}
    assert ("graph nested", "for i in range(T)", "for j in range(2)") in inside
    assert ("graph nested", "for i in reversed(range(T))", "for j in reversed(range(2))") in inside


def test_a_loop_graph_is_a_picture(tmp_path):
    if not shutil.which("dot"):
        pytest.skip("Graphviz's dot is not installed")
    path = tmp_path / "nested.bp"
    path.write_text(NESTED)
    run = graph(path, "-o", tmp_path / "nested.svg")
    assert run.returncode == 0, run.stderr
    assert "for j in reversed(range(2))" in (tmp_path / "nested.svg").read_text()
