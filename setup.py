"""The C extensions, all other settings are in pyproject.toml: json-file's fast `logs` loop
(drivers/jsonfile/_logtext.c) and the API's framing of a message per frame (logship/api/_multiplex.c)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("logship.drivers.jsonfile._logtext", ["drivers/jsonfile/_logtext.c"]),
        Extension("logship.api._multiplex", ["logship/api/_multiplex.c"]),
    ]
)
