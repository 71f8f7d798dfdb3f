"""The module layering DEVELOPERS.md draws is the one the imports make.

DEVELOPERS.md's "Layering" section lists every top-level module in numbered
items; a module may import (at any depth of its file) only modules of
earlier items.  The imports are read from the source with `ast`, not by
importing anything.
"""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _layers():
  """{module: item number} from DEVELOPERS.md's Layering list."""
  with open(os.path.join(ROOT, "DEVELOPERS.md"), encoding="utf-8") as f:
    text = f.read()
  section = text.split("## Layering", 1)[1].split("\n## ", 1)[0]
  items = re.split(r"\n(?=\d+\. )", section)
  layers = {}
  for item in items:
    match = re.match(r"(\d+)\. ", item)
    if not match:
      continue
    for name in re.findall(r"`(\w+)`", item.split("Within the export")[0]):
      layers.setdefault(name, int(match.group(1)))
  return layers


def _project_imports(path, modules):
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.add(node.module.split(".")[0])
  return names & modules


def test_every_module_is_placed_once_and_imports_only_earlier_items():
  modules = {name[:-3] for name in os.listdir(ROOT) if name.endswith(".py")}
  layers = _layers()
  assert set(layers) >= modules, sorted(modules - set(layers))
  problems = []
  for module in sorted(modules):
    for imported in sorted(_project_imports(
        os.path.join(ROOT, module + ".py"), modules - {module})):
      if layers[imported] >= layers[module]:
        problems.append("%s (item %d) imports %s (item %d)" % (
            module, layers[module], imported, layers[imported]))
  assert not problems, problems


def test_the_check_sees_an_upward_import(tmp_path):
  """The parser finds imports inside functions too (a lazy upward import)."""
  path = tmp_path / "low.py"
  path.write_text("import os\n\ndef f():\n  import run_squad\n  return os\n")
  assert _project_imports(str(path), {"run_squad", "modeling"}) == {
      "run_squad"}
