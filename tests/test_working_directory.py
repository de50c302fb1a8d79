"""Issue 18: no code runs from the working directory.

`evaluate.load("accuracy")` runs ./accuracy/accuracy.py when the current directory holds one, before
it looks anywhere else. A user who starts hubcard in a folder that holds such a file (a clone of the
evaluate repo, a homework folder) must not have it executed. The loopback Hub answers the tests'
requests, so evaluate would get as far as loading a script here: the planted one is the first it
would find.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hubcard.rundir import RunDir
from tests.tiny import config_dict, tiny_model, write_config

PLANTED = '''\
from pathlib import Path

Path({marker!r}).write_text("the working directory's accuracy.py ran")
'''


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    return tiny_model("bert", tmp_path_factory.mktemp("tiny-bert") / "model")


def test_a_metric_script_in_the_working_directory_is_never_run(hub_server, bert, tmp_path):
    folder = tmp_path / "homework"
    marker = tmp_path / "planted-script-ran"
    for name in ("accuracy", "f1"):
        (folder / name).mkdir(parents=True)
        (folder / name / f"{name}.py").write_text(PLANTED.format(marker=str(marker)), encoding="utf-8")
    config = write_config(config_dict(bert, "sequence-classification", folder / "run"), folder)

    def hubcard(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hubcard", *arguments], capture_output=True, text=True, cwd=folder)

    trained = hubcard("train-and-publish", str(config))
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert not marker.exists()
    evaluated = hubcard("evaluate", "run")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert not marker.exists()
    assert RunDir(folder / "run").read().evaluation.metric_backend == "scikit-learn"
