"""Processing: the stage between a container's lines and its drivers (opt-in, per container, all log-opts).

    cursor (lines, times, checkpoints) --> lines stage: drop/keep filters, redaction  (every driver)
                                       --> events stage: multiline events, parse=json (drivers with events)
                                       --> driver

- `config`: the options, checked at create with errors that name the option and what to do.
- `patterns`: a user's regex judged line by line, found in a block of lines with a few C-level scans.
- `lines`: filters and redaction, also across the 16 KiB pieces of a long line.
- `multiline`: which lines start an event (`multiline-start`, the java/python/go presets).
- `events`: joining lines into events (start, read-time timeout, size cap), and parse=json.
- `stream`: one reader's processing of one stream, and what it means for the reader's ledger.

Every reader of a container's spool (the copier for the in-step drivers, each disk buffer) processes the
lines itself, from the same spooled bytes and read times, so each makes the same records whenever it
reads them. With everything off (the default) none of this is built: the readers hand the cursor's
batches on as before.
"""
