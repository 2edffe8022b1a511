"""Run every notebook in notebooks/ top to bottom and store its outputs in place.

    .venv/bin/python scripts/execute_notebooks.py [NAME ...]

The notebooks are committed with their outputs so that they read on the project page; CI
runs them again (tests/test_notebooks.py) and checks their numbers.
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"


def main(names: list[str]) -> None:
    paths = [FOLDER / f"{n.removesuffix('.ipynb')}.ipynb" for n in names] or sorted(FOLDER.glob("*.ipynb"))
    for path in paths:
        print(f"running {path.name}", flush=True)
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(FOLDER)}}).execute()  # fmt: skip
        nbformat.write(notebook, path)


if __name__ == "__main__":
    main(sys.argv[1:])
