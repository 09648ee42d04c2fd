"""`ape run models` on the small market's index, read straight from SQLite and PostgreSQL: the
filters of the issue's example, the table and --json, and clear errors."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

from index_helpers import ROOT


@pytest.fixture(scope="module")
def models_command():
    """``invoke(*args)`` -> click Result of ``ape run models`` (it reads only the index: no network)."""
    spec = importlib.util.spec_from_file_location("vm_script_models", ROOT / "scripts" / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda *args: CliRunner().invoke(module.cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=True)


def test_the_issue_example_as_a_table_and_as_json(models_command, indexed, small_market):
    result = models_command("--language", "yue", "--tier", "subscription", "--max-price", "10 mUSD", "--db", indexed)
    assert result.exit_code == 0, result.output
    assert "Mei" in result.output and small_market.key("mei") in result.output and "Minji" not in result.output
    result = models_command("--sort", "cheapest", "--asset", "ETH", "--limit", "2", "--json", "--db", indexed)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert [item["name"] for item in answer["items"]] == ["Ada", None] and answer["next_cursor"]
    result = models_command("--sort", "cheapest", "--asset", "ETH", "--cursor", answer["next_cursor"], "--db", indexed)
    assert result.exit_code == 0 and "Mei" in result.output and "Ada v2" in result.output, result.output
    assert "0.5 ETH" in result.output  # Mei's cheapest ETH offer, the buyout


def test_mistakes_get_one_error_line(models_command, indexed, tmp_path, databases):
    if databases.kind != "sqlite":
        pytest.skip("the messages come from the same code on both databases: checked once")
    for args, words in (
        (["--max-price", "10 dollars", "--db", indexed], "which asset"),
        (["--asset", "DOGE", "--db", indexed], "no asset 'DOGE'"),
        (["--language", "klingon", "--db", indexed], "unknown language"),
        (["--sort", "cheapest", "--db", indexed], "needs an asset"),
        (["--db", f"sqlite:///{tmp_path / 'empty.sqlite'}"], "holds no index"),
        (["--api", "http://127.0.0.1:9"], "does not answer"),
    ):
        result = models_command(*args)
        assert result.exit_code in (1, 2), result.output
        assert words in result.output and "Traceback" not in result.output, result.output
