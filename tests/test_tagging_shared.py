"""The prior on real labeled photos: a wrong mapping or preprocessing shows up here."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.shared]
REPO = Path(__file__).resolve().parents[1]


def test_prior_reaches_high_average_precision_on_labeled(shared_data, tmp_path):
    labeled = shared_data / "labeled"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "eval_tags.py"), str(labeled / "labels.csv"),
         str(labeled / "images"), "--library", str(tmp_path / "lib")],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    macro = float(re.search(r"macro average precision: ([0-9.]+)", proc.stdout).group(1))
    assert macro >= 0.97, proc.stdout
    per_tag = dict(re.findall(r"^(\w+)\s+\d+\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)\s+prior", proc.stdout, re.M))
    assert float(per_tag["dog"]) > 0.98 and float(per_tag["bird"]) > 0.98
