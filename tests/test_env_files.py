"""environment.yml, requirements.txt and pyproject.toml name the same packages at the same pins."""
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_env_files_agree():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    req = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines() if l.strip() and not l.startswith("#")]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert deps == req == pip
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps and "jupyter-book<2" in deps
    assert "opencv-python-headless" in deps and not any(d.startswith("opencv-python==") or d == "opencv-python" for d in deps)
