"""Helpers shared by the drivers that keep log files (json-file and local): rotation and
compression (`logfile`), reading back with tail/since/until/follow (`logreader`), gzip with Docker's
extra header (`gzipextra`), RFC 3339 times (`timestamps`) and writer-to-follower wake-ups (`notify`)."""
