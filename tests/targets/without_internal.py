"""Run a target script with one contrib or SDK internal deleted, as on a release that lacks it.

    python without_internal.py [--after module,module] module:Attribute.path script.py [args...]

``--after`` imports those modules first: the contrib's own modules keep the name they imported
(as a release that renamed it would have its own), only our later lookups miss it.
"""

import importlib
import runpy
import sys

args = sys.argv[1:]
if args[0] == "--after":
    for preloaded in args[1].split(","):
        importlib.import_module(preloaded)
    args = args[2:]
module_name, _, path = args[0].partition(":")
owner = importlib.import_module(module_name)
*parents, last = path.split(".")
for part in parents:
    owner = getattr(owner, part)
delattr(owner, last)
sys.argv = args[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
