"""Docs that are generated from code must match the code."""
from simulator.config.reference import document
from tests.conftest import ROOT


def test_yaml_reference_is_current():
    assert (ROOT / "docs" / "yaml.md").read_text() == document(), \
        "regenerate with: python -m simulator.config.reference > docs/yaml.md"


def test_readme_has_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "pip install -e . && trainsim run workloads/llama3-8b.yaml" in text
    assert "pip install -e '.[test]' && pytest" in text
