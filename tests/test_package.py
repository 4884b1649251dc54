"""The package's shape: the public API as IDEs see it, and EmbeddingGen's signature."""

import ast
import dataclasses
import importlib
import inspect
import os

import tfx_embeddings
from tests.conftest import ROOT
from tfx_embeddings.components.embedding_gen.component import EmbeddingGen
from tfx_embeddings.components.embedding_gen.parameters import EmbeddingGenParameters


def test_the_typed_exports_are_the_lazy_exports():
    """The TYPE_CHECKING block (what Pyright and mypy read) names every export, from the
    module `__getattr__` imports it from, and nothing else."""
    with open(os.path.join(ROOT, "tfx_embeddings", "__init__.py")) as f:
        tree = ast.parse(f.read())
    [block] = [node for node in tree.body if isinstance(node, ast.If)
               and ast.unparse(node.test) == "typing.TYPE_CHECKING"]
    typed = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names:
            assert alias.asname == alias.name  # `X as X`: a re-export.
            typed[alias.name] = node.module
    assert typed == tfx_embeddings._EXPORTS
    for name, module in typed.items():
        assert getattr(importlib.import_module(f"tfx_embeddings.{module}"), name) is (
            getattr(tfx_embeddings, name))


def test_embedding_gen_takes_every_parameter_with_its_default():
    """EmbeddingGen's keywords are EmbeddingGenParameters' fields, in order, with the same
    defaults (the parameters' one definition), so help() and an IDE show them all."""
    signature = inspect.signature(EmbeddingGen.__init__)
    keywords = [p for p in signature.parameters.values() if p.kind == p.KEYWORD_ONLY]
    fields = dataclasses.fields(EmbeddingGenParameters)
    assert [p.name for p in keywords] == [f.name for f in fields]
    for parameter, field in zip(keywords, fields, strict=True):
        assert parameter.default == field.default, parameter.name
    assert not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())


def test_every_module_imports():
    """Every module of the package imports (so every name its module-level imports name
    exists); Pyright (`make lint`) checks that every import, lazy ones included, resolves."""
    import pkgutil

    names = [info.name for info in pkgutil.walk_packages(tfx_embeddings.__path__,
                                                         "tfx_embeddings.")
             if not info.name.endswith(".__main__")]
    assert "tfx_embeddings.pipeline.kubeflow.compiler" in names  # The walk follows the links.
    for name in names:
        importlib.import_module(name)


def test_nothing_outside_tests_imports_tests():
    """The benchmarks, the emulators and the package never import the test suite (whose
    conftest and fixtures are not theirs to depend on)."""
    found = []
    for top in ("benchmarks", "components", "emulators", "pipeline", "schemas",
                "tfx_embeddings"):
        for directory, _, names in os.walk(os.path.join(ROOT, top)):
            for name in (n for n in names if n.endswith(".py")):
                path = os.path.join(directory, name)
                with open(path) as f:
                    tree = ast.parse(f.read())
                for node in ast.walk(tree):
                    modules = ([alias.name for alias in node.names]
                               if isinstance(node, ast.Import) else
                               [node.module or ""] if isinstance(node, ast.ImportFrom)
                               and node.level == 0 else [])
                    found += [f"{os.path.relpath(path, ROOT)}:{node.lineno} {module}"
                              for module in modules if module.split(".")[0] == "tests"]
    assert found == []
