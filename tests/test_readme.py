"""The README and docs/ cannot drift: their experiment commands validate, the config table lists every key."""
import json
import re
from pathlib import Path

import pytest

from funcs import cli, config, rules

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in sorted((REPO / "docs").glob("*.md")))


@pytest.mark.parametrize("rule,path", sorted(set(re.findall(r"python -m (\w+)\.main --json_path (\S+?)[`\s]", DOCS))))
def test_readme_command_names_a_valid_config_for_its_entry_point(rule, path, capsys):
    assert cli.main(rules.get(rule), ["--json_path", str(REPO / path), "--dry-run"]) == 0
    assert '"action"' in capsys.readouterr().out


def test_readme_lists_every_experiment_folder():
    folders = {str(p.parent.relative_to(REPO / "configFile")) for p in (REPO / "configFile").rglob("config.json")}
    listed = set(re.findall(r"--json_path \./configFile/(\S+?)`", DOCS))
    assert folders <= listed


def test_committed_config_key_table_is_the_one_the_schema_prints():
    """docs/config-keys.md is `python -m funcs.config keys` of the current schema: every key, shared and each
    rule's, with its default and doc."""
    table = (REPO / "docs/config-keys.md").read_text()
    assert table == config.keys_markdown(), "stale: run python -m funcs.config keys > docs/config-keys.md"
    for owner, name, meta in config.schema():
        assert f"| `{name}` | `{json.dumps(meta['default'])}` | {meta['doc']} |" in table


def test_readme_stays_a_newcomer_s_page():
    """At most 12 KB; the rest lives in docs/, each page linked from it."""
    assert len(README.encode()) <= 12 * 1024
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in README, page.name
