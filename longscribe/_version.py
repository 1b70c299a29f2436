"""The installed distribution's version; a checkout that is not installed says so."""

from importlib import metadata

try:
    __version__ = metadata.version("longscribe")
except metadata.PackageNotFoundError:  # run from a checkout (PYTHONPATH), not installed
    __version__ = "0+unknown"
