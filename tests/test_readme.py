"""The README cannot drift: its experiment commands validate, its config table lists every key."""
import dataclasses
import re
from pathlib import Path

import pytest

from bp.main import RULE as BP
from ep.main import RULE as EP
from funcs import cli
from funcs.config import Config

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("rule,path", sorted(set(re.findall(r"python -m (bp|ep)\.main --json_path (\S+?)`", README))))
def test_readme_command_names_a_valid_config_for_its_entry_point(rule, path, capsys):
    assert cli.main({"bp": BP, "ep": EP}[rule], ["--json_path", str(REPO / path), "--dry-run"]) == 0
    assert '"action"' in capsys.readouterr().out


def test_readme_lists_every_experiment_folder():
    folders = {str(p.parent.relative_to(REPO / "configFile")) for p in (REPO / "configFile").rglob("config.json")}
    listed = set(re.findall(r"--json_path \./configFile/(\S+?)`", README))
    assert folders <= listed


def test_readme_config_table_has_every_key_with_its_doc():
    for f in dataclasses.fields(Config):
        row = re.search(rf"^\| `{f.name}` \| .* \| (.*) \|$", README, re.M)
        assert row is not None, f.name
        assert row.group(1) == f.metadata["doc"]
