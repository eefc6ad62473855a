"""logship: a container logging daemon and log shipper that speaks Docker's logging dialect."""

__version__ = "0.1.0"

# The Docker Engine API version whose paths and JSON shapes logship follows.
API_VERSION = "1.47"
MIN_API_VERSION = "1.24"
