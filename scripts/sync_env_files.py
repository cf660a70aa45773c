"""Write requirements.txt and environment.yml from pyproject.toml's dependency list (one source of truth)."""
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parents[1]
deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
(root / "requirements.txt").write_text(
    "# Generated from pyproject.toml by scripts/sync_env_files.py; tests/test_env_files.py keeps them in step.\n"
    + "\n".join(deps) + "\n")
(root / "environment.yml").write_text(
    "name: dfnb\n"
    "# conda users: `conda env create -f environment.yml && conda activate dfnb && pip install --no-deps -e .`\n"
    "# Generated from pyproject.toml by scripts/sync_env_files.py.\n"
    "channels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - pip\n  - nodejs  # npm vendors the book's JavaScript\n  - pip:\n"
    + "".join(f"      - {d}\n" for d in deps))
