"""Run a target script with contrib, SDK or library names changed, as on a release that changed them.

    python without_internal.py [--after module,module] NAME[,NAME...] script.py [args...]

Each NAME is ``module:Attribute.path``, deleted (a release without it), or with a change:
``...=nullary`` a function that takes no argument (a changed signature), ``...=raises`` a function
that raises RuntimeError (anything raised where the name is used), ``...='text'`` that string
(a ``__version__``), ``...=hidden`` gone for code that imports it but kept for the module's own
functions (a module-level name its module still uses). ``--after`` imports those modules first:
they keep the name they imported (as a release that renamed it would have its own), only later
lookups see the change.
"""

import importlib
import runpy
import sys
import types


def nullary():
    return None


def raises(*args, **kwargs):
    raise RuntimeError("raised where otel-launch calls it")


args = sys.argv[1:]
if args[0] == "--after":
    for preloaded in args[1].split(","):
        importlib.import_module(preloaded)
    args = args[2:]
for name in args[0].split(","):
    name, _, change = name.partition("=")
    module_name, _, path = name.partition(":")
    owner = importlib.import_module(module_name)
    *parents, last = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    if change == "hidden":  # importers see a stand-in module without the name
        hidden = getattr(owner, "_hidden_names", set()) | {last}
        stand_in = types.ModuleType(module_name)
        stand_in.__dict__.update({k: v for k, v in vars(owner).items() if k not in hidden})
        stand_in._hidden_names = hidden
        sys.modules[module_name] = stand_in
        parent, _, child = module_name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, stand_in)
    elif not change:
        delattr(owner, last)
    elif change in ("nullary", "raises"):
        setattr(owner, last, nullary if change == "nullary" else raises)
    else:
        setattr(owner, last, change.strip("'"))
sys.argv = args[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
