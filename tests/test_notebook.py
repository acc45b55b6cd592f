"""`%load_ext bpc` in IPython and Jupyter (bpc.magic): the `%%bpc` cell magic and `%bpc_show`, in
an in-process IPython shell and in notebooks that nbclient runs on a real IPython kernel."""

from __future__ import annotations

import builtins
import importlib.util
import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

pytest.importorskip("IPython", reason="the notebook extra: pip install '.[notebook]'")
nbformat = pytest.importorskip("nbformat", reason="the notebook extra: pip install '.[notebook]'")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra: pip install '.[notebook]'")

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402
from traitlets.config import Config  # noqa: E402

from bpc.magic import CellError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED = "%%bpc\n" + (ROOT / "examples" / "seed.bp").read_text()
TWO_LAYER = (ROOT / "examples" / "two_layer.bp").read_text()
NOTEBOOK = ROOT / "examples" / "notebooks" / "train_two_layer.ipynb"
DOC = ROOT / "docs" / "notebooks.md"
PICTURE = ROOT / "docs" / "img" / "notebook.svg"
PICTURE_SCRIPT = ROOT / "docs" / "img" / "notebook_svg.py"


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """An IPython shell in this process, with its profile in a temporary directory and no
    history (whose thread would outlive it); what it adds to the builtins is taken away after."""
    added = [name for name in ("__IPYTHON__", "display") if not hasattr(builtins, name)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        ip = InteractiveShell.instance(config=Config(HistoryManager={"enabled": False}))
        assert ip.run_cell("%load_ext bpc").success
        yield ip
        InteractiveShell.clear_instance()
    for name in added:
        if hasattr(builtins, name):
            delattr(builtins, name)


def run(shell, text: str):
    """Run a cell; its result, and what it printed and displayed."""
    with capture_output() as captured:
        result = shell.run_cell(text)
    return result, captured


def test_a_cell_binds_each_graphs_functions_and_they_give_the_lecture_notes_gradient(shell):
    result, captured = run(shell, SEED)
    assert result.success, captured.stdout + captured.stderr
    ns = shell.user_ns
    assert {"seed", "seed_forward", "seed_backward", "seed_grad"} <= set(ns)
    rng = np.random.default_rng(0)
    W, x = rng.normal(size=(3, 4)), rng.normal(size=4)
    q = W @ x
    f, grads = ns["seed_grad"](W, x)
    np.testing.assert_allclose(f, q @ q, rtol=1e-12)
    np.testing.assert_allclose(grads.W, 2 * np.outer(q, x), rtol=1e-12)  # df/dW = 2 q x^T
    np.testing.assert_allclose(grads.x, 2 * W.T @ q, rtol=1e-12)  # df/dx = 2 W^T q
    out, cache = ns["seed_forward"](W, x)
    np.testing.assert_allclose(ns["seed_backward"](1.0, cache).W, grads.W, rtol=1e-12)
    assert ns["seed"](W, x) == out
    with pytest.raises(ValueError, match="seed: x has shape"):  # the module's checks are on
        ns["seed"](W, np.ones(5))


def test_hvp_and_jvp_bind_their_products(shell):
    cell = SEED.replace("graph seed", "graph curved").replace("%%bpc", "%%bpc --hvp")
    result, captured = run(shell, cell)
    assert result.success, captured.stdout + captured.stderr
    rng = np.random.default_rng(1)
    W, x, v = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=4)
    hv = shell.user_ns["curved_hvp"](W, x, np.zeros_like(W), v)
    np.testing.assert_allclose(hv.x, 2 * W.T @ W @ v, rtol=1e-12)  # H v in x is 2 W^T W v
    assert "curved_jvp" not in shell.user_ns
    cell = SEED.replace("graph seed", "graph tangent").replace("%%bpc", "%%bpc --jvp")
    result, captured = run(shell, cell)
    assert result.success, captured.stdout + captured.stderr
    f, f_dot = shell.user_ns["tangent_jvp"](W, x, np.zeros_like(W), v)
    np.testing.assert_allclose(f_dot, 2 * (W @ x) @ (W @ v), rtol=1e-12)


def test_a_cell_run_again_keeps_its_module_so_old_gradients_still_pickle(shell):
    run(shell, SEED)
    grads = shell.user_ns["seed_grad"](np.eye(2), np.ones(2))[1]
    result, _ = run(shell, SEED)
    assert result.success
    assert pickle.loads(pickle.dumps(grads)).W.tolist() == grads.W.tolist()


def test_a_source_error_is_the_diagnostic_with_a_caret_and_binds_nothing(shell):
    cell = (
        "%%bpc\n"
        "graph fine(x: [n]) -> y {\n"
        "    y = sum(x)\n"
        "}\n"
        "graph broken(W: [n, m], x: [k]) -> f {\n"
        "    f = sum(W @ x)\n"
        "}\n"
    )
    result, captured = run(shell, cell)
    assert not result.success and isinstance(result.error_in_exec, CellError)
    shown = captured.stdout + captured.stderr
    # the lines as the notebook numbers them: the %%bpc line is line 1
    assert "<cell>:6:13: error: matmul: shapes [n, m] and [k] do not line up" in shown
    assert "\n        f = sum(W @ x)\n                ^" in shown
    assert "Traceback" not in shown and "File " not in shown
    assert "fine" not in shell.user_ns and "broken" not in shell.user_ns


def test_warnings_are_shown_and_the_functions_bound(shell):
    result, captured = run(shell, "%%bpc\ngraph unused(x: [n], z: [n]) -> y {\n    y = sum(x)\n}\n")
    assert result.success
    assert "<cell>:2:" in captured.stderr and "warning" in captured.stderr
    assert "unused_grad" in shell.user_ns


def test_dim_arranges_the_code_for_the_sizes_and_no_checks_drops_the_checks(shell):
    run(shell, SEED.replace("graph seed", "graph tuned").replace("%%bpc", "%%bpc --dim n=64"))
    tuned = sys.modules[shell.user_ns["tuned"].__module__]
    assert "Arranged to be fastest for n = 64" in tuned.__doc__
    run(shell, SEED.replace("graph seed", "graph fast").replace("%%bpc", "%%bpc --no-checks"))
    fast = sys.modules[shell.user_ns["fast"].__module__]
    assert "_fast_check" not in fast.__source__ and "_tuned_check" in tuned.__source__
    cell = "%%bpc --fast-math\ngraph squashed(x: [n]) -> y {\n    y = sum(tanh(x))\n}\n"
    result, captured = run(shell, cell)
    assert result.success, captured.stdout + captured.stderr
    squashed = sys.modules[shell.user_ns["squashed"].__module__]
    assert "_fast_tanh(" in squashed.__source__ and "np.tanh(" not in squashed.__source__
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(shell.user_ns["squashed"](x), np.tanh(x).sum(), atol=1e-15)


@pytest.mark.parametrize(
    "flags, message",
    [
        ("--dim q=3", "%%bpc --dim: flagged has no dimension q; its dimensions are n, m"),
        ("--dim n", "--dim takes NAME=SIZE with a positive size, not 'n'"),
        ("--dim n=0", "--dim takes NAME=SIZE with a positive size, not 'n=0'"),
        ("--emit-tests", "unrecognized arguments: --emit-tests"),
    ],
)
def test_flags_it_cannot_honour_are_usage_errors_and_bind_nothing(shell, flags, message):
    cell = SEED.replace("graph seed", "graph flagged").replace("%%bpc", f"%%bpc {flags}")
    result, captured = run(shell, cell)
    assert not result.success
    assert message in captured.stderr + captured.stdout
    assert "Traceback" not in captured.stderr + captured.stdout
    assert "flagged" not in shell.user_ns


def test_show_displays_the_graphs_code_highlighted(shell, monkeypatch, tmp_path):
    run(shell, SEED + "graph other(x: [n]) -> y {\n    y = sum(x)\n}\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no Graphviz here
    result, captured = run(shell, "%bpc_show seed")
    assert result.success
    (code,) = captured.outputs
    text = code.data["text/plain"]
    assert text.startswith("class SeedGrads(NamedTuple):")
    assert "def seed_backward(dout, cache):" in text and "    dx = W.T @ dq\n" in text
    assert "def other" not in text and "def _remember" not in text  # seed's code alone
    assert '<span class="k">def</span>' in code.data["text/html"]  # Pygments' highlighting
    assert "drawing the graph needs Graphviz's `dot`, which is not installed" in captured.stdout


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_show_draws_the_graph_when_graphviz_is_installed(shell):
    run(shell, SEED)
    result, captured = run(shell, "%bpc_show seed")
    assert result.success, captured.stdout
    code, picture = captured.outputs
    svg = picture.data["image/svg+xml"]
    assert svg.startswith("<svg") and ">graph seed</text>" in svg and ">dW</text>" in svg


def test_show_of_an_unknown_graph_is_a_usage_error(shell):
    result, captured = run(shell, "%bpc_show nowhere")
    assert not result.success
    assert "%bpc_show: no graph named 'nowhere' was compiled" in captured.stderr


def test_import_bpc_does_not_import_ipython():
    code = "import sys, bpc; print('IPython' in sys.modules, callable(bpc.load_ipython_extension))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False", "True"]


# ---------------------------------------------------------------------------------------------
# Real kernels


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    return kernel_on_this_python(tmp_path, monkeypatch)


def kernel_on_this_python(tmp_path: Path, monkeypatch) -> str:
    """The kernel name `python3` resolved to an IPython kernel on this interpreter (whatever
    kernel specs the machine has), with its profile and runtime files in `tmp_path`."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel_json = {"argv": argv, "display_name": "Python 3 (bpc tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel_json))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))  # searched first
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return "python3"


def execute(nb, kernel: str, cwd: Path):
    """Run every cell of `nb` on a real kernel; an error stops the run except in cells tagged
    `raises-exception`."""
    client = nbclient.NotebookClient(
        nb, timeout=60, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}}
    )
    return client.execute()


def printed(cell) -> str:
    """What a cell printed, and the lines of its error."""
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(o.text)
        elif o.output_type == "error":
            out.append("\n".join(o.traceback) + "\n")
    return "".join(out)


FINITE_DIFFERENCES = """\
import numpy as np

rng = np.random.default_rng(0)
N, D, H, C, reg = 5, 4, 6, 3, 0.1
X, y = rng.normal(size=(N, D)), rng.integers(0, C, N)
params = [rng.normal(size=s) for s in [(D, H), (H,), (H, C), (C,)]]
loss, grads = two_layer_grad(X, y, *params, reg)
worst = 0.0
for p, g in zip(params, grads):
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + 1e-6
        up = two_layer(X, y, *params, reg)
        p[i] = old - 1e-6
        down = two_layer(X, y, *params, reg)
        p[i] = old
        worst = max(worst, abs((up - down) / 2e-6 - g[i]))
print(f"{sum(p.size for p in params)} partial derivatives, worst difference {worst:.0e}")
assert worst < 1e-7, worst
"""


def test_a_notebook_on_a_real_kernel(kernel, tmp_path):
    cells = [
        "%load_ext bpc",
        "%%bpc\n" + TWO_LAYER,
        FINITE_DIFFERENCES,
        "%%bpc\ngraph bad(W: [n, m], x: [k]) -> f {\n    f = sum(W @ x)\n}",
        "print(sorted(name for name in dir() if name.startswith(('bad', 'two_layer'))))",
        "%bpc_show two_layer_scores",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.cells[3].metadata["tags"] = ["raises-exception"]
    executed = execute(nb, kernel, tmp_path).cells
    assert "partial derivatives, worst difference" in printed(executed[2])
    error = printed(executed[3])
    assert error.startswith("<cell>:3:13: error: matmul: shapes [n, m] and [k] do not line up")
    assert "\n        f = sum(W @ x)\n                ^\n" in error
    assert "Traceback" not in error
    bound = [f"two_layer{s}" for s in ("", "_backward", "_forward", "_grad", "_scores")]
    bound += [f"two_layer_scores{s}" for s in ("_backward", "_forward")]
    assert printed(executed[4]) == f"{sorted(bound)}\n"
    code, *picture = (o for o in executed[5].outputs if o.output_type == "display_data")
    assert [p.data["image/svg+xml"][:4] for p in picture] == ["<svg"] * bool(shutil.which("dot"))
    assert "def two_layer_scores_backward(dout, cache):" in code.data["text/plain"]
    assert '<span class="k">def</span>' in code.data["text/html"]


# ---------------------------------------------------------------------------------------------
# The notebook of docs/notebooks.md


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """examples/notebooks/train_two_layer.ipynb, run on a real kernel."""
    tmp = tmp_path_factory.mktemp("kernel")
    with pytest.MonkeyPatch.context() as mp:
        name = kernel_on_this_python(tmp, mp)
        return execute(nbformat.read(NOTEBOOK, as_version=4), name, tmp)


def test_the_shipped_notebook_trains_the_net(shipped):
    training = next(c for c in shipped.cells if "two_layer_grad(" in c.source)
    accuracy = float(re.findall(r"held-out accuracy (\S+)", printed(training))[-1])
    assert accuracy > 0.95
    assert shipped.cells[2].source == "%%bpc\n" + TWO_LAYER.rstrip("\n")  # examples/ model


def test_the_docs_page_shows_the_notebooks_cells_and_what_they_print(shipped):
    """docs/notebooks.md: each ```ipython block is the notebook's next code cell; a ``` block
    after it is what that cell printed; a ```python block after it is an excerpt of the code
    the cell displayed."""
    cells = [c for c in shipped.cells if c.cell_type == "code"]
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", DOC.read_text(), re.S | re.M)
    shown = -1
    for lang, body in blocks:
        if lang == "ipython":
            shown += 1
            assert body == cells[shown].source + "\n"
        elif lang == "":
            assert body == printed(cells[shown])
        elif lang == "python":
            displayed = [o.data["text/plain"] for o in cells[shown].outputs if "data" in o]
            assert any(body in text for text in displayed), body
    assert shown == len(cells) - 1


def svg_lines(svg: str) -> list[str]:
    """The lines of text an SVG picture shows, top to bottom."""
    root = ElementTree.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_the_readme_picture_shows_the_notebooks_cells_and_what_they_print(shipped):
    spec = importlib.util.spec_from_file_location("notebook_svg", PICTURE_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cells = script.picture_cells(shipped)
    assert [c.source.split("\n")[0] for c in cells] == ["%%bpc", "lr, reg = 0.2, 1e-4"]
    shown = []
    for c in cells:
        shown += [f"In [{c.execution_count}]:", *c.source.split("\n"), *printed(c).splitlines()]
    assert svg_lines(script.render(cells)) == shown
    assert svg_lines(PICTURE.read_text()) == shown, "run python docs/img/notebook_svg.py"
    readme = (ROOT / "README.md").read_text()
    assert "(docs/img/notebook.svg)" in readme and "(docs/notebooks.md)" in readme
