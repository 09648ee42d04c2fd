"""Helpers of the DApp's browser tests (a module name of its own: conftest modules of several test
folders would shadow each other)."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "app"


def screenshot(page, name: str) -> None:  # noqa: ANN001
    """Save a screenshot for the README (docs/app/<name>.png)."""
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / f"{name}.png"), full_page=False)
