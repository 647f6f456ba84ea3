"""``fastnst models``: list the models on the search path; ``fastnst models path NAME``: where one lives."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models", help="list the models found, or print where one lives",
        description="List every model found by name: in $FASTNST_MODELS (folders separated by the path "
                    "separator), ./models, the user model folder ($FASTNST_CACHE/models, default "
                    "~/.cache/fastnst/models), then the models shipped with fastnst; the first of a name wins.")
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")
    path = actions.add_parser("path", help="print the folder a model name (or path) resolves to")
    path.add_argument("name", help="model name, folder or .safetensors file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fastnst.model.files import model_search_path
    from fastnst.model.search import list_models, model_path

    if getattr(args, "models_action", None) == "path":
        print(model_path(args.name))
        return 0
    entries = list_models()
    if not entries:
        places = ", ".join(f"{root.folder.absolute()} ({root.origin})" for root in model_search_path())
        print(f"no models found in {places}")
        return 0
    rows = [("NAME", "STYLE", "ONNX", "WHERE")]
    rows += [(entry.name + (" (shadowed)" if entry.shadowed else ""), entry.style or "-",
              ",".join(entry.precisions) or "-", f"{entry.folder} ({entry.origin})") for entry in entries]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0
