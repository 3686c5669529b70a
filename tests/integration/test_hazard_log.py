"""The hazard log's check: a node id that does not exist, or a hazard without a test, fails it;
one that exists is not reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = Path(__file__).resolve().parent.parent.parent / "scripts" / "check-hazard-log"
EXISTING = (
    "tests/integration/test_hazard_log.py"
    "::test_the_check_lists_missing_node_ids_and_untested_hazards"
)


def test_the_check_lists_missing_node_ids_and_untested_hazards(tmp_path: Path) -> None:
    log = tmp_path / "hazard-log.md"
    log.write_text(
        "### H1 Something\n"
        f"- `{EXISTING}`\n"
        "- `tests/integration/test_hazard_log.py::test_no_such_test_exists`\n"
        "- `tests/unit/test_nowhere.py::test_in_a_file_that_does_not_exist`\n"
        "### H2 Another\nNo test named.\n"
    )

    result = subprocess.run(
        [sys.executable, str(CHECK), str(log)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 1
    missing = [line for line in result.stderr.splitlines() if line.startswith("missing: ")]
    assert missing == [
        "missing: tests/integration/test_hazard_log.py::test_no_such_test_exists (named by H1)",
        "missing: tests/unit/test_nowhere.py::test_in_a_file_that_does_not_exist (named by H1)",
    ]
    assert "H2: names no test" in result.stderr
