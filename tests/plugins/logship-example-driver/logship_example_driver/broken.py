"""A driver whose module fails to import: logship must report it and carry on."""

raise ImportError("this example driver is broken on purpose")
