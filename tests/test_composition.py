"""The hub as a subgraph: Apollo's composition library (npm @apollo/composition, run with node) composes it with
a second subgraph that extends `Member` and pages with its own `PageInfo`, as a coalition's gateway would.

`.ci/run` installs the package into .ci/node and sets HUB_REQUIRE_COMPOSITION=1, which turns the skip into a
failure there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hub.config import Settings
from hub.schema import build_schema
from tests.conftest import ROOT

MODULES = Path(os.environ.get("HUB_COMPOSITION_NODE_MODULES", ROOT / ".ci" / "node" / "node_modules"))
NODE = shutil.which("node")
_missing = NODE is None or not (MODULES / "@apollo" / "composition").is_dir()
if _missing and os.environ.get("HUB_REQUIRE_COMPOSITION") == "1":
    raise RuntimeError(f"HUB_REQUIRE_COMPOSITION=1 but no node or no @apollo/composition in {MODULES}")
pytestmark = pytest.mark.skipif(_missing, reason=f"no node or @apollo/composition in {MODULES} (.ci/run installs it)")

# A health-tips service of the coalition: it adds a field to the hub's Member and pages like the hub does.
TIPS = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", "@shareable"])

type Member @key(fields: "id") {
  id: ID!
  healthTips(first: Int = 10, after: String): HealthTipConnection!
}

type HealthTipConnection {
  edges: [HealthTipEdge!]!
  pageInfo: PageInfo!
}

type HealthTipEdge {
  cursor: String!
  node: HealthTip!
}

type HealthTip {
  id: ID!
  text: String!
}

type PageInfo @shareable {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

type Query {
  tip(id: ID!): HealthTip
}
"""


def compose(*subgraphs: tuple[str, str]) -> dict[str, object]:
    done = subprocess.run(  # noqa: S603
        [str(NODE), str(ROOT / "tests" / "compose.cjs")],
        input=json.dumps([{"name": name, "sdl": sdl} for name, sdl in subgraphs]),
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(MODULES)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_hub_composes_with_a_subgraph_that_extends_member() -> None:
    hub = build_schema(Settings()).as_str()
    found = compose(("hub", hub), ("tips", TIPS))
    assert found == {"ok": True, "errors": []}, found


def test_composition_catches_what_it_should() -> None:
    """The check can fail: a PageInfo the hub did not mark shareable does not compose."""
    hub = build_schema(Settings()).as_str().replace("type PageInfo @shareable", "type PageInfo")
    found = compose(("hub", hub), ("tips", TIPS))
    assert found["ok"] is False
    assert "INVALID_FIELD_SHARING" in {e["code"] for e in found["errors"]}  # type: ignore[attr-defined]
