"""The layers of ksmtop, checked on every module of the package (grimp builds the import graph, as import-linter
does): no hand list of modules to forget, since a module that fits no layer fails the test.

From the ground up:
- ground: knowledge and pure functions (the model, knobs, formats, rows, rates, convergence, diagnosis, the
  Source protocol): no I/O modules, no UI;
- io: collectors (/proc, /sys, perf, pagemap, libvirt, agents) and the lab: no sources, no UI;
- sources: what turns I/O into snapshots and files (sampler, live, remote, replay, recording, export, controls,
  the study, the exporter): no UI;
- ui: the Textual screens, which never import a collector, the lab or a concrete source: they ask the Source;
- entry: command lines, which wire sources to screens.

Only ui and entry may import Textual; Rich also the study (its progress display) and the fleet's command line.
"""

from __future__ import annotations

import grimp
import pytest

LAYERS: dict[str, tuple[str, ...]] = {
    "entry": (
        "ksmtop.__main__",
        "ksmtop.cli",
        "ksmtop.lab.cli",
        "ksmtop.study.cli",
        "ksmtop.exporter.cli",
        "ksmtop.fleet.cli",
    ),
    "ui": ("ksmtop.tui",),
    "sources": (
        "ksmtop.sampler",
        "ksmtop.perfcount",
        "ksmtop.live",
        "ksmtop.remote",
        "ksmtop.replay",
        "ksmtop.recording",
        "ksmtop.export",
        "ksmtop.plot",
        "ksmtop.control",
        "ksmtop.study",
        "ksmtop.exporter",
        "ksmtop.fleet",
        "ksmtop.config",
    ),
    "io": ("ksmtop.collect", "ksmtop.lab"),
    "ground": ("ksmtop",),  # everything else: the package's own modules at the top
}
ORDER = ("ground", "io", "sources", "ui", "entry")
TEXTUAL_ALLOWED = ("ui", "entry")
RICH_ALLOWED = ("ui", "entry", "ksmtop.study")
UI_NEVER_IMPORTS = (
    "ksmtop.collect",
    "ksmtop.lab",
    "ksmtop.sampler",
    "ksmtop.live",
    "ksmtop.remote",
    "ksmtop.replay",
    "ksmtop.control",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("ksmtop", include_external_packages=True, exclude_type_checking_imports=True)


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> str:
    """The most specific layer whose prefix matches (entry before ui before sources, ...)."""
    for layer in ("entry", "ui", "sources", "io"):
        if any(_under(module, prefix) for prefix in LAYERS[layer]):
            return layer
    if module.count(".") == 1 or module == "ksmtop":
        return "ground"
    raise AssertionError(f"{module} fits no layer: add its package to LAYERS in {__file__}")


def own_modules(graph: grimp.ImportGraph) -> list[str]:
    return sorted(m for m in graph.modules if _under(m, "ksmtop"))


def test_every_module_has_a_layer(graph):
    modules = own_modules(graph)
    assert len(modules) > 60  # the graph really holds the package
    for module in modules:
        assert layer_of(module) in ORDER


def test_no_module_imports_a_layer_above_it(graph):
    broken = []
    for module in own_modules(graph):
        rank = ORDER.index(layer_of(module))
        for imported in graph.find_modules_directly_imported_by(module):
            if _under(imported, "ksmtop") and ORDER.index(layer_of(imported)) > rank:
                broken.append(f"{module} ({layer_of(module)}) imports {imported} ({layer_of(imported)})")
    assert broken == []


@pytest.mark.parametrize("ui_package", ["textual", "rich"])
def test_only_the_screens_and_command_lines_import_the_ui_toolkits(graph, ui_package):
    allowed = TEXTUAL_ALLOWED if ui_package == "textual" else RICH_ALLOWED
    broken = []
    for module in own_modules(graph):
        if layer_of(module) in allowed or any(_under(module, prefix) for prefix in allowed if "." in prefix):
            continue
        chain = graph.find_shortest_chain(importer=module, imported=ui_package)
        if chain:
            broken.append(" -> ".join(chain))
    assert broken == []


def test_the_screens_never_reach_a_collector_the_lab_or_a_concrete_source(graph):
    broken = []
    for module in own_modules(graph):
        if layer_of(module) != "ui":
            continue
        for forbidden in UI_NEVER_IMPORTS:
            for target in [m for m in own_modules(graph) if _under(m, forbidden)]:
                chain = graph.find_shortest_chain(importer=module, imported=target)
                if chain:
                    broken.append(" -> ".join(chain))
    assert sorted(set(broken)) == []


def test_the_checks_see_a_forbidden_import(tmp_path, monkeypatch):
    """The checks above could pass on an empty graph: prove they find a chain that is there."""
    package = tmp_path / "layered"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("import layered.high\n")
    (package / "high.py").write_text("import rich\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    small = grimp.build_graph("layered", include_external_packages=True)
    assert small.find_shortest_chain(importer="layered.low", imported="rich") == ("layered.low", "layered.high", "rich")
