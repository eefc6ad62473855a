"""The one C extension, json-file's fast `logs` loop (drivers/jsonfile/_logtext.c); all other settings
are in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("logship.drivers.jsonfile._logtext", ["drivers/jsonfile/_logtext.c"])])
