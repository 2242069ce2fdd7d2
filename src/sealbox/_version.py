"""The package's version: the one place it is written.

The build reads it from here (``[tool.hatch.version]`` in pyproject.toml), so
the installed distribution's metadata and ``sealbox.__version__`` cannot
differ; and importing it costs nothing, where asking ``importlib.metadata``
would cost every ``sealbox`` command tens of milliseconds.
"""

__version__ = "0.1.0"
