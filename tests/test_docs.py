"""The docs stay true: the config reference matches the code, the README stays short, and every link resolves."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
README = REPO / "README.md"
README_MAX_LINES = 200

FENCED_CODE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # targets of [text](…), ![alt](…)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def load_config_docs_script():
    spec = importlib.util.spec_from_file_location("make_config_docs", REPO / "scripts" / "make_config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prose(text: str) -> str:
    """Markdown without code, where link syntax is only an example."""
    return INLINE_CODE.sub("", FENCED_CODE.sub("", text))


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in HEADING.findall(FENCED_CODE.sub("", path.read_text(encoding="utf-8"))):
        text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
        found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def test_config_reference_matches_the_code() -> None:
    script = load_config_docs_script()
    current = script.DOC.read_text(encoding="utf-8")
    assert script.render(current) == current, "docs/configuration.md is stale: run python scripts/make_config_docs.py"


def test_config_reference_lists_every_field() -> None:
    import dataclasses

    script = load_config_docs_script()
    text = script.DOC.read_text(encoding="utf-8")
    for _, cls, _ in script.SECTIONS:
        for field in dataclasses.fields(cls):
            assert f"| `{field.name}` |" in text, f"{cls.__name__}.{field.name} missing from docs/configuration.md"


def test_render_replaces_an_edited_table_and_refuses_missing_markers() -> None:
    script = load_config_docs_script()
    current = script.DOC.read_text(encoding="utf-8")
    edited = current.replace("| `steps` |", "| `stepz` |", 1)
    assert edited != current
    assert script.render(edited) == current
    with pytest.raises(ValueError, match="markers"):
        script.render("# no tables here\n")


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (≤ {README_MAX_LINES})"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading '#{anchor}' in {linked.relative_to(REPO)})")
    assert not broken, f"{path.relative_to(REPO)}: broken links: {', '.join(broken)}"


def test_readme_links_every_doc_and_names_every_command() -> None:
    from fastnst.commands import COMMANDS

    text = README.read_text(encoding="utf-8")
    targets = {link.partition("#")[0] for link in links(README)}
    unlinked = [doc.name for doc in DOCS if f"docs/{doc.name}" not in targets]
    assert not unlinked, f"README.md does not link {', '.join(unlinked)}"
    missing = [name for name in COMMANDS if f"fastnst {name}" not in text]
    assert not missing, f"README.md has no example of: {', '.join(missing)}"


def test_the_kuberay_manifest_in_the_scaling_doc_deploys_fastnst() -> None:
    """As far as it can be tested without Kubernetes: valid YAML, a Serve config Ray accepts, and an import path
    and args that build the application."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install \"fastnst[ray]\")")
    import yaml
    from ray.serve.schema import ServeDeploySchema

    text = (REPO / "docs" / "scaling.md").read_text()
    manifests = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)
                 if "kind: RayService" in block]
    assert len(manifests) == 1
    serve_config = ServeDeploySchema(**yaml.safe_load(manifests[0]["spec"]["serveConfigV2"]))
    (app,) = serve_config.applications
    module, builder = app.import_path.split(":")
    deployment = getattr(importlib.import_module(module), builder)(app.args)._bound_deployment  # noqa: SLF001
    assert deployment._deployment_config.num_replicas == app.args["replicas"]  # noqa: SLF001
    assert deployment.ray_actor_options["num_cpus"] == app.args["replica_cpus"]
