"""The prior and the starter head on real labeled photos: a wrong mapping or preprocessing shows up here."""

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
    macro, prior = map(float, re.search(r"macro average precision: ([0-9.]+) over \d+ tags \(prior alone: ([0-9.]+)\)",
                                        proc.stdout).groups())
    assert prior >= 0.97 and macro >= 0.95, proc.stdout   # the starter head keeps ImageNet-style photos right
    # tag pos neg thr prec recall F1 AP  prior p.prec p.rec source
    per_tag = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(
        r"^(\w+)\s+\d+\s+\d+\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)\s+([0-9.]+)", proc.stdout, re.M)}
    assert per_tag["dog"][0] > 0.98 and per_tag["bird"][0] > 0.98 and per_tag["dog"][1] > 0.98
