"""Installation of the PromptKD harness's dependencies.

The code runs from the repository root, as in CoOp: ``pip install -e .`` installs the dependencies
only. No top-level package (``clip``, ``datasets``, ``trainers``, ``engine``, ``tools``) is put into
site-packages, so OpenAI's ``clip`` or Hugging Face's ``datasets`` installed in the same environment
are never shadowed. ``train.py`` and ``tests/conftest.py`` put the repository root on ``sys.path``.
"""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def read_requirements(name: str) -> list:
    lines = (HERE / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("#", "-"))]


setup(
    name="promptkd-harness",
    version="0.1.0",
    description="PromptKD (CVPR 2024) and its baselines in a Dassl-compatible prompt-learning harness",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=[],  # deliberately empty: run from the repository root (see the module docstring)
    install_requires=read_requirements("requirements.txt"),
    # onnx: tools/predict.py --export-onnx (onnx writes the model, onnxruntime runs it)
    extras_require={"test": ["pytest>=7", "submitit>=1.4"], "slurm": ["submitit>=1.4"],
                    "onnx": ["onnx>=1.14", "onnxruntime>=1.16"]},
)
