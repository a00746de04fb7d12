"""The offline deploy-time-constant check: the repo's Bicep passes, and each class of compile error is caught.

The first fixture is infra/modules/ml-wiring.bicep as it was when `azd up` failed with BCP120 (the cluster
and the system topic took `workspace.location` of an `existing` workspace).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.infra.bicep_constants import check_template
from tests.infra.bicep_syntax import Access, BicepSyntaxError, Ident, NonNull, Op, Str, parse_text
from tests.infra.test_bicep import BICEP_FILES, INFRA, ROOT

OLD_ML_WIRING = """
param workspaceName string
param createComputeCluster bool
param computeClusterName string
param systemTopicName string

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: workspaceName
}

resource cluster 'Microsoft.MachineLearningServices/workspaces/computes@2024-10-01' = if (createComputeCluster) {
  parent: workspace
  name: computeClusterName
  location: workspace.location
  identity: {
    type: 'SystemAssigned'
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: workspace.location
  properties: {
    source: workspace.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

output computePrincipalId string = createComputeCluster ? cluster.identity.principalId : ''
"""


def findings(text: str) -> list[tuple[int, str, str]]:
    return [(f.line, f.code, f.message) for f in check_template(parse_text(text, "fixture.bicep"))]


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_the_repos_bicep_uses_only_deploy_time_constants_where_bicep_requires_them(path) -> None:
    from tests.infra.bicep_syntax import parse_file

    assert check_template(parse_file(path)) == []


def test_the_old_ml_wiring_is_flagged_where_the_compiler_failed() -> None:
    found = findings(OLD_ML_WIRING)
    assert [(line, code) for line, code, _ in found] == [(14, "BCP120"), (22, "BCP120"), (29, "BCP318")]
    assert "resource cluster: 'location'" in found[0][2] and "workspace.location" in found[0][2]
    assert "existing resource workspace" in found[0][2]
    assert "resource systemTopic: 'location'" in found[1][2]
    assert "cluster.?identity" in found[2][2]


def test_the_command_line_fails_on_a_finding_and_names_file_and_line(tmp_path) -> None:
    (tmp_path / "old.bicep").write_text(OLD_ML_WIRING)
    script = ROOT / "tests" / "infra" / "bicep_constants.py"
    bad = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert f"{tmp_path / 'old.bicep'}:14: BCP120" in bad.stderr
    good = subprocess.run([sys.executable, str(script), str(INFRA)], capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    assert f"{len(BICEP_FILES)} Bicep files, 0 deploy-time-constant finding(s)" in good.stdout


HEADER = """
param name string
param flag bool
resource ws 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: name
}
resource made 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: 'westeurope'
}
module mod 'mod.bicep' = {
  name: 'mod'
}
"""


@pytest.mark.parametrize(
    ("snippet", "code", "says"),
    [
        # A module output is known only once the module ran.
        ("resource r 'A.B/c@2024-01-01' = {\n  name: mod.outputs.name\n}", "BCP120", "an output of module mod"),
        # Through a variable, and inside an interpolation.
        (
            "var loc = ws.location\nresource r 'A.B/c@2024-01-01' = {\n  name: 'x'\n  location: loc\n}",
            "BCP120",
            "variable loc",
        ),
        ("resource r 'A.B/c@2024-01-01' = {\n  name: 'r-${ws.properties.friendlyName}'\n}", "BCP120", "ws.properties"),
        # scope and parent, and an existing resource's scope.
        (
            "resource r 'A.B/c@2024-01-01' = {\n  name: 'x'\n  scope: resourceGroup(mod.outputs.rg)\n}",
            "BCP120",
            "'scope'",
        ),
        (
            "resource r 'A.B/c@2024-01-01' existing = {\n  name: 'x'\n  scope: resourceGroup(ws.tags.rg)\n}",
            "BCP120",
            "ws.tags",
        ),
        # A new resource's tags, sku, identity, kind must be constants too (not only name and location).
        ("resource r 'A.B/c@2024-01-01' = {\n  name: 'x'\n  tags: made.tags\n}", "BCP120", "'tags'"),
        ("resource r 'A.B/c@2024-01-01' = {\n  name: 'x'\n  sku: {\n    name: ws.sku.name\n  }\n}", "BCP120", "'sku'"),
        # A list*() call runs at deployment time.
        ("resource r 'A.B/c@2024-01-01' = {\n  name: made.listKeys().keys[0].value\n}", "BCP120", "listKeys()"),
        # Conditions and loops.
        ("resource r 'A.B/c@2024-01-01' = if (ws.properties.hbiWorkspace) {\n  name: 'x'\n}", "BCP177", "condition"),
        ("resource r 'A.B/c@2024-01-01' = [for x in mod.outputs.items: {\n  name: x\n}]", "BCP178", "loop"),
        # A module's name and scope.
        ("module m 'm.bicep' = {\n  name: ws.location\n}", "BCP120", "module m: 'name'"),
        # A property of a conditional resource is null when the condition is false.
        (
            "resource c 'A.B/c@2024-01-01' = if (flag) {\n  name: 'c'\n}\noutput o string = c.properties.x",
            "BCP318",
            "c.?properties",
        ),
    ],
)
def test_each_runtime_value_in_a_constant_position_is_flagged(snippet: str, code: str, says: str) -> None:
    found = findings(HEADER + snippet)
    assert found, f"not flagged: {snippet}"
    assert {c for _, c, _ in found} == {code}
    assert any(says in message for _, _, message in found), found


@pytest.mark.parametrize(
    "snippet",
    [
        # id, name, type and apiVersion of any resource are known at the start; parameters and functions too.
        "resource r 'A.B/c@2024-01-01' = {\n  name: guid(ws.id, made.name, ws.type)\n"
        "  location: resourceGroup().location\n}",
        "resource r 'A.B/c@2024-01-01' = {\n  name: 'x'\n  parent: ws\n  location: name\n  scope: made\n}",
        "module m 'm.bicep' = {\n  name: '${mod.name}-2'\n  scope: resourceGroup(name)\n"
        "  params: {\n    a: mod.outputs.a\n    b: ws.location\n  }\n}",
        # Run-time values are fine anywhere else: properties, module params, outputs.
        "resource r 'A.B/c@2024-01-01' = {\n  name: 'x'\n  properties: {\n    source: ws.properties.x\n  }\n}",
        "output o string = ws.location",
        # A string that happens to equal a symbol's name is a literal, not a reference.
        "resource r 'A.B/c@2024-01-01' = {\n  name: 'x'\n  location: 'ws'\n}",
        # A conditional resource read null-safely, or asserted non-null.
        "resource c 'A.B/c@2024-01-01' = if (flag) {\n  name: 'c'\n}\noutput o string = c.?identity.?principalId ?? ''",
        "resource c 'A.B/c@2024-01-01' = if (flag) {\n  name: 'c'\n}\n"
        "output o string = flag ? c!.identity.principalId : ''",
        # A loop over parameters, its variable in the name.
        "resource r 'A.B/c@2024-01-01' = [for (x, i) in [name, 'b']: {\n  name: '${x}-${i}'\n}]",
    ],
)
def test_deploy_time_constants_pass(snippet: str) -> None:
    assert findings(HEADER + snippet) == []


def test_the_reader_keeps_what_pycep_loses() -> None:
    template = parse_text("var a = x.?y ?? 'z'\nvar b = x!.y\nvar c = 'ws'\nvar d = ws")
    a = template.declarations["a"].value
    assert isinstance(a, Op) and a.op == "??" and isinstance(a.operands[0], Access) and a.operands[0].safe
    b = template.declarations["b"].value
    assert isinstance(b, Access) and isinstance(b.base, NonNull)
    assert isinstance(template.declarations["c"].value, Str)
    assert isinstance(template.declarations["d"].value, Ident)


def test_the_reader_rejects_broken_bicep_with_a_line() -> None:
    with pytest.raises(BicepSyntaxError, match="line 2"):
        parse_text("param a string\nvar b = 'open\n")
