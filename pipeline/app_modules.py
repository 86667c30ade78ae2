"""Loading the application's modules (catalogue, processors) by name.

`pipeline` never imports the application; the application names its
modules in settings and the library imports them at run time. The working
directory is searched too: an installed `pipeline` script does not have it
on sys.path, but users run it from their project folder.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from pipeline.errors import ConfigError


def import_app_module(module_name: str, what: str, setting: str) -> ModuleType:
    """Import `module_name`, or a ConfigError naming `what` and the `setting` to change."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import the {what} module {module_name!r} ({exc}); "
            f"run from the project folder or set {setting}."
        ) from exc
